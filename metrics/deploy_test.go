package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var (
	promDir       = filepath.Join("..", "deploy", "prometheus")
	dashboardFile = filepath.Join("..", "deploy", "grafana", "spfmilter.json")
	metricName    = regexp.MustCompile(`\bspfmilter_[a-zA-Z0-9_]+`)
)

// usedNames returns the spfmilter_ metric names that occur in text.
func usedNames(text string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range metricName.FindAllString(text, -1) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// TestDeployNamesExist keeps the alert rules, their tests and the dashboard
// in step with the registered families: a renamed metric fails here rather
// than silently emptying a panel or muting an alert.
func TestDeployNamesExist(t *testing.T) {
	known := familyNames(t)
	for _, path := range []string{
		filepath.Join(promDir, "alerts.yml"),
		filepath.Join(promDir, "alerts_test.yml"),
		dashboardFile,
	} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		names := usedNames(string(b))
		if len(names) == 0 {
			t.Errorf("%s uses no spfmilter metric", path)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("%s uses %s, which spfmilter does not export", path, n)
			}
		}
	}
}

func TestUsedNamesRejectsUnknown(t *testing.T) {
	known := familyNames(t)
	got := usedNames(`rate(spfmilter_spf_results_total[5m]) + spfmilter_spf_check_duration_seconds_bucket + spfmilter_spf_result_total`)
	var unknown []string
	for _, n := range got {
		if !known[n] {
			unknown = append(unknown, n)
		}
	}
	if strings.Join(unknown, " ") != "spfmilter_spf_result_total" {
		t.Errorf("unknown names = %v, want [spfmilter_spf_result_total]", unknown)
	}
}

// dashboard is the part of Grafana's dashboard model the test looks at.
type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// dashboardExprs returns every PromQL expression of the dashboard, by panel
// title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("%s: no title or uid", dashboardFile)
	}
	out := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if _, dup := out[p.Title]; dup {
				t.Errorf("two panels titled %q", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q query %s is empty", p.Title, tg.RefID)
				}
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return out
}

// TestDashboard checks that the dashboard parses and covers what an operator
// asks first.
func TestDashboard(t *testing.T) {
	exprs := dashboardExprs(t)
	var all []string
	for _, es := range exprs {
		all = append(all, es...)
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		"spfmilter_spf_results_total",
		"spfmilter_milter_actions_total",
		`action="reject"`,
		"histogram_quantile(0.5, sum by (le, identity) (rate(spfmilter_spf_check_duration_seconds_bucket",
		"histogram_quantile(0.99, sum by (le, identity) (rate(spfmilter_spf_check_duration_seconds_bucket",
		"spfmilter_dns_queries_total",
		"spfmilter_dns_query_duration_seconds_bucket",
		"spfmilter_dns_cache_hits_total",
		"spfmilter_dns_cache_misses_total",
		"spfmilter_dns_cache_bytes",
		"spfmilter_spf_record_cache_bytes",
		"spfmilter_dns_server_up",
		"spfmilter_milter_active_connections",
		"spfmilter_config_reloads_total",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no dashboard query uses %s", want)
		}
	}
}

// TestPromtoolRules runs promtool's own checks: the rules parse and their
// expressions are valid, the example scrape config is valid, and the unit
// tests in alerts_test.yml pass.
func TestPromtoolRules(t *testing.T) {
	promtool := needProgram(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"check", "config", "scrape.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = promDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dashboardVars stand in for the dashboard's template variables.
var dashboardVars = strings.NewReplacer(`$job`, `.+`, `$instance`, `.+`, `$__rate_interval`, `1m`)

// TestPromtoolDashboardQueries has promtool parse every dashboard query, by
// wrapping each in a recording rule. (The end-to-end test also runs them
// against a real Prometheus.)
func TestPromtoolDashboardQueries(t *testing.T) {
	promtool := needProgram(t, "promtool")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			e = dashboardVars.Replace(e)
			if strings.Contains(e, "$") {
				t.Errorf("panel %q uses an unknown variable: %s", title, e)
				continue
			}
			q, err := json.Marshal(e) // a JSON string is a YAML string
			if err != nil {
				t.Fatal(err)
			}
			n++
			fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", n, q)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules on the dashboard queries: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(string(out), want) {
		t.Errorf("promtool: %s; want %q", out, want)
	}
}
