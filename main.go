// Command spfmilter is an SPF (RFC 7208) milter for Postfix and Sendmail.
//
// Usage:
//
//	spfmilter [serve] [flags]   run the milter (the default)
//	spfmilter check [flags]     evaluate one client once and print the verdicts
//	spfmilter healthcheck       ask a running daemon whether it is healthy
//	spfmilter lint DOMAIN       check a domain's SPF records
//	spfmilter flatten DOMAIN    rewrite a domain's SPF record as ip4/ip6 ranges
//	spfmilter version           print the version
//
// Flags are written with two dashes everywhere (one is accepted); --help
// prints a command's flags on standard output and exits 0.
//
// Every setting is a YAML key of the --config file and a flag of the same
// name; flags override the file. README.md has the reference.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spfmilter/spfmilter/internal/config"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // a failure while running
	exitUsage = 2 // bad arguments or configuration
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commands are the subcommands, in the order the usage lists them; serve is
// the default. Each takes its arguments and returns the exit status.
var commands = []struct {
	name string
	run  func(args []string, stdout, stderr io.Writer) int
}{
	{"serve", runServe},
	{"check", runCheck},
	{"healthcheck", runHealthcheck},
	{"lint", runLint},
	{"flatten", runFlatten},
	{"version", runVersion},
}

func command(name string) func(args []string, stdout, stderr io.Writer) int {
	for _, c := range commands {
		if c.name == name {
			return c.run
		}
	}
	return nil
}

// errUnknownCommand names a word that is no command, and the commands.
func errUnknownCommand(name string) error {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return fmt.Errorf("unknown command %q (want %s or %s; see --help)", name, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// run is the whole program; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return runServe(args, stdout, stderr)
	}
	switch name := args[0]; {
	case name == "help":
		// "help COMMAND" is "COMMAND --help".
		if len(args) == 1 || args[1] == "help" || strings.HasPrefix(args[1], "-") {
			break
		}
		if command(args[1]) == nil {
			return fail(stderr, errUnknownCommand(args[1]))
		}
		return command(args[1])([]string{"--help"}, stdout, stderr)
	case name == "-h" || name == "-help" || name == "--help":
	case strings.HasPrefix(name, "-"):
		return runServe(args, stdout, stderr)
	case command(name) != nil:
		return command(name)(args[1:], stdout, stderr)
	default:
		return fail(stderr, errUnknownCommand(name))
	}
	printUsage(stdout)
	return exitOK
}

// fail prints one line naming the problem and returns exitUsage.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "spfmilter:", err)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  spfmilter [serve] [flags]   run the milter (the default)
  spfmilter check --ip IP --sender ADDR --helo NAME [--json] [--trace] [flags]
                              evaluate one client once and print the verdicts
  spfmilter healthcheck [--url URL] [--timeout DURATION]
                              exit 0 when the daemon's /-/healthy answers 200
  spfmilter lint DOMAIN [--resolver HOST:PORT] [--json]
                              check a domain's SPF record tree
  spfmilter flatten DOMAIN [--resolver HOST:PORT] [--max-lookups N]
                              rewrite it as ip4/ip6 ranges
  spfmilter version           print the version

Run "spfmilter COMMAND --help" (or "spfmilter help COMMAND") for a command's
flags. Flags take two dashes: --config FILE, --listen=ADDR.
`)
}

// runVersion is the version command.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fset, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(stdout, fset, "Usage: spfmilter version\n\nPrints the version, the VCS revision it was built from and the Go version.")
			return exitOK
		}
		return fail(stderr, err)
	}
	if fset.NArg() > 0 {
		return fail(stderr, fmt.Errorf("unexpected argument %q (see --help)", fset.Arg(0)))
	}
	fmt.Fprintln(stdout, "spfmilter", versionString())
	return exitOK
}

// parseFlags parses args into fs, with errors on one line.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%v (see --help)", flagError(err))
	}
	return err
}

// printFlags writes head and fs's flags, for --help.
func printFlags(w io.Writer, fs *flag.FlagSet, head string) {
	fmt.Fprintln(w, head)
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if s, ok := config.SettingFlag(f); ok {
			arg = s.Arg // its usage carries the setting's default
		} else if f.DefValue != "" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s\n", f.Name, arg, usage)
	})
}

// flagErrors rewrite the flag package's parse errors (flag.go, parseOne),
// which name a flag with one dash, "-bogus", into the two-dash style of
// every document and of our own messages. TestFlagErrors pins each form.
var flagErrors = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`^flag provided but not defined: -(.+)$`), "unknown flag --$1"},
	{regexp.MustCompile(`^flag needs an argument: -(.+)$`), "flag --$1: missing value"},
	{regexp.MustCompile(`^invalid boolean value (".*") for -([^:]+): .*$`), "flag --$2: bad boolean $1 (want true or false)"},
	{regexp.MustCompile(`^invalid value (".*") for flag -([^:]+): (.*)$`), "flag --$2: bad value $1: $3"},
}

// flagError rewrites err, an error of FlagSet.Parse.
func flagError(err error) error {
	msg := err.Error()
	for _, f := range flagErrors {
		if f.re.MatchString(msg) {
			return errors.New(f.re.ReplaceAllString(msg, f.repl))
		}
	}
	return err
}

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

func versionString() string {
	v, rev := buildVersion()
	return formatVersion(v, rev, runtime.Version())
}

// formatVersion is "VERSION (REVISION) GOVERSION". A pseudo-version, which
// the go command stamps on builds from a checkout
// (v0.0.0-20261201150537-983ee5690b98), already ends in the revision's
// first 12 digits: it is not repeated.
func formatVersion(v, rev, goVersion string) string {
	if rev != "" && !strings.Contains(v, rev) {
		v += " (" + rev + ")"
	}
	return v + " " + goVersion
}

// buildVersion returns the version and the VCS revision, as far as known.
func buildVersion() (v, rev string) {
	v = version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return cmp.Or(v, "devel"), ""
	}
	if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		}
	}
	return cmp.Or(v, "devel"), rev
}
