package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/internal/logsink"
	"github.com/spfmilter/spfmilter/metrics"
	"github.com/spfmilter/spfmilter/milter"
)

// runServe is the serve command: it runs the milter until SIGTERM or SIGINT.
func runServe(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	cl := config.AddFlags(fset)
	if err := parseFlags(fset, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(stdout, fset, "Usage: spfmilter [serve] [flags]\n\nFlags:")
			return exitOK
		}
		return fail(stderr, err)
	}
	if fset.NArg() > 0 {
		return fail(stderr, fmt.Errorf("unexpected argument %q (see --help)", fset.Arg(0)))
	}
	cfg, err := cl.Load()
	if err != nil {
		return fail(stderr, err)
	}
	if cl.CheckOnly() {
		fmt.Fprintln(stdout, "spfmilter: configuration OK")
		return exitOK
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	logw := stderr
	if f, ok := stderr.(*os.File); ok {
		logw = logsink.New(f)
	}
	d := newDaemon(cl, cfg, logw)
	// go-milter reports session errors through the standard log package;
	// this sends them through the same handler and format as ours.
	slog.SetDefault(d.log)
	if err := d.start(); err != nil {
		d.log.Error("cannot start", "err", err)
		return exitError
	}
	return d.loop(sigs)
}

// daemon is a running milter with its HTTP endpoints.
type daemon struct {
	cl      *config.Source
	log     *slog.Logger
	level   *slog.LevelVar
	reg     *prometheus.Registry
	metrics *metrics.Metrics

	mu   sync.Mutex // serializes reloads
	cfg  *config.Config
	dns  *dnsClient
	boot *config.Config // the configuration at start, where the fixed settings come from

	srv       *milter.Server
	http      *http.Server
	ready     atomic.Bool
	serveDone chan error

	// Where the listeners ended up (useful with port 0).
	milterAddr net.Addr
	httpAddr   net.Addr
}

func newDaemon(cl *config.Source, cfg *config.Config, logw io.Writer) *daemon {
	setMaxProcs(cfg.MaxProcs)
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	reg := prometheus.NewRegistry()
	v, rev := buildVersion()
	return &daemon{
		cl:        cl,
		cfg:       cfg,
		boot:      cfg,
		level:     level,
		log:       newLogger(logw, cfg.LogFormat, level),
		reg:       reg,
		metrics:   metrics.New(reg, metrics.BuildInfo{Version: v, Revision: rev, GoVersion: runtime.Version()}),
		serveDone: make(chan error, 1),
	}
}

// setMaxProcs applies max_procs: n CPUs for Go code, or Go's default for 0.
func setMaxProcs(n int) {
	if n > 0 {
		runtime.GOMAXPROCS(n)
		return
	}
	runtime.SetDefaultGOMAXPROCS()
}

func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// start opens the listeners and starts serving. The daemon is ready when it
// returns nil.
func (d *daemon) start() error {
	c := d.cfg
	dc, err := newDNSClient(c, d.metrics)
	if err != nil {
		return err
	}
	d.dns = dc
	d.log.Info("configuration", configAttrs(d.cl.File(), c, dc.asked())...)
	ln, err := listen(c.Listen, c.ListenMode)
	if err != nil {
		return err
	}
	d.milterAddr = ln.Addr()
	if c.HTTPListen != "" {
		hl, err := net.Listen("tcp", c.HTTPListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http_listen: %w", err)
		}
		d.httpAddr = hl.Addr()
		d.http = newHTTPServer(metrics.Handler(d.reg, d.ready.Load), d.log)
		hl = netutil.LimitListener(hl, httpMaxConns)
		go func() {
			if err := d.http.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http server stopped", "err", err)
			}
		}()
		d.log.Info("http listening", "addr", hl.Addr().String())
	}
	d.srv = milter.NewServer(serverOptions(c, dc, d.log, d.metrics))
	go func() { d.serveDone <- d.srv.Serve(ln) }()
	d.metrics.ConfigLoaded()
	d.ready.Store(true)
	d.log.Info("milter listening", "addr", c.Listen.String(), "local", ln.Addr().String(), "version", versionString())
	return nil
}

// The HTTP endpoints' bounds. Scrapers and probes make a request every few
// seconds; nothing legitimate needs more. Beyond httpMaxConns connections,
// new ones wait in the listen backlog, so the endpoints can never take the
// file descriptors the milter needs; an idle keep-alive connection is closed
// at once while half the cap is open, and after httpIdleTimeout otherwise.
const (
	httpMaxConns          = 32
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 30 * time.Second
	httpMaxHeaderBytes    = 8 << 10
)

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	var open atomic.Int64
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState: func(c net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			case http.StateIdle:
				if open.Load() >= httpMaxConns/2 {
					c.Close()
				}
			}
		},
	}
}

// serverOptions are the milter server's options for c: its first
// configuration and the settings fixed for the life of the server.
func serverOptions(c *config.Config, dc *dnsClient, log *slog.Logger, m *metrics.Metrics) milter.Options {
	return milter.Options{
		Config:         milterConfig(c, dc.resolver, dc.records),
		Logger:         log,
		Observer:       m,
		IdleTimeout:    c.IdleTimeout,
		PacketTimeout:  c.PacketTimeout,
		SessionTimeout: c.SessionTimeout,
		MaxConnections: c.MaxConnections,
	}
}

// loop handles signals until the daemon stops, and returns the exit status.
func (d *daemon) loop(sigs <-chan os.Signal) int {
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload() //nolint:errcheck // reload logs and counts its own failure
				continue
			}
			d.ready.Store(false)
			d.log.Info("shutting down", "signal", sig.String())
			return d.shutdown(sigs)
		case err := <-d.serveDone:
			d.log.Error("milter server stopped", "err", err)
			d.ready.Store(false)
			return exitError
		}
	}
}

// reload re-reads the config file, re-applies the original flags and, if
// all is well, swaps the milter's configuration atomically. On error the
// running configuration stays, and one line says why.
func (d *daemon) reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.cl.Load()
	var dc *dnsClient
	if err == nil {
		dc, err = d.dns.reconfigure(c, d.metrics)
	}
	if err != nil {
		d.metrics.ObserveReload(false)
		d.log.Error("config reload failed, keeping the running configuration", "err", err)
		return err
	}
	for _, key := range restartNeeded(d.boot, c) {
		d.log.Warn("config key changed but takes effect only after a restart", "key", key)
	}
	d.srv.SetConfig(milterConfig(c, dc.resolver, dc.records))
	d.level.Set(c.LogLevel)
	setMaxProcs(c.MaxProcs)
	changes := config.Changed(d.cfg, c)
	d.cfg, d.dns = c, dc
	d.metrics.ObserveReload(true)
	d.log.Info("config reloaded", changeAttrs(d.cl.File(), changes)...)
	return nil
}

// shutdown stops accepting and lets in-flight sessions finish within
// shutdown_timeout, or until a second SIGTERM or SIGINT. Sessions still open
// then are closed; the exit status is 0 either way, as the MTA retries them.
func (d *daemon) shutdown(sigs <-chan os.Signal) int {
	d.ready.Store(false)
	d.mu.Lock()
	timeout := d.cfg.ShutdownTimeout
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig != syscall.SIGHUP {
					d.log.Warn("second signal, closing the remaining sessions now", "signal", sig.String())
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := d.srv.Shutdown(ctx); err != nil {
		d.log.Warn("shutdown deadline passed, closed the remaining sessions", "timeout", timeout.String(), "err", err)
	}
	if err := <-d.serveDone; err != nil {
		d.log.Error("milter server stopped", "err", err)
	}
	if d.http != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hcancel()
		d.http.Shutdown(hctx) //nolint:errcheck // nothing left to do about it
	}
	d.log.Info("stopped")
	return exitOK
}

// listen opens the milter socket. A unix socket left over by a previous run
// is removed first, unless something still answers on it; the socket then
// gets mode.
func listen(a config.Listen, mode fs.FileMode) (net.Listener, error) {
	if a.Network != "unix" {
		// No TCP keep-alive (four system calls per connection): the
		// milter's own timeouts end connections to a peer that went away.
		lc := net.ListenConfig{KeepAlive: -1}
		ln, err := lc.Listen(context.Background(), "tcp", a.Address)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	}
	if err := removeStaleSocket(a.Address); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", a.Address)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(a.Address, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen_mode: %w", err)
	}
	return ln, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen: %s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("listen: %s is in use by a running process", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listen: remove stale socket: %w", err)
	}
	return nil
}
