package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// TestPrometheus runs the real spfmilter binary against a test DNS server,
// sends it a message that passes SPF and one that fails, has Debian's
// prometheus scrape it on loopback and checks the series with promtool. It
// also evaluates every query of the Grafana dashboard against that server.
func TestPrometheus(t *testing.T) {
	prometheus := promNeed(t, "prometheus")
	promtool := promNeed(t, "promtool")
	if testing.Short() {
		t.Skip("builds the binary and starts prometheus; skipped with -short")
	}

	// The sender domains, as a DNS world served on 127.0.0.1.
	world := &spftest.Resolver{
		TXT: map[string][]string{
			"pass.example": {"v=spf1 ip4:192.0.2.10 -all"},
			"fail.example": {"v=spf1 ip4:198.51.100.1 -all"},
		},
	}
	dns, err := spftest.StartServer(world)
	if err != nil {
		t.Fatalf("DNS server: %v", err)
	}
	t.Cleanup(dns.Close)

	dir := t.TempDir()
	bin := promBuild(t, dir)
	milterAddr := fmt.Sprintf("127.0.0.1:%d", promFreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", promFreePort(t))
	conf := filepath.Join(dir, "spfmilter.yml")
	promWrite(t, conf, "# every default\n{}\n")
	daemon := promStart(t, bin, "spfmilter",
		"--config", conf,
		"--listen", "inet:"+milterAddr,
		"--http-listen", httpAddr,
		"--resolver", dns.Addr())
	promWaitOK(t, "http://"+httpAddr+"/-/ready")

	// One message whose MAIL FROM passes, one whose MAIL FROM fails.
	promSend(t, milterAddr, "alice@pass.example")
	promSend(t, milterAddr, "bob@fail.example")

	// Prometheus scraping spfmilter every second, with the shipped alert
	// rules loaded (it refuses to start if they do not load).
	promPort := promFreePort(t)
	rules, err := filepath.Abs(filepath.Join("..", "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	promWrite(t, cfg, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: spfmilter
    static_configs:
      - targets: [%q]
`, rules, httpAddr))
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	_ = promStart(t, prometheus, "prometheus",
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+strings.TrimPrefix(promURL, "http://"))
	promWaitOK(t, promURL+"/-/ready")

	// Wait for a scrape taken after the traffic: the counter for the second
	// message is then in.
	q := func(expr string) []promSample { return promQuery(t, promtool, promURL, expr) }
	deadline := time.Now().Add(60 * time.Second)
	for len(q(`spfmilter_milter_connections_total{job="spfmilter"} >= 2`)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("prometheus has not scraped 2 milter connections within 60s; up: %v, connections: %v",
				q(`up`), q(`spfmilter_milter_connections_total`))
		}
		time.Sleep(500 * time.Millisecond)
	}

	for _, c := range []struct {
		expr string
		want float64
	}{
		{`up{job="spfmilter"}`, 1},
		{`spfmilter_spf_results_total{identity="mailfrom",result="pass"}`, 1},
		{`spfmilter_spf_results_total{identity="mailfrom",result="fail"}`, 1},
		{`spfmilter_spf_results_total{identity="mailfrom",result="softfail"}`, 0},
		{`sum(spfmilter_spf_results_total{identity="mailfrom"})`, 2},
		{`spfmilter_milter_connections_total`, 2},
		{`spfmilter_milter_messages_total`, 2},
		{`sum(spfmilter_milter_actions_total)`, 2},
		{`spfmilter_milter_active_connections`, 0},
		{`count(spfmilter_dns_cache_misses_total >= 2)`, 1},
		{`count(spfmilter_dns_cache_entries >= 2)`, 1},
		{`spfmilter_config_last_reload_successful`, 1},
		{`sum(spfmilter_config_reloads_total)`, 0},
		{`count(sum(spfmilter_dns_queries_total{type="TXT",outcome="ok"}) >= 2)`, 1},
		{`count(spfmilter_build_info{version!="",revision!="",goversion=~"go.+"} == 1)`, 1},
		{`count(go_goroutines) + count(process_start_time_seconds)`, 2},
	} {
		got := q(c.expr)
		if len(got) != 1 {
			t.Errorf("%s: %d series %v, want one", c.expr, len(got), got)
			continue
		}
		if got[0].Value != c.want {
			t.Errorf("%s = %v, want %v", c.expr, got[0].Value, c.want)
		}
	}

	// A good reload, then a bad one (an unknown key) that keeps the running
	// configuration.
	promReload := func(content, result string) {
		t.Helper()
		promWrite(t, conf, content)
		if err := daemon.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		expr := fmt.Sprintf(`spfmilter_config_reloads_total{result=%q} == 1`, result)
		deadline := time.Now().Add(30 * time.Second)
		for len(q(expr)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 30s: %v", expr, q(`spfmilter_config_reloads_total`))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	promReload("# still every default\n{}\n", "success")
	if got := q(`spfmilter_config_last_reload_successful`); len(got) != 1 || got[0].Value != 1 {
		t.Errorf("after a good reload, last_reload_successful = %v, want 1", got)
	}
	promReload("no_such_key: 1\n", "failure")
	if got := q(`spfmilter_config_last_reload_successful`); len(got) != 1 || got[0].Value != 0 {
		t.Errorf("after a bad reload, last_reload_successful = %v, want 0", got)
	}

	// Every dashboard query must be valid PromQL and, with the dashboard's
	// variables at "all", find data.
	dash, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "spfmilter.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, m := range regexp.MustCompile(`"expr": ("(?:[^"\\]|\\.)*")`).FindAllSubmatch(dash, -1) {
		var e string
		if err := json.Unmarshal(m[1], &e); err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, e)
	}
	if len(exprs) == 0 {
		t.Fatal("no expressions found in the dashboard")
	}
	vars := strings.NewReplacer(`$job`, `.+`, `$instance`, `.+`, `$__rate_interval`, `1m`)
	for _, e := range exprs {
		e := vars.Replace(e)
		if strings.Contains(e, "$") {
			t.Errorf("dashboard query uses an unknown variable: %s", e)
			continue
		}
		if got := q(e); len(got) == 0 {
			t.Errorf("dashboard query finds no data: %s", e)
		}
	}
}

// promSample is one element of an instant query's vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// promQuery runs an instant query with promtool.
func promQuery(t *testing.T, promtool, url, expr string) []promSample {
	t.Helper()
	out, err := exec.Command(promtool, "query", "instant", "-o", "json", url, expr).Output()
	if err != nil {
		t.Fatalf("promtool query instant %s: %v\n%s", expr, err, promStderr(err))
	}
	var raw []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &raw); err != nil {
		t.Fatalf("promtool query instant %s: %v in %q", expr, err, out)
	}
	var res []promSample
	for _, r := range raw {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("promtool query instant %s: value %v: %v", expr, r.Value, err)
		}
		res = append(res, promSample{r.Metric, v})
	}
	return res
}

func promStderr(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

// promSend runs one SMTP transaction from 192.0.2.10 (mail.client.example)
// for sender through the milter at addr, up to end of message or the first
// action other than continue (a reject, for a failing sender).
func promSend(t *testing.T, addr, sender string) {
	t.Helper()
	s, done := milterSession(t, addr)
	defer done()

	steps := []func() (*milter.Action, error){
		func() (*milter.Action, error) {
			if err := s.Macros(milter.CodeConn, "j", "mx.receiver.example"); err != nil {
				return nil, err
			}
			return s.Conn("mail.client.example", milter.FamilyInet, 41000, "192.0.2.10")
		},
		func() (*milter.Action, error) { return s.Helo("mail.client.example") },
		func() (*milter.Action, error) {
			if err := s.Macros(milter.CodeMail, "i", "4PROM01"); err != nil {
				return nil, err
			}
			return s.Mail("<"+sender+">", nil)
		},
		func() (*milter.Action, error) { return s.Rcpt("<postmaster@receiver.example>", nil) },
		func() (*milter.Action, error) { return s.HeaderField("From", "<"+sender+">") },
		func() (*milter.Action, error) { return s.HeaderField("Subject", "metrics test") },
		s.HeaderEnd,
		func() (*milter.Action, error) { return s.BodyChunk([]byte("Hello.\r\n")) },
		func() (*milter.Action, error) { _, act, err := s.End(); return act, err },
	}
	for i, step := range steps {
		act, err := step()
		if err != nil {
			t.Fatalf("%s: milter step %d: %v", sender, i, err)
		}
		if act.Code != milter.ActContinue {
			return
		}
	}
}

// promNeed returns the path of an external program, or skips the test when
// it is missing — failing it instead when CI=true.
func promNeed(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required when CI=true: %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install prometheus): %v", name, err)
	}
	return p
}

// promBuild builds the spfmilter binary from the repository root into dir.
func promBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "spfmilter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// promFreePort returns a loopback TCP port that was free a moment ago, for
// programs that need a fixed port on their command line.
func promFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func promWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// promStart starts a program and, when the test ends, stops it with SIGTERM
// (SIGKILL after 10 s). Its output is logged if the test failed.
func promStart(t *testing.T, path, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(path, args...)
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.String())
		}
	})
	return cmd
}

// promWaitOK waits up to 30 s for url to answer 200.
func promWaitOK(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not 200 within 30s (last error %v)", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
