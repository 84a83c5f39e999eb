package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spfmilter/spfmilter/internal/config"
)

func TestHealthcheck(t *testing.T) {
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/-/healthy" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	// A port that was free a moment ago: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/-/healthy"
	ln.Close()

	for _, tc := range []struct {
		name   string
		status int
		args   []string
		want   int
		stderr string
	}{
		{"healthy", http.StatusOK, []string{"--url", srv.URL + "/-/healthy"}, 0, ""},
		{"unhealthy", http.StatusServiceUnavailable, []string{"--url", srv.URL + "/-/healthy"}, 1, "503"},
		{"wrong path", http.StatusOK, []string{"--url", srv.URL + "/nope"}, 1, "404"},
		{"nothing listening", http.StatusOK, []string{"--url", closed}, 1, "refused"},
		{"bad flag", http.StatusOK, []string{"--bogus"}, 1, "bogus"},
		{"extra argument", http.StatusOK, []string{"--url", srv.URL + "/-/healthy", "extra"}, 1, "extra"},
		{"bad duration", http.StatusOK, []string{"--timeout", "soon"}, 1, `flag --timeout: bad value "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status.Store(int32(tc.status))
			var stdout, stderr strings.Builder
			if got := runHealthcheck(tc.args, &stdout, &stderr); got != tc.want {
				t.Errorf("healthcheck(%q) = %d, want %d; stderr %q", tc.args, got, tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) || stdout.Len() != 0 {
				t.Errorf("stderr %q lacks %q, or stdout %q is not empty", stderr.String(), tc.stderr, stdout.String())
			}
		})
	}
}

// TestRunHealthcheck goes through the command's entry point.
func TestRunHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	// The subcommand as the container's HEALTHCHECK calls it.
	var out, errOut strings.Builder
	if got := run([]string{"healthcheck", "--url", srv.URL + "/-/healthy"}, &out, &errOut); got != 0 {
		t.Errorf("spfmilter healthcheck = %d, want 0 (stderr %q)", got, errOut.String())
	}
	srv.Close()
	if got := run([]string{"healthcheck", "--url", srv.URL + "/-/healthy", "--timeout", "2s"}, &out, &errOut); got != 1 {
		t.Errorf("spfmilter healthcheck with nothing listening = %d, want 1", got)
	}
}

func TestHealthcheckDefaultURL(t *testing.T) {
	// The default must be /-/healthy on the default http_listen, which the
	// container image's default command also uses.
	var def string
	for _, s := range config.Settings() {
		if s.Key == "http_listen" {
			def = s.Default
		}
	}
	if want := "http://" + def + "/-/healthy"; defaultHealthURL != want {
		t.Errorf("defaultHealthURL = %q, want %q", defaultHealthURL, want)
	}
}
