package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/spf/lint"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

const lintUsage = `Usage: spfmilter lint DOMAIN [--resolver HOST:PORT] [--json] [--no-mail NAME] [--record TEXT]

Checks DOMAIN's SPF record and every record it includes or redirects to, the
way receivers evaluate them, and lists the findings: each with a severity
(error, warning, info), a stable identifier, the path of terms that leads to
it and one line of advice. With --record it checks TEXT as DOMAIN's record,
before it is published. The exit status is 0 when there is no error, 1 when
there is one, 2 for bad arguments.

With --json it prints one object:
  {"domain", "record", "dns_terms", "void_lookups_ipv4", "void_lookups_ipv6",
   "evaluations": [{"client", "result", "mechanism", "problem",
                    "dns_lookups", "void_lookups"}],
   "findings": [{"severity", "id", "path", "client", "message", "advice"}]}
where "client" of a finding is "ipv4" or "ipv6" when only that family of
clients is concerned, and left out otherwise.

Flags:`

// toolFlags are the flags lint and flatten share.
type toolFlags struct {
	resolvers  listFlag
	dnsTimeout time.Duration
}

func (tf *toolFlags) register(fs *flag.FlagSet) {
	fs.Var(&tf.resolvers, "resolver", "ask the DNS server at `HOST:PORT` (an IP address; port 53 when left out); repeat for several (default the nameservers of /etc/resolv.conf)")
	fs.DurationVar(&tf.dnsTimeout, "dns-timeout", resolver.DefaultTimeout, "wait at most `DURATION` for one DNS query to one server (default 2s)")
}

// client builds the DNS client: the milter's, with its cache.
func (tf *toolFlags) client() (*resolver.Client, error) {
	var servers []string
	for _, v := range tf.resolvers {
		s, err := config.ParseResolver(v)
		if err != nil {
			return nil, fmt.Errorf("flag --resolver: %v", err)
		}
		servers = append(servers, s)
	}
	if tf.dnsTimeout <= 0 {
		return nil, errors.New("flag --dns-timeout: must be positive")
	}
	return resolver.New(resolver.Options{Servers: servers, Timeout: tf.dnsTimeout})
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, config.SplitList(v)...)
	return nil
}

// parseTool parses a tool's command line, flags before or after the one
// DOMAIN argument, and returns the domain.
func parseTool(fs *flag.FlagSet, args []string) (string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(pos) {
	case 0:
		return "", errors.New("missing DOMAIN (see --help)")
	case 1:
		return pos[0], nil
	}
	return "", fmt.Errorf("unexpected argument %q (see --help)", pos[1])
}

// runLint is the lint command.
func runLint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	var tf toolFlags
	var noMail listFlag
	asJSON := fs.Bool("json", false, "print one JSON object")
	tf.register(fs)
	fs.Var(&noMail, "no-mail", "a `NAME` that never sends mail and should publish \"v=spf1 -all\"; repeat for several")
	record := fs.String("record", "", "check `TEXT` as DOMAIN's SPF record in place of the published one")
	domain, err := parseTool(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(stdout, fs, lintUsage)
			return exitOK
		}
		return fail(stderr, err)
	}
	rc, err := tf.client()
	if err != nil {
		return fail(stderr, err)
	}
	rep, err := lint.Lint(context.Background(), domain, lint.Options{Resolver: rc, NoMail: noMail, Record: *record})
	if err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		err = writeLintJSON(stdout, rep)
	} else {
		err = writeLintText(stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(stderr, "spfmilter:", err)
		return exitError
	}
	if rep.Errors() > 0 {
		return exitError
	}
	return exitOK
}

func writeLintJSON(w io.Writer, rep *lint.Report) error {
	if rep.Findings == nil {
		rep.Findings = []lint.Finding{}
	}
	if rep.Evaluations == nil {
		rep.Evaluations = []lint.Evaluation{}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

func writeLintText(w io.Writer, rep *lint.Report) error {
	var b strings.Builder
	if rep.Record != "" {
		fmt.Fprintf(&b, "%s: %s\n", rep.Domain, rep.Record)
	} else {
		fmt.Fprintf(&b, "%s: no SPF record\n", rep.Domain)
	}
	fmt.Fprintf(&b, "worst case: %d DNS-causing terms (limit 10); void lookups: %d for IPv4 clients, %d for IPv6 clients (limit 2)\n",
		rep.DNSTerms, rep.VoidIPv4, rep.VoidIPv6)
	for _, e := range rep.Evaluations {
		fmt.Fprintf(&b, "engine: %s for %s", e.Result, e.Client)
		if e.Mechanism != "" {
			fmt.Fprintf(&b, " (mechanism %s)", e.Mechanism)
		}
		fmt.Fprintf(&b, ", DNS lookups: %d, void lookups: %d", e.DNSLookups, e.VoidLookups)
		if e.Problem != "" {
			fmt.Fprintf(&b, ", problem: %s", e.Problem)
		}
		b.WriteString("\n")
	}
	counts := map[lint.Severity]int{}
	for _, f := range rep.Findings {
		counts[f.Severity]++
		b.WriteString("\n")
		fmt.Fprintf(&b, "%-7s %s", f.Severity, f.ID)
		if f.Client != "" {
			fmt.Fprintf(&b, " (%s clients)", f.Client)
		}
		fmt.Fprintf(&b, "\n  at:     %s\n  %s\n  advice: %s\n", strings.Join(f.Path, " > "), f.Message, f.Advice)
	}
	fmt.Fprintf(&b, "\n%d error(s), %d warning(s), %d info\n", counts[lint.Error], counts[lint.Warning], counts[lint.Info])
	_, err := io.WriteString(w, b.String())
	return err
}
