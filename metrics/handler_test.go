package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/metrics"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestHandler(t *testing.T) {
	m, reg := newTest(t)
	m.SPFResult("mailfrom", "fail", 10*time.Millisecond)
	var ready atomic.Bool
	srv := httptest.NewServer(metrics.Handler(reg, ready.Load))
	defer srv.Close()

	code, hdr, body := get(t, srv, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	for _, want := range []string{
		`spfmilter_spf_results_total{identity="mailfrom",result="fail"} 1`,
		`spfmilter_build_info{goversion="go1.26.8",revision="abc123",version="1.2.3"} 1`,
		"# TYPE spfmilter_spf_check_duration_seconds histogram",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if code, _, body := get(t, srv, "GET", "/-/healthy"); code != 200 || body != "OK\n" {
		t.Errorf("/-/healthy: %d %q, want 200 OK", code, body)
	}
	if code, _, _ := get(t, srv, "GET", "/-/ready"); code != 503 {
		t.Errorf("/-/ready before ready: %d, want 503", code)
	}
	ready.Store(true)
	if code, _, body := get(t, srv, "GET", "/-/ready"); code != 200 || body != "OK\n" {
		t.Errorf("/-/ready when ready: %d %q, want 200 OK", code, body)
	}
	ready.Store(false) // draining
	if code, hdr, _ := get(t, srv, "GET", "/-/ready"); code != 503 || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("/-/ready while draining: %d (Cache-Control %q), want 503, no-store", code, hdr.Get("Cache-Control"))
	}
	if code, _, _ := get(t, srv, "HEAD", "/-/healthy"); code != 200 {
		t.Errorf("HEAD /-/healthy: %d, want 200", code)
	}

	code, hdr, body = get(t, srv, "GET", "/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Errorf("/: %d %q", code, hdr.Get("Content-Type"))
	}
	for _, link := range []string{`href="metrics"`, `href="-/healthy"`, `href="-/ready"`} {
		if !strings.Contains(body, link) {
			t.Errorf("index lacks %s", link)
		}
	}

	if code, _, _ := get(t, srv, "GET", "/nope"); code != 404 {
		t.Errorf("/nope: %d, want 404", code)
	}
	if code, _, _ := get(t, srv, "POST", "/-/healthy"); code != 405 {
		t.Errorf("POST /-/healthy: %d, want 405", code)
	}
}

func TestHandlerNilReady(t *testing.T) {
	_, reg := newTest(t)
	srv := httptest.NewServer(metrics.Handler(reg, nil))
	defer srv.Close()
	if code, _, _ := get(t, srv, "GET", "/-/ready"); code != 200 {
		t.Errorf("/-/ready with nil ready func: %d, want 200", code)
	}
}
