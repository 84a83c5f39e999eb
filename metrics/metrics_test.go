package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/spfmilter/spfmilter/metrics"
	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

var (
	_ milter.Observer   = (*metrics.Metrics)(nil)
	_ resolver.Observer = (*metrics.Metrics)(nil)
)

var testBuild = metrics.BuildInfo{Version: "1.2.3", Revision: "abc123", GoVersion: "go1.26.8"}

func newTest(t testing.TB) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	return metrics.New(reg, testBuild), reg
}

// gather returns the families whose name starts with spfmilter_, by name.
func gather(t testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "spfmilter_") {
			out[mf.GetName()] = mf
		}
	}
	return out
}

// series returns a family's series as "label=value,…" → value (counter,
// gauge) or sample count (histogram).
func series(t *testing.T, g prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mf := gather(t, g)[name]
	if mf == nil {
		t.Fatalf("no family %s", name)
	}
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

func TestObserverCounts(t *testing.T) {
	m, reg := newTest(t)
	m.ConnOpened()
	m.ConnOpened()
	m.ConnClosed()
	m.SPFResult("helo", "none", 2*time.Millisecond)
	m.SPFResult("helo", "not_checked", time.Microsecond)
	m.SPFResult("mailfrom", "fail", 30*time.Millisecond)
	m.SPFResult("mailfrom", "fail", 30*time.Millisecond)
	m.Permerror("mailfrom", "lookup_limit")
	m.Permerror("helo", "no such cause")
	m.Action("reject", "")
	m.Action("quarantine", "")
	m.ShadowDifference("accept", "reject")
	m.ShadowDifference("accept", "skip")
	m.Action("skip", "trusted_network")
	m.Action("accept", "dry_run")
	m.Error("eom")

	for _, c := range []struct {
		name, series string
		want         float64
	}{
		{"spfmilter_milter_connections_total", "", 2},
		{"spfmilter_milter_active_connections", "", 1},
		{"spfmilter_milter_messages_total", "", 4},
		{"spfmilter_spf_permerrors_total", "cause=lookup_limit,identity=mailfrom", 1},
		{"spfmilter_spf_permerrors_total", "cause=loop,identity=mailfrom", 0},
		{"spfmilter_spf_permerrors_total", "cause=other,identity=helo", 1},
		{"spfmilter_milter_actions_total", "action=quarantine,reason=none", 1},
		{"spfmilter_shadow_differences_total", "live_action=accept,shadow_action=reject", 1},
		{"spfmilter_shadow_differences_total", "live_action=reject,shadow_action=accept", 0},
		{"spfmilter_shadow_differences_total", "live_action=accept,shadow_action=other", 1},
		{"spfmilter_spf_results_total", "identity=helo,result=none", 1},
		{"spfmilter_spf_results_total", "identity=mailfrom,result=fail", 2},
		{"spfmilter_spf_results_total", "identity=mailfrom,result=pass", 0},
		{"spfmilter_spf_results_total", "identity=helo,result=not_checked", 1},
		{"spfmilter_spf_check_duration_seconds", "identity=mailfrom", 2},
		// No check ran for the HELO that was not checked.
		{"spfmilter_spf_check_duration_seconds", "identity=helo", 1},
		{"spfmilter_milter_actions_total", "action=reject,reason=none", 1},
		{"spfmilter_milter_actions_total", "action=skip,reason=trusted_network", 1},
		{"spfmilter_milter_actions_total", "action=accept,reason=dry_run", 1},
		{"spfmilter_milter_actions_total", "action=accept,reason=none", 0},
		{"spfmilter_milter_errors_total", "stage=eom", 1},
		{"spfmilter_milter_errors_total", "stage=mail", 0},
		{"spfmilter_milter_errors_total", "stage=connection", 0},
	} {
		got, ok := series(t, reg, c.name)[c.series]
		if !ok {
			t.Errorf("%s{%s}: no such series", c.name, c.series)
			continue
		}
		if got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.series, got, c.want)
		}
	}
}

func TestCheckDurationInSeconds(t *testing.T) {
	m, reg := newTest(t)
	m.SPFResult("mailfrom", "pass", 1500*time.Millisecond)
	mf := gather(t, reg)["spfmilter_spf_check_duration_seconds"]
	for _, s := range mf.GetMetric() {
		if s.GetLabel()[0].GetValue() != "mailfrom" {
			continue
		}
		h := s.GetHistogram()
		if h.GetSampleSum() != 1.5 {
			t.Errorf("sum = %v, want 1.5", h.GetSampleSum())
		}
		// 1.5 s falls in the 2.5 s bucket, not the 1 s one.
		for _, b := range h.GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 2.5 {
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
		if n := len(h.GetBucket()); n == 0 || h.GetBucket()[0].GetUpperBound() != 0.0005 || h.GetBucket()[n-1].GetUpperBound() != 20 {
			t.Errorf("buckets run %v…%v, want 0.0005…20", h.GetBucket()[0].GetUpperBound(), h.GetBucket()[n-1].GetUpperBound())
		}
		return
	}
	t.Fatal("no mailfrom series")
}

func TestDNSAndCache(t *testing.T) {
	m, reg := newTest(t)
	m.ObserveQuery("TXT", "ok", 3*time.Millisecond)
	m.ObserveQuery("TXT", "timeout", 5*time.Second)
	m.ObserveQuery("MX", "nxdomain", time.Millisecond)
	m.ObserveCache("hit")
	m.ObserveCache("hit")
	m.ObserveCache("miss")
	m.ObserveCache("evict")

	q := series(t, reg, "spfmilter_dns_queries_total")
	for k, want := range map[string]float64{
		"outcome=ok,type=TXT": 1, "outcome=timeout,type=TXT": 1, "outcome=nxdomain,type=MX": 1,
		"outcome=servfail,type=PTR": 0,
	} {
		if got, ok := q[k]; !ok || got != want {
			t.Errorf("spfmilter_dns_queries_total{%s} = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if got := series(t, reg, "spfmilter_dns_query_duration_seconds")["type=TXT"]; got != 2 {
		t.Errorf("TXT duration samples = %v, want 2", got)
	}
	for name, want := range map[string]float64{
		"spfmilter_dns_cache_hits_total": 2, "spfmilter_dns_cache_misses_total": 1,
		"spfmilter_dns_cache_evictions_total": 1, "spfmilter_dns_cache_entries": 0,
	} {
		if got := series(t, reg, name)[""]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	n := 7
	m.SetCacheSizeFunc(func() int { return n })
	if got := series(t, reg, "spfmilter_dns_cache_entries")[""]; got != 7 {
		t.Errorf("cache entries = %v, want 7", got)
	}
	n = 9 // read at every scrape
	if got := series(t, reg, "spfmilter_dns_cache_entries")[""]; got != 9 {
		t.Errorf("cache entries = %v, want 9", got)
	}
	m.SetCacheSizeFunc(nil)
	if got := series(t, reg, "spfmilter_dns_cache_entries")[""]; got != 0 {
		t.Errorf("cache entries after SetCacheSizeFunc(nil) = %v, want 0", got)
	}
}

// The cache budgets and the DNS servers' health are read at each scrape
// from the functions main sets.
func TestCacheBytesAndServers(t *testing.T) {
	m, reg := newTest(t)
	m.SetCacheBytesFunc(func() int64 { return 1 << 20 })
	m.SetRecordCacheFuncs(func() int64 { return 4096 }, func() uint64 { return 3 })
	for name, want := range map[string]float64{
		"spfmilter_dns_cache_bytes": 1 << 20, "spfmilter_spf_record_cache_bytes": 4096,
		"spfmilter_spf_record_cache_evictions_total": 3,
	} {
		if got := series(t, reg, name)[""]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if _, ok := gather(t, reg)["spfmilter_dns_server_up"]; ok {
		t.Error("server series before any server is known")
	}
	servers := []metrics.DNSServer{{Addr: "192.0.2.53:53", Up: true}, {Addr: "[2001:db8::53]:53", Up: false, Failures: 4}}
	m.SetServersFunc(func() []metrics.DNSServer { return servers })
	up, failures := series(t, reg, "spfmilter_dns_server_up"), series(t, reg, "spfmilter_dns_server_failures_total")
	if up["server=192.0.2.53:53"] != 1 || up["server=[2001:db8::53]:53"] != 0 || failures["server=[2001:db8::53]:53"] != 4 || len(up) != 2 {
		t.Errorf("up %v, failures %v", up, failures)
	}
	// A reload with other servers replaces the series.
	servers = servers[:1]
	if up := series(t, reg, "spfmilter_dns_server_up"); len(up) != 1 {
		t.Errorf("after the servers changed: %v", up)
	}
	m.SetCacheBytesFunc(nil)
	m.SetRecordCacheFuncs(nil, nil)
	m.SetServersFunc(nil)
	if got := series(t, reg, "spfmilter_dns_cache_bytes")[""]; got != 0 {
		t.Errorf("cache bytes after nil = %v", got)
	}
	if _, ok := gather(t, reg)["spfmilter_dns_server_up"]; ok {
		t.Error("server series after SetServersFunc(nil)")
	}
}

// TestClamp feeds values outside the fixed sets — among them the kinds of
// value that must never become a label — and checks that they all land in
// "other" and create no other series.
func TestClamp(t *testing.T) {
	m, reg := newTest(t)
	before := map[string]int{}
	for name, mf := range gather(t, reg) {
		before[name] = len(mf.GetMetric())
	}
	bad := []string{"example.com", "192.0.2.1", "user@example.com", "PASS", "", "mail.example.org\r\n"}
	for _, v := range bad {
		m.SPFResult(v, v, time.Millisecond)
		m.SPFResult("mailfrom", v, time.Millisecond)
		m.Action(v, v)
		m.Action("reject", v)
		m.Error(v)
		m.ObserveQuery(v, v, time.Millisecond)
		m.ObserveQuery("txt", "ok", time.Millisecond) // types are upper case
		m.ObserveCache(v)
	}
	after := gather(t, reg)
	for name, mf := range after {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				for _, v := range bad {
					if l.GetValue() == v {
						t.Errorf("%s has label %s=%q", name, l.GetName(), v)
					}
				}
			}
		}
	}
	// Exactly the "other" series are new.
	for k, want := range map[string]map[string]float64{
		"spfmilter_spf_results_total": {
			"identity=other,result=other":    float64(len(bad)),
			"identity=mailfrom,result=other": float64(len(bad)),
		},
		"spfmilter_spf_check_duration_seconds": {"identity=other": float64(len(bad))},
		"spfmilter_milter_actions_total": {
			"action=other,reason=other":  float64(len(bad) - 1), // "" is reason none
			"action=other,reason=none":   1,
			"action=reject,reason=other": float64(len(bad) - 1),
		},
		"spfmilter_milter_errors_total":        {"stage=other": float64(len(bad))},
		"spfmilter_dns_queries_total":          {"outcome=other,type=other": float64(len(bad)), "outcome=ok,type=other": float64(len(bad))},
		"spfmilter_dns_query_duration_seconds": {"type=other": float64(2 * len(bad))},
	} {
		s := series(t, reg, k)
		if got := len(s) - before[k]; got != len(want) {
			t.Errorf("%s: %d new series, want %d: %v", k, got, len(want), s)
		}
		for ls, v := range want {
			if s[ls] != v {
				t.Errorf("%s{%s} = %v, want %v", k, ls, s[ls], v)
			}
		}
	}
	for _, name := range []string{"spfmilter_dns_cache_hits_total", "spfmilter_dns_cache_misses_total", "spfmilter_dns_cache_evictions_total"} {
		if got := series(t, reg, name)[""]; got != 0 {
			t.Errorf("%s = %v after unknown cache events, want 0", name, got)
		}
	}
	if m := series(t, reg, "spfmilter_milter_actions_total")["action=reject,reason=none"]; m != 1 {
		t.Errorf(`Action("reject", "") counted %v times as reason=none, want 1`, m)
	}
}

func TestReload(t *testing.T) {
	m, reg := newTest(t)
	val := func(name string) float64 { return series(t, reg, name)[""] }
	reloads := func(r string) float64 { return series(t, reg, "spfmilter_config_reloads_total")["result="+r] }

	if val("spfmilter_config_last_reload_successful") != 0 || val("spfmilter_config_last_reload_success_timestamp_seconds") != 0 {
		t.Error("config gauges are not 0 before any load")
	}
	start := float64(time.Now().Unix())
	m.ConfigLoaded()
	if val("spfmilter_config_last_reload_successful") != 1 {
		t.Error("last_reload_successful != 1 after ConfigLoaded")
	}
	if ts := val("spfmilter_config_last_reload_success_timestamp_seconds"); ts < start {
		t.Errorf("timestamp %v before the test started (%v)", ts, start)
	}
	if reloads("success") != 0 {
		t.Error("ConfigLoaded counted a reload")
	}

	m.ObserveReload(false)
	if val("spfmilter_config_last_reload_successful") != 0 || reloads("failure") != 1 || reloads("success") != 0 {
		t.Error("failed reload not recorded")
	}
	m.ObserveReload(true)
	if val("spfmilter_config_last_reload_successful") != 1 || reloads("failure") != 1 || reloads("success") != 1 {
		t.Error("successful reload not recorded")
	}
}

func TestBuildInfo(t *testing.T) {
	_, reg := newTest(t)
	got := series(t, reg, "spfmilter_build_info")
	want := map[string]float64{"goversion=go1.26.8,revision=abc123,version=1.2.3": 1}
	if len(got) != 1 || got["goversion=go1.26.8,revision=abc123,version=1.2.3"] != 1 {
		t.Errorf("build_info = %v, want %v", got, want)
	}

	reg2 := prometheus.NewPedanticRegistry()
	metrics.New(reg2, metrics.BuildInfo{})
	if got := series(t, reg2, "spfmilter_build_info"); got["goversion=unknown,revision=unknown,version=unknown"] != 1 {
		t.Errorf("empty BuildInfo gives %v, want unknown labels", got)
	}
}

// TestRuntimeCollectors checks that the Go and process collectors come with
// New, and that New works on a registry that already has them.
func TestRuntimeCollectors(t *testing.T) {
	_, reg := newTest(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !have[name] {
			t.Errorf("no %s", name)
		}
	}

	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.New(reg2, testBuild)
	if _, err := reg2.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	m, reg := newTest(t)
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := 0; j < 200; j++ {
				m.ConnOpened()
				m.SPFResult("mailfrom", "pass", time.Millisecond)
				m.Action("accept", "")
				m.ObserveQuery("TXT", "ok", time.Millisecond)
				m.ObserveCache("miss")
				m.ConnClosed()
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	if got := series(t, reg, "spfmilter_milter_messages_total")[""]; got != 800 {
		t.Errorf("messages = %v, want 800", got)
	}
	if got := series(t, reg, "spfmilter_milter_active_connections")[""]; got != 0 {
		t.Errorf("active connections = %v, want 0", got)
	}
}
