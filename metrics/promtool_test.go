package metrics_test

import (
	"bytes"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/metrics"
)

// TestPromtoolCheckMetrics lints a real scrape of the handler, after one
// observation of every kind, with promtool's naming and metadata rules.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := needProgram(t, "promtool")
	m, reg := newTest(t)
	m.ConnOpened()
	m.SPFResult("helo", "none", time.Millisecond)
	m.SPFResult("mailfrom", "softfail", 40*time.Millisecond)
	m.Action("accept", "")
	m.Action("skip", "authenticated")
	m.Error("mail")
	m.ObserveQuery("TXT", "servfail", 20*time.Millisecond)
	m.ObserveCache("hit")
	m.ObserveCache("miss")
	m.ObserveCache("evict")
	m.SetCacheSizeFunc(func() int { return 3 })
	m.SetCacheBytesFunc(func() int64 { return 3 << 10 })
	m.SetRecordCacheFuncs(func() int64 { return 1 << 10 }, func() uint64 { return 1 })
	m.SetServersFunc(func() []metrics.DNSServer { return []metrics.DNSServer{{Addr: "127.0.0.1:53", Up: true}} })
	m.ObserveReload(false)
	m.ConnClosed()

	srv := httptest.NewServer(metrics.Handler(reg, nil))
	defer srv.Close()
	code, _, body := get(t, srv, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewBufferString(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
