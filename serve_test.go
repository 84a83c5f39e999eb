package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// TestMain lets the tests run the program itself as a subprocess: with
// SPFMILTER_TEST_MAIN=1 the test binary is spfmilter.
func TestMain(m *testing.M) {
	if os.Getenv("SPFMILTER_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// syncBuffer is a log sink safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs a daemon in-process with args; signals go through the
// returned channel, and the exit status comes out of the other.
func startDaemon(t *testing.T, args ...string) (*daemon, chan<- os.Signal, <-chan int, *syncBuffer) {
	t.Helper()
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	cl := config.AddFlags(fset)
	if err := parseFlags(fset, args); err != nil {
		t.Fatal(err)
	}
	cfg, err := cl.Load()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	d := newDaemon(cl, cfg, logs)
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	status := make(chan int, 1)
	stopped := make(chan struct{})
	go func() {
		status <- d.loop(sigs)
		close(stopped)
	}()
	t.Cleanup(func() {
		select {
		case sigs <- syscall.SIGTERM:
		default:
		}
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	return d, sigs, status, logs
}

// verdict runs one message through the milter at network/addr and returns
// the first action that is not "continue", and the modifications at end of
// message.
func verdict(t *testing.T, network, addr, ip, helo, sender string) (*gomilter.Action, []gomilter.ModifyAction) {
	t.Helper()
	s := openSession(t, network, addr, ip, helo)
	defer s.Close()
	act, err := s.Mail(sender, nil)
	if err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if act.Code != gomilter.ActContinue {
		return act, nil
	}
	// With a reject policy, never_reject_recipients (postmaster@ by
	// default) moves the refusal to RCPT TO.
	if act, err := s.Rcpt("rcpt@example.net", nil); err != nil || act.Code != gomilter.ActContinue {
		if err != nil {
			t.Fatalf("RCPT: %v", err)
		}
		return act, nil
	}
	return finishBody(t, s)
}

func openSession(t *testing.T, network, addr, ip, helo string) *gomilter.ClientSession {
	t.Helper()
	c := gomilter.NewClientWithOptions(network, addr, gomilter.ClientOptions{
		ReadTimeout:  20 * time.Second,
		WriteTimeout: 20 * time.Second,
		ActionMask:   gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatalf("milter session: %v", err)
	}
	if _, err := s.Conn(helo, gomilter.FamilyInet, 25, ip); err != nil {
		t.Fatalf("CONNECT: %v", err)
	}
	if _, err := s.Helo(helo); err != nil {
		t.Fatalf("HELO: %v", err)
	}
	return s
}

func finishMessage(t *testing.T, s *gomilter.ClientSession) (*gomilter.Action, []gomilter.ModifyAction) {
	t.Helper()
	if act, err := s.Rcpt("rcpt@example.net", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("RCPT: %v %v", act, err)
	}
	return finishBody(t, s)
}

// finishBody sends the header and the end of message.
func finishBody(t *testing.T, s *gomilter.ClientSession) (*gomilter.Action, []gomilter.ModifyAction) {
	t.Helper()
	var h textproto.Header
	h.Add("Subject", "test")
	if act, err := s.Header(h); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("headers: %v %v", act, err)
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader("hello\r\n"))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return act, mods
}

func hasHeader(mods []gomilter.ModifyAction, name string) bool {
	for _, m := range mods {
		if strings.EqualFold(m.HeaderName, name) && m.HeaderValue != "" {
			return true
		}
	}
	return false
}

func isReject(a *gomilter.Action) bool {
	return a.Code == gomilter.ActReject || a.Code == gomilter.ActReplyCode && a.SMTPCode/100 == 5
}

// TestReload drives the reload function directly: a bad file keeps the
// running configuration (and the milter's behaviour), a good one replaces
// it.
func TestReload(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	srv := spftest.NewServer(t, testWorld())
	file := writeFile(t, "reject: fail\n")
	d, _, _, logs := startDaemon(t, "--config", file, "--listen", "inet:127.0.0.1:0", "--http-listen", "",
		"--resolver", srv.Addr(), "--trusted-networks", "", "--authserv-id", "mx.test.example")
	addr := d.milterAddr.String()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("GOMAXPROCS %d with the default max_procs, want 1", got)
	}

	// 198.51.100.7 is not in example.org's 192.0.2.0/24: fail.
	if act, _ := verdict(t, "tcp", addr, "198.51.100.7", "mail.example.org", "user@example.org"); !isReject(act) {
		t.Fatalf("fail with reject: fail: action %+v, want a rejection", act)
	}

	if err := os.WriteFile(file, []byte("reject: [fail, pass]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := d.reload()
	if err == nil || !strings.Contains(err.Error(), `config key "reject"`) || !strings.Contains(err.Error(), `"pass"`) {
		t.Fatalf("reload of a bad file: %v, want an error naming the key and value", err)
	}
	if !strings.Contains(logs.String(), `config key \"reject\"`) {
		t.Errorf("log does not name the key:\n%s", logs)
	}
	if got := gauge(t, d.reg, "spfmilter_config_last_reload_successful"); got != 0 {
		t.Errorf("last_reload_successful = %v after a failed reload, want 0", got)
	}
	if act, _ := verdict(t, "tcp", addr, "198.51.100.7", "mail.example.org", "user@example.org"); !isReject(act) {
		t.Errorf("after a failed reload: action %+v, want the old config's rejection", act)
	}

	// A good file; log_format cannot change without a restart, which is said.
	if err := os.WriteFile(file, []byte("reject: []\nlog_level: debug\nlog_format: json\nmax_procs: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.reload(); err != nil {
		t.Fatalf("reload of a good file: %v", err)
	}
	if got := gauge(t, d.reg, "spfmilter_config_last_reload_successful"); got != 1 {
		t.Errorf("last_reload_successful = %v after a good reload, want 1", got)
	}
	if d.level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reloading log_level: debug", d.level.Level())
	}
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("GOMAXPROCS %d after reloading max_procs: 2", got)
	}
	if !strings.Contains(logs.String(), "takes effect only after a restart\" key=log_format") {
		t.Errorf("no restart warning for log_format:\n%s", logs)
	}
	act, mods := verdict(t, "tcp", addr, "198.51.100.7", "mail.example.org", "user@example.org")
	if act.Code != gomilter.ActAccept && act.Code != gomilter.ActContinue {
		t.Errorf("after the reload: action %+v, want accept", act)
	}
	if !hasHeader(mods, "Received-SPF") {
		t.Errorf("after the reload: modifications %+v lack Received-SPF", mods)
	}
}

// logLines collects a subprocess's JSON log lines.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	added chan struct{}
}

func readLogs(r io.Reader) *logLines {
	l := &logLines{added: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			json.Unmarshal(sc.Bytes(), &m) //nolint:errcheck // a non-JSON line is kept raw only
			l.mu.Lock()
			l.lines = append(l.lines, m)
			l.raw = append(l.raw, sc.Text())
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// wait returns the first line from index from on whose msg is msg, and the
// index after it. The deadline only keeps a broken build from hanging.
func (l *logLines) wait(t *testing.T, from int, msg string) (map[string]any, int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			if l.lines[i] != nil && l.lines[i]["msg"] == msg {
				m := l.lines[i]
				l.mu.Unlock()
				return m, i + 1
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no log %q; got:\n%s", msg, strings.Join(l.raw, "\n"))
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonSignals runs the real program as a subprocess and sends it real
// signals: SIGHUP with a bad then a good file, then SIGTERM while a session
// is in flight, which must finish before the process exits 0.
func TestDaemonSignals(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	dir := t.TempDir()
	sock := filepath.Join(dir, "milter.sock")
	file := filepath.Join(dir, "spfmilter.yml")
	if err := os.WriteFile(file, []byte("reject: fail\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A socket file left over by a previous run.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	cmd := exec.Command(os.Args[0], "serve", "--config", file, "--listen", "unix:"+sock, "--listen-mode", "0600",
		"--http-listen", "127.0.0.1:0", "--resolver", srv.Addr(), "--log-format", "json",
		"--trusted-networks", "", "--authserv-id", "mx.test.example", "--shutdown-timeout", "30s")
	cmd.Env = append(os.Environ(), "SPFMILTER_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill() //nolint:errcheck
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Error("subprocess did not exit after SIGKILL")
			}
		}
	})
	logs := readLogs(stderr)

	httpLine, next := logs.wait(t, 0, "http listening")
	base := "http://" + httpLine["addr"].(string)
	_, next = logs.wait(t, next, "milter listening")

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %v, want a socket with mode 0600", fi.Mode())
	}
	if code, _ := httpGet(t, base+"/-/ready"); code != 200 {
		t.Errorf("/-/ready = %d while serving", code)
	}
	if act, _ := verdict(t, "unix", sock, "198.51.100.7", "mail.example.org", "user@example.org"); !isReject(act) {
		t.Errorf("fail with reject: fail: %+v, want a rejection", act)
	}
	// The resolver and the caches are wired to the metrics.
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(body, `spfmilter_dns_server_up{server="`+srv.Addr()+`"} 1`) ||
		strings.Contains(body, "spfmilter_dns_cache_bytes 0\n") || strings.Contains(body, "spfmilter_spf_record_cache_bytes 0\n") {
		t.Errorf("metrics after a check lack the resolver or the caches:\n%s", grepLines(body, "spfmilter_dns"))
	}

	// SIGHUP with a bad file: the old configuration stays.
	if err := os.WriteFile(file, []byte("reject: fail\nrejct: softfail\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, next := logs.wait(t, next, "config reload failed, keeping the running configuration")
	if e, _ := line["err"].(string); !strings.Contains(e, `config key "rejct"`) {
		t.Errorf("reload error %q does not name the key", e)
	}
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(body, "spfmilter_config_last_reload_successful 0") ||
		!strings.Contains(body, `spfmilter_config_reloads_total{result="failure"} 1`) {
		t.Errorf("metrics after a failed reload lack the failure:\n%s", grepLines(body, "spfmilter_config"))
	}
	if act, _ := verdict(t, "unix", sock, "198.51.100.7", "mail.example.org", "user@example.org"); !isReject(act) {
		t.Errorf("after a failed reload: %+v, want the old rejection", act)
	}

	// SIGHUP with a good file.
	if err := os.WriteFile(file, []byte("reject: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	_, next = logs.wait(t, next, "config reloaded")
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(body, "spfmilter_config_last_reload_successful 1") {
		t.Errorf("metrics after a good reload:\n%s", grepLines(body, "spfmilter_config"))
	}

	// SIGTERM with a message in flight: it completes, then the process
	// exits 0.
	s := openSession(t, "unix", sock, "198.51.100.7", "mail.example.org")
	if act, err := s.Mail("user@example.org", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("MAIL: %+v %v", act, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, next = logs.wait(t, next, "shutting down")
	if code, _ := httpGet(t, base+"/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready = %d while draining, want 503", code)
	}
	// New connections are refused once the listener is closed, which
	// follows the log line closely; the loop is bounded.
	refused := false
	for range 100 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if !refused {
		t.Error("the milter socket still accepts connections while draining")
	}
	act, mods := finishMessage(t, s)
	if act.Code != gomilter.ActAccept && act.Code != gomilter.ActContinue || !hasHeader(mods, "Received-SPF") {
		t.Errorf("in-flight message during shutdown: %+v %+v, want accepted with headers", act, mods)
	}
	s.Close()
	logs.wait(t, next, "stopped")
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("exit: %v, want status 0", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Error("socket file left behind")
	}
}

func grepLines(s, substr string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// gauge reads an unlabelled gauge from reg.
func gauge(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// TestSecondSignalForcesShutdown: a second SIGTERM does not wait for the
// shutdown deadline.
func TestSecondSignalForcesShutdown(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	d, sigs, status, logs := startDaemon(t, "--listen", "inet:127.0.0.1:0", "--http-listen", "", "--resolver", srv.Addr(),
		"--trusted-networks", "", "--shutdown-timeout", "1h")
	s := openSession(t, "tcp", d.milterAddr.String(), "192.0.2.10", "mail.example.org")
	defer s.Close()
	if act, err := s.Mail("user@example.org", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("MAIL: %+v %v", act, err)
	}
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGTERM
	select {
	case st := <-status:
		if st != 0 {
			t.Errorf("status %d, want 0", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still draining after a second SIGTERM; log:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "second signal") {
		t.Errorf("log lacks the forced shutdown:\n%s", logs)
	}
	if d.ready.Load() {
		t.Error("still ready after shutdown")
	}
}

func TestServerOptions(t *testing.T) {
	c := config.Defaults()
	c.IdleTimeout, c.MaxConnections = 3*time.Minute, 17
	c.PacketTimeout, c.SessionTimeout = 4*time.Second, 5*time.Hour
	c.Reject = []spf.Result{spf.Fail}
	o := serverOptions(c, &dnsClient{}, nil, nil)
	if o.IdleTimeout != 3*time.Minute || o.MaxConnections != 17 {
		t.Errorf("idle %v, max %d; want 3m, 17", o.IdleTimeout, o.MaxConnections)
	}
	if o.PacketTimeout != 4*time.Second || o.SessionTimeout != 5*time.Hour {
		t.Errorf("packet %v, session %v; want 4s, 5h", o.PacketTimeout, o.SessionTimeout)
	}
	if o.Config == nil || o.Config.Policy.MailFrom[spf.Fail] != "reject" {
		t.Errorf("config %+v", o.Config)
	}
}
