package lint

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

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
			scenarios := spftest.LoadSuite(t, file)
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
						rc = serve(t, spftest.SuiteWorld(t, sc.ZoneData))
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
