package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/internal/config"
)

// TestManPages keeps the committed manual pages in step with the settings
// table and the command list. Run with -update to rewrite them.
func TestManPages(t *testing.T) {
	for name, want := range manPages() {
		path := filepath.Join(manDir, name)
		got, err := os.ReadFile(path)
		if err == nil && string(got) == want {
			continue
		}
		if !*update {
			t.Errorf("%s is out of date (%v); run: go test -run TestManPages -update", path, err)
			continue
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s updated", path)
	}
}

// manFlagName is how a flag reads in the pages: --name with minus signs.
func manFlagName(name string) string { return manEscape("--"+name, true) }

// TestManPagesCoverSettings guards the generator: every setting's key, flag
// and default is in the pages.
func TestManPagesCoverSettings(t *testing.T) {
	pages := manPages()
	cmd, cfg := pages["spfmilter.8"], pages["spfmilter.yaml.5"]
	for _, s := range config.Settings() {
		if !strings.Contains(cmd, `\fB`+manFlagName(s.Flag)+`\fR`) {
			t.Errorf("spfmilter.8 lacks --%s", s.Flag)
		}
		if !strings.Contains(cfg, ".TP\n"+manText("`"+s.Key+"`")+":") {
			t.Errorf("spfmilter.yaml.5 lacks the key %s", s.Key)
		}
		if s.Default != "" && s.DefaultDoc == "" && !strings.Contains(cfg, manText("`"+s.Default+"`")) {
			t.Errorf("spfmilter.yaml.5 lacks the default of %s, %q", s.Key, s.Default)
		}
	}
}

// TestManPagesCoverCommands compares spfmilter.8 with what the program
// says about itself: every command of the usage and every flag each
// command's --help lists must be in the page.
func TestManPagesCoverCommands(t *testing.T) {
	page := manPages()["spfmilter.8"]
	var usage bytes.Buffer
	if st := run([]string{"help"}, &usage, &usage); st != exitOK {
		t.Fatalf("help: status %d", st)
	}
	cmds := regexp.MustCompile(`(?m)^\s+spfmilter \[?([a-z]+)`).FindAllStringSubmatch(usage.String(), -1)
	if len(cmds) < 3 {
		t.Fatalf("found only %d commands in the usage:\n%s", len(cmds), usage.String())
	}
	// The other way round: every command the page describes is one (an
	// unknown word would be an argument of serve, refused with status 2).
	for _, mc := range manCommands {
		if _, st := helpOutput(t, mc.name); st != exitOK {
			t.Errorf("spfmilter.8 describes the command %s, but \"spfmilter %s --help\" exits %d", mc.name, mc.name, st)
		}
	}
	flagLine := regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9.-]*)`)
	for _, c := range cmds {
		name := c[1]
		if !strings.Contains(page, ".SS "+name+"\n") {
			t.Errorf("spfmilter.8 has no section for the command %s", name)
		}
		if name == "version" || name == "help" {
			continue
		}
		help, _ := helpOutput(t, name)
		flags := flagLine.FindAllStringSubmatch(help, -1)
		if len(flags) == 0 {
			t.Errorf("%s --help lists no flags:\n%s", name, help)
		}
		for _, f := range flags {
			if !strings.Contains(page, `\fB`+manFlagName(f[1])+`\fR`) {
				t.Errorf("spfmilter.8 lacks %s's flag --%s", name, f[1])
			}
		}
	}
}

// helpOutput is what "spfmilter CMD --help" prints, on either stream (some
// commands write to os.Stdout or os.Stderr directly, so both are captured),
// and its exit status.
func helpOutput(t *testing.T, cmd string) (string, int) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "help")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = f, f
	st := run([]string{cmd, "--help"}, f, f)
	os.Stdout, os.Stderr = stdout, stderr
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(out), st
}

// TestManPagesLint runs mandoc's checker on the generated pages: any
// warning or error fails.
func TestManPagesLint(t *testing.T) {
	mandoc, err := exec.LookPath("mandoc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but mandoc is not installed (run .ci/install-deps): %v", err)
		}
		t.Skipf("mandoc is not installed: %v", err)
	}
	dir := t.TempDir()
	for name, page := range manPages() {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(mandoc, "-Tlint", "-Wwarning", path).CombinedOutput()
		// The pages carry no date on purpose (see manHeader); every
		// other finding counts.
		var found []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.Contains(l, "WARNING: missing date") {
				found = append(found, l)
			}
		}
		if len(found) > 0 {
			t.Errorf("mandoc -Tlint %s:\n%s", name, strings.Join(found, "\n"))
		}
	}
}
