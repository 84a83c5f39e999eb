package lint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// The openspf conformance suites, found as spf/suite_test.go finds them:
// SPF_SUITE_DIR (relative to the repository root), else ../shared/spf-suite
// beside the repository. The loader below follows the same driver rules
// (SOURCE.md next to the suites); it also serves SPF entries as type SPF
// records, which lint reports.

type suiteList []string

func (s *suiteList) UnmarshalYAML(n *yaml.Node) error {
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

type suiteScenario struct {
	Tests map[string]struct {
		Helo     string    `yaml:"helo"`
		Host     string    `yaml:"host"`
		MailFrom string    `yaml:"mailfrom"`
		Result   suiteList `yaml:"result"`
	} `yaml:"tests"`
	ZoneData map[string][]yaml.Node `yaml:"zonedata"`
}

func suitePath(t *testing.T, file string) string {
	dir := os.Getenv("SPF_SUITE_DIR")
	if dir == "" {
		dir = filepath.Join("..", "shared", "spf-suite")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // tests run in spf/lint
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

func loadScenarios(t *testing.T, path string) []suiteScenario {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []suiteScenario
	dec := yaml.NewDecoder(f)
	for {
		var s suiteScenario
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

// octets maps the code points YAML's \xNN escapes give back to octets.
func octets(s string) string {
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

func reverseName(name string) (string, bool) {
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

func suiteWorld(t *testing.T, zone map[string][]yaml.Node) *spftest.Resolver {
	w := &spftest.Resolver{
		TXT: map[string][]string{}, SPF: map[string][]string{},
		A: map[string][]netip.Addr{}, AAAA: map[string][]netip.Addr{},
		MX: map[string][]string{}, PTR: map[string][]string{}, CNAME: map[string]string{},
		Fail: map[string]error{},
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
			text := octets(v.Value)
			if v.Kind == yaml.SequenceNode {
				var b strings.Builder
				for _, c := range v.Content {
					b.WriteString(c.Value)
				}
				text = octets(b.String())
			}
			switch typ {
			case "SPF":
				spfs = append(spfs, text)
			case "TXT":
				hasTXT = true
				if v.Kind == yaml.ScalarNode && v.Value == "NONE" {
					continue
				}
				txts = append(txts, text)
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
				w.MX[name] = append(w.MX[name], v.Content[1].Value)
				have["MX"] = true
			case "PTR":
				addr, ok := reverseName(name)
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
			// SOURCE.md: SPF data stands in for TXT when there is none.
			txts = spfs
			if len(spfs) > 0 {
				have["TXT"] = true
			}
		}
		if len(txts) > 0 {
			w.TXT[name] = txts
		} else if hasTXT || len(spfs) > 0 {
			w.TXT[name] = nil
		}
		if timeout {
			key := name
			if addr, ok := reverseName(name); ok {
				key = addr
			}
			for _, typ := range []string{"TXT", "A", "AAAA", "MX", "PTR"} {
				if !have[typ] {
					w.Fail[typ+" "+key] = spftest.ErrTimeout
				}
			}
			if len(have) == 0 {
				w.TXT[name] = nil
			}
		}
	}
	return w
}

// lintGaps are the permerror cases lint cannot report, with the reason.
var lintGaps = map[string]string{
	"rfc4408/invalid-domain-long-via-macro": "the over-long label comes from the client's HELO through %{H}; " +
		"RFC 7208 receivers (spfmilter's engine among them) treat it as a void lookup and the record is " +
		"fine for ordinary HELO names",
}

// TestSuitePermerrors lints the domain of every case the suites expect to
// be a permerror: each must get at least one error finding. It also counts
// those the walk finds without the engine's evaluation of a probe client.
func TestSuitePermerrors(t *testing.T) {
	for _, file := range []string{"rfc7208-tests.yml", "rfc4408-tests.yml"} {
		t.Run(strings.TrimSuffix(file, "-tests.yml"), func(t *testing.T) {
			scenarios := loadScenarios(t, suitePath(t, file))
			total, found, walkOnly := 0, 0, 0
			for _, sc := range scenarios {
				var rc Resolver
				names := make([]string, 0, len(sc.Tests))
				for name := range sc.Tests {
					names = append(names, name)
				}
				sort.Strings(names)
				for _, name := range names {
					tc := sc.Tests[name]
					if len(tc.Result) == 0 || tc.Result[0] != "permerror" {
						continue
					}
					if rc == nil {
						rc = serve(t, suiteWorld(t, sc.ZoneData))
					}
					total++
					sender := tc.MailFrom
					if sender == "" {
						sender = "postmaster@" + tc.Helo
					}
					domain := sender[strings.LastIndexByte(sender, '@')+1:]
					// As the lint command runs: no knowledge of the case's client.
					rep, err := Lint(context.Background(), domain, Options{Resolver: rc})
					if err != nil {
						t.Errorf("%s: %v", name, err)
						continue
					}
					key := strings.TrimSuffix(file, "-tests.yml") + "/" + name
					if reason, ok := lintGaps[key]; ok && rep.Errors() == 0 {
						t.Logf("%s: no error finding: %s", key, reason)
						continue
					}
					if rep.Errors() == 0 {
						t.Errorf("%s: no error finding for %s:\n%s", name, domain, dump(rep))
						continue
					}
					found++
					if slices.ContainsFunc(rep.Findings, func(f Finding) bool {
						return f.Severity == Error && f.ID != "permerror" && f.ID != "temperror"
					}) {
						walkOnly++
					}
				}
			}
			msg := fmt.Sprintf("lint %s: %d/%d permerror cases get an error finding, %d of them from the walk alone",
				strings.TrimSuffix(file, "-tests.yml"), found, total, walkOnly)
			t.Log(msg)
			fmt.Println(msg)
			if total == 0 {
				t.Error("no permerror case found")
			}
		})
	}
}
