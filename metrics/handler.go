package metrics

import (
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const index = `<!DOCTYPE html>
<html>
<head><title>spfmilter</title></head>
<body>
<h1>spfmilter</h1>
<ul>
<li><a href="metrics">/metrics</a> – Prometheus metrics</li>
<li><a href="-/healthy">/-/healthy</a> – the process is alive</li>
<li><a href="-/ready">/-/ready</a> – the milter is serving</li>
</ul>
</body>
</html>
`

// Handler serves spfmilter's HTTP endpoints, in the manner of the Prometheus
// exporters:
//
//   - /metrics: the metrics gathered from g, in the exposition format;
//   - /-/healthy: 200 "OK" while the process runs;
//   - /-/ready: 200 "OK" when ready() reports true, else 503 — that is, until
//     the milter listens with a loaded configuration, and again while it
//     drains on shutdown. A nil ready means always ready;
//   - /: a short index of the above.
//
// Only GET and HEAD are allowed; other paths are 404.
func Handler(g prometheus.Gatherer, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// Serve what could be gathered and report the rest in the
		// response, rather than failing the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "OK\n")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if ready != nil && !ready() {
			text(w, http.StatusServiceUnavailable, "Service Unavailable\n")
			return
		}
		text(w, http.StatusOK, "OK\n")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, index)
	})
	return mux
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// Probes must see the live state, never a cached one.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
