package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spfmilter/spfmilter/spf/lint"
)

const flattenUsage = `Usage: spfmilter flatten DOMAIN [--resolver HOST:PORT] [--max-lookups N] [--expand-a] [--expand-mx] [--chunk-name FORMAT]

Rewrites DOMAIN's SPF record tree as ip4/ip6 ranges that give every address
the result the tree gives it now, merged into the fewest CIDR prefixes, and
prints the records to publish as zone-file lines: the domain's record and,
when the passing ranges do not fit in one 255-byte string, the records it
includes (named by --chunk-name, numbered from 1). Includes are resolved;
the domain's own a and mx only with --expand-a and --expand-mx. Terms that
cannot be flattened (exists, ptr, macros) are kept as written, with a
warning. Comment lines (";") give the smallest TTL met and the warnings: a
flattened record goes stale when the providers change their ranges.

The exit status is 0 when the records were printed, 1 when the tree cannot be
flattened (a broken record, a failed lookup, more lookups than
--max-lookups), 2 for bad arguments.

Flags:`

// runFlatten is the flatten command.
func runFlatten(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flatten", flag.ContinueOnError)
	var tf toolFlags
	var opts lint.FlattenOptions
	tf.register(fs)
	fs.IntVar(&opts.MaxLookups, "max-lookups", 10, "allow the new record at most `N` DNS-causing terms, kept terms and chunk includes together (default 10)")
	fs.BoolVar(&opts.ExpandA, "expand-a", false, "replace the domain's own a mechanisms by their addresses")
	fs.BoolVar(&opts.ExpandMX, "expand-mx", false, "replace the domain's own mx mechanisms by their addresses")
	fs.StringVar(&opts.ChunkName, "chunk-name", "_spf%d.DOMAIN", "name the included records after `FORMAT`, with one %d for their number (default _spf%d.DOMAIN)")
	domain, err := parseTool(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(stdout, fs, flattenUsage)
			return exitOK
		}
		return fail(stderr, err)
	}
	if opts.MaxLookups < 1 || opts.MaxLookups > 10 {
		return fail(stderr, fmt.Errorf("flag --max-lookups: %d: want 1 to 10", opts.MaxLookups))
	}
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	opts.ChunkName = strings.ReplaceAll(opts.ChunkName, "DOMAIN", d)
	if strings.Count(opts.ChunkName, "%d") != 1 || strings.Count(opts.ChunkName, "%") != 1 {
		return fail(stderr, fmt.Errorf("flag --chunk-name: %q: want exactly one %%d", opts.ChunkName))
	}
	rc, err := tf.client()
	if err != nil {
		return fail(stderr, err)
	}
	opts.Resolver = rc
	out, err := lint.Flatten(context.Background(), domain, opts)
	if errors.Is(err, lint.ErrCannotFlatten) {
		fmt.Fprintln(stderr, "spfmilter:", err)
		return exitError
	}
	if err != nil {
		return fail(stderr, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; SPF records for %s flattened at %s\n", out.Domain, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "; smallest TTL met: %d s\n", out.TTL)
	for _, w := range out.Warnings {
		fmt.Fprintf(&b, "; warning: %s\n", w)
	}
	writeTXT(&b, out.Domain, out.Record)
	for _, c := range out.Chunks {
		writeTXT(&b, c.Name, c.Record)
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		fmt.Fprintln(stderr, "spfmilter:", err)
		return exitError
	}
	return exitOK
}

// writeTXT writes one zone-file line, the text cut into strings of at most
// 255 bytes. Records are printable ASCII, where Go's quoting (\" and \\)
// is the zone file's.
func writeTXT(b *strings.Builder, name, txt string) {
	fmt.Fprintf(b, "%s. IN TXT", name)
	for len(txt) > 255 {
		fmt.Fprintf(b, " %q", txt[:255])
		txt = txt[255:]
	}
	fmt.Fprintf(b, " %q\n", txt)
}
