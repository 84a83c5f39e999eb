package main

import (
	"bytes"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// singleDash finds a flag written with one dash: "-bogus" after a space,
// a quote or the start of a line, but not "--bogus" nor "127.0.0.1:8895".
var singleDash = regexp.MustCompile(`(^|[\s"'(])-[a-z]`)

// TestFlagErrors pins the flag package's error forms that flagError
// rewrites: if Go changes one, this fails rather than a one-dash message
// slipping through.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "unknown flag --bogus (see --help)"},
		{[]string{"-bogus"}, "unknown flag --bogus (see --help)"},
		{[]string{"--bogus=1"}, "unknown flag --bogus (see --help)"},
		{[]string{"--name"}, "flag --name: missing value (see --help)"},
		{[]string{"--on=maybe"}, `flag --on: bad boolean "maybe" (want true or false) (see --help)`},
		{[]string{"--wait", "soon"}, `flag --wait: bad value "soon": parse error (see --help)`},
		{[]string{"--wait=a for -b: c"}, `flag --wait: bad value "a for -b: c": parse error (see --help)`},
		{[]string{"---x"}, "bad flag syntax: ---x (see --help)"},
	} {
		fset := flag.NewFlagSet("test", flag.ContinueOnError)
		fset.String("name", "", "")
		fset.Bool("on", false, "")
		fset.Duration("wait", time.Second, "")
		err := parseFlags(fset, tc.args)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestHelpEverywhere: every command prints its help on standard output
// with status 0, in the two-dash style, and says so for a bad flag on
// standard error, also with two dashes.
func TestHelpEverywhere(t *testing.T) {
	cmds := [][]string{{}}
	for _, c := range commands {
		cmds = append(cmds, []string{c.name})
	}
	for _, cmd := range cmds {
		for _, h := range []string{"--help", "-h", "-help"} {
			args := append(append([]string{}, cmd...), h)
			var stdout, stderr bytes.Buffer
			if st := run(args, &stdout, &stderr); st != 0 || stdout.Len() == 0 || stderr.Len() != 0 {
				t.Errorf("%q: status %d, stdout %d bytes, stderr %q", args, st, stdout.Len(), stderr.String())
			}
			for _, line := range strings.Split(stdout.String(), "\n") {
				// Usage text of the flags themselves may say anything;
				// the flag lines must use two dashes.
				if strings.HasPrefix(strings.TrimSpace(line), "-") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
					t.Errorf("%q: one-dash flag line %q", args, line)
				}
			}
		}
		if len(cmd) == 0 {
			continue
		}
		// help COMMAND is COMMAND --help.
		var viaHelp, direct bytes.Buffer
		run([]string{"help", cmd[0]}, &viaHelp, io.Discard)
		run([]string{cmd[0], "--help"}, &direct, io.Discard)
		if viaHelp.String() != direct.String() {
			t.Errorf("help %s differs from %s --help", cmd[0], cmd[0])
		}
		args := append(append([]string{}, cmd...), "-bogus")
		var stdout, stderr bytes.Buffer
		st := run(args, &stdout, &stderr)
		want := 2
		if cmd[0] == "healthcheck" {
			want = 1 // Docker reserves 2
		}
		if msg := stderr.String(); st != want || !strings.Contains(msg, "unknown flag --bogus") || singleDash.MatchString(msg) || stdout.Len() != 0 {
			t.Errorf("%q: status %d, stderr %q; want %d and one line naming --bogus", args, st, msg, want)
		}
	}
}

func TestFormatVersion(t *testing.T) {
	for _, tc := range []struct{ v, rev, want string }{
		// A build from a checkout: the pseudo-version carries the revision.
		{"v0.0.0-20261201150537-983ee5690b98", "983ee5690b98", "v0.0.0-20261201150537-983ee5690b98 go1.26.8"},
		{"v0.0.0-20261201150537-983ee5690b98+dirty", "983ee5690b98", "v0.0.0-20261201150537-983ee5690b98+dirty go1.26.8"},
		// -ldflags "-X main.version=1.2.0" from a checkout.
		{"1.2.0", "983ee5690b98", "1.2.0 (983ee5690b98) go1.26.8"},
		{"devel", "", "devel go1.26.8"},
	} {
		if got := formatVersion(tc.v, tc.rev, "go1.26.8"); got != tc.want {
			t.Errorf("formatVersion(%q, %q) = %q, want %q", tc.v, tc.rev, got, tc.want)
		}
	}
}

// TestUnknownCommand: a word that is no command is named as such, not
// taken as a stray argument of serve.
func TestUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"chek", "--ip", "192.0.2.1"}, {"help", "chek"}} {
		var stdout, stderr bytes.Buffer
		if st := run(args, &stdout, &stderr); st != exitUsage || !strings.HasPrefix(stderr.String(), `spfmilter: unknown command "chek"`) || stdout.Len() != 0 {
			t.Errorf("%q: status %d, stderr %q", args, st, stderr.String())
		}
	}
}

func TestVersionArguments(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if st := run([]string{"version", "extra"}, &stdout, &stderr); st != exitUsage || !strings.Contains(stderr.String(), `unexpected argument "extra"`) {
		t.Errorf("version extra: status %d, stderr %q", st, stderr.String())
	}
}
