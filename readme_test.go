package main

import (
	"flag"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/internal/config"
)

var update = flag.Bool("update", false, "rewrite the README's config reference from the settings table")

const (
	refStart = "<!-- config-reference:start -->\n"
	refEnd   = "<!-- config-reference:end -->"
)

// TestREADMEConfigReference keeps the README's reference in step with the
// settings table. Run with -update to rewrite the section.
func TestREADMEConfigReference(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i := strings.Index(readme, refStart)
	j := strings.Index(readme, refEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", strings.TrimSpace(refStart), refEnd)
	}
	got := readme[i+len(refStart) : j]
	want := configReference()
	if got == want {
		return
	}
	if !*update {
		t.Fatalf("README.md's config reference is out of date; run: go test -run TestREADMEConfigReference -update\n--- README\n%s\n--- table\n%s", got, want)
	}
	// Re-read just before writing: the rest of the README may have changed.
	data, err = os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme = string(data)
	i = strings.Index(readme, refStart)
	j = strings.Index(readme, refEnd)
	out := readme[:i+len(refStart)] + want + readme[j:]
	if err := os.WriteFile("README.md", []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("README.md updated")
}

// TestConfigReferenceCoversEverySetting guards the generator itself: every
// key, flag and default must appear in the table.
func TestConfigReferenceCoversEverySetting(t *testing.T) {
	ref := configReference()
	for _, s := range config.Settings() {
		for _, want := range []string{"| `" + s.Key + "` |", "`--" + s.Flag} {
			if !strings.Contains(ref, want) {
				t.Errorf("reference lacks %q", want)
			}
		}
		if s.Default != "" && !strings.Contains(ref, "`"+s.Default+"`") {
			t.Errorf("reference lacks the default of %s, %q", s.Key, s.Default)
		}
	}
}

// TestREADMELayout keeps the README's repository layout complete: every
// top-level Go file (tests aside) and folder is named in it (a folder also
// by a path inside it), and every name in it exists.
func TestREADMELayout(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Repository layout\n")
	if !ok {
		t.Fatal("README.md has no Repository layout section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	named := map[string]bool{}
	for line := range strings.SplitSeq(section, "\n") {
		first, _, ok := strings.Cut(strings.TrimPrefix(line, "|"), "|")
		if !ok || !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(first, -1) {
			named[m[1]] = true
		}
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir() && (!strings.HasPrefix(name, ".") || name == ".ci"):
			name += "/"
		case !e.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"):
		default:
			continue
		}
		if !named[name] && !slices.ContainsFunc(slices.Collect(maps.Keys(named)), func(n string) bool { return strings.HasPrefix(n, name) }) {
			t.Errorf("README.md's repository layout does not name %s", name)
		}
	}
	for name := range named {
		if _, err := os.Stat(strings.TrimSuffix(name, "/")); err != nil {
			t.Errorf("README.md's repository layout names %s: %v", name, err)
		}
	}
}
