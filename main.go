// Command spfmilter is an SPF (RFC 7208) milter for Postfix and Sendmail.
//
// Usage:
//
//	spfmilter [serve] [flags]   run the milter (the default)
//	spfmilter check [flags]     evaluate one client once and print the verdicts
//	spfmilter version           print the version
//
// Every setting is a YAML key of the --config file and a flag of the same
// name; flags override the file. README.md has the reference.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
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

// run is the whole program; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "serve", "check", "version", "help", "healthcheck":
			cmd, args = args[0], args[1:]
		case "-h", "-help", "--help":
			cmd = "help"
		}
	}
	switch cmd {
	case "check":
		return runCheck(args, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(args)
	case "version":
		fmt.Fprintln(stdout, "spfmilter", versionString())
		return exitOK
	case "help":
		printUsage(stdout)
		return exitOK
	}
	return runServe(args, stdout, stderr)
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
  spfmilter version           print the version

Run "spfmilter serve --help" or "spfmilter check --help" for the flags.
`)
}

// printFlags writes head and fs's flags, for --help.
func printFlags(w io.Writer, fs *flag.FlagSet, head string) {
	fmt.Fprintln(w, head)
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if sf, ok := f.Value.(*settingFlag); ok {
			arg = sf.s.arg
		}
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s\n", f.Name, arg, usage)
	})
}

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

func versionString() string {
	v, rev := buildVersion()
	if rev != "" {
		v += " (" + rev + ")"
	}
	return v + " " + runtime.Version()
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
