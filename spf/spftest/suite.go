package spftest

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The openspf conformance suites (see SOURCE.md next to them) are not copied
// into this repository. SPF_SUITE_DIR names their folder; a relative path is
// taken from the repository root, and the default is ../shared/spf-suite
// (the repository's sibling). Without the suites a test skips, except under
// CI=true, where it fails.

// SuiteList is a suite field that may be a string or a list of strings.
type SuiteList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *SuiteList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			*s = append(*s, c.Value)
		}
	default:
		return fmt.Errorf("line %d: want a string or a list", n.Line)
	}
	return nil
}

// SuiteCase is one test of a scenario.
type SuiteCase struct {
	Description string    `yaml:"description"`
	Spec        SuiteList `yaml:"spec"`
	Helo        string    `yaml:"helo"`
	Host        string    `yaml:"host"`
	MailFrom    string    `yaml:"mailfrom"`
	Result      SuiteList `yaml:"result"`
	Explanation *string   `yaml:"explanation"`
}

// SuiteScenario is one YAML document of a suite: its cases and the zone
// they run in (load it with SuiteWorld).
type SuiteScenario struct {
	Description string                 `yaml:"description"`
	Tests       map[string]SuiteCase   `yaml:"tests"`
	ZoneData    map[string][]yaml.Node `yaml:"zonedata"`
}

// SuitePath returns the path of the suite file (e.g. "rfc7208-tests.yml"),
// skipping t when it is absent (failing under CI=true).
func SuitePath(t testing.TB, file string) string {
	t.Helper()
	dir := os.Getenv("SPF_SUITE_DIR")
	if dir == "" {
		dir = filepath.Join("..", "shared", "spf-suite")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repoRoot(t), dir)
	}
	p := filepath.Join(dir, file)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("SPF conformance suite not found in %s (set SPF_SUITE_DIR): %v", dir, err)
		}
		t.Skipf("SPF conformance suite not found in %s; set SPF_SUITE_DIR to run it", dir)
	}
	return p
}

// repoRoot is the nearest folder above the working directory (a test's
// package folder) that holds go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = up
	}
}

// LoadSuite reads the scenarios of a suite file (see SuitePath), leaving
// out documents without tests.
func LoadSuite(t testing.TB, file string) []SuiteScenario {
	t.Helper()
	path := SuitePath(t, file)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []SuiteScenario
	dec := yaml.NewDecoder(f)
	for {
		var s SuiteScenario
		err := dec.Decode(&s)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s.Tests != nil {
			out = append(out, s)
		}
	}
}

// latin1 maps the code points YAML's \xNN escapes produce back to the octets
// the suite means (SOURCE.md, "Escapes in strings").
func latin1(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r <= 0xff {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// reverseToAddr turns "4.3.2.1.in-addr.arpa" or a nibble ip6.arpa name into
// the address the Resolver keys PTR data by.
func reverseToAddr(name string) (string, bool) {
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		p := strings.Split(v4, ".")
		slices.Reverse(p)
		a, err := netip.ParseAddr(strings.Join(p, "."))
		return a.String(), err == nil
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		n := strings.Split(v6, ".")
		if len(n) != 32 {
			return "", false
		}
		slices.Reverse(n)
		var b strings.Builder
		for i, x := range n {
			if i > 0 && i%4 == 0 {
				b.WriteByte(':')
			}
			b.WriteString(x)
		}
		a, err := netip.ParseAddr(b.String())
		return a.String(), err == nil
	}
	return "", false
}

// SuiteWorld loads a scenario's zonedata into a Resolver, following the
// driver semantics described in SOURCE.md. Type SPF entries go into the SPF
// map (only a Server answers them) and stand in for TXT when the name has no
// TXT entry.
func SuiteWorld(t testing.TB, zone map[string][]yaml.Node) *Resolver {
	t.Helper()
	w := &Resolver{
		TXT:   map[string][]string{},
		SPF:   map[string][]string{},
		A:     map[string][]netip.Addr{},
		AAAA:  map[string][]netip.Addr{},
		MX:    map[string][]string{},
		PTR:   map[string][]string{},
		CNAME: map[string]string{},
		Fail:  map[string]error{},
	}
	for name, entries := range zone {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		var spfs, txts []string
		hasTXT, timeout := false, false
		have := map[string]bool{}
		for _, e := range entries {
			if e.Kind == yaml.ScalarNode && e.Value == "TIMEOUT" {
				timeout = true
				continue
			}
			if e.Kind != yaml.MappingNode || len(e.Content) != 2 {
				t.Fatalf("zonedata %s: unexpected entry at line %d", name, e.Line)
			}
			typ, v := e.Content[0].Value, e.Content[1]
			text := func() string {
				if v.Kind == yaml.SequenceNode {
					var b strings.Builder
					for _, c := range v.Content {
						b.WriteString(c.Value)
					}
					return latin1(b.String())
				}
				return latin1(v.Value)
			}
			switch typ {
			case "SPF":
				spfs = append(spfs, text())
			case "TXT":
				hasTXT = true
				if v.Kind == yaml.ScalarNode && v.Value == "NONE" {
					continue
				}
				txts = append(txts, text())
				have["TXT"] = true
			case "A", "AAAA":
				a, err := netip.ParseAddr(v.Value)
				if err != nil {
					t.Fatalf("zonedata %s: %v", name, err)
				}
				if typ == "A" {
					w.A[name] = append(w.A[name], a)
				} else {
					w.AAAA[name] = append(w.AAAA[name], a)
				}
				have[typ] = true
			case "MX":
				if v.Kind != yaml.SequenceNode || len(v.Content) != 2 {
					t.Fatalf("zonedata %s: bad MX at line %d", name, v.Line)
				}
				w.MX[name] = append(w.MX[name], v.Content[1].Value)
				have["MX"] = true
			case "PTR":
				addr, ok := reverseToAddr(name)
				if !ok {
					t.Fatalf("zonedata %s: PTR on a non-reverse name", name)
				}
				w.PTR[addr] = append(w.PTR[addr], v.Value)
				have["PTR"] = true
			case "CNAME":
				w.CNAME[name] = v.Value
				have["CNAME"] = true
			default:
				t.Fatalf("zonedata %s: unknown type %s", name, typ)
			}
		}
		if len(spfs) > 0 {
			w.SPF[name] = spfs
		}
		if !hasTXT {
			txts = spfs
			if len(spfs) > 0 {
				have["TXT"] = true
			}
		}
		if len(txts) > 0 {
			w.TXT[name] = txts
		} else if hasTXT || len(spfs) > 0 {
			// The name exists ("no data" for TXT).
			w.TXT[name] = nil
		}
		if timeout {
			// TIMEOUT: every type the name lists no record of times out.
			key := name
			if addr, ok := reverseToAddr(name); ok {
				key = addr
			}
			for _, typ := range []string{"TXT", "A", "AAAA", "MX", "PTR"} {
				if !have[typ] {
					w.Fail[typ+" "+key] = ErrTimeout
				}
			}
			if len(have) == 0 {
				w.TXT[name] = nil // exists
			}
		}
	}
	return w
}
