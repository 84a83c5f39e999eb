package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// process is the real program running as a subprocess, with its JSON log.
type process struct {
	cmd     *exec.Cmd
	logs    *logLines
	exited  chan struct{}
	waitErr error
}

// startProcess runs the program (the test binary, see TestMain) with args
// and kills it at the end of the test if it is still running.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "SPFMILTER_TEST_MAIN=1")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill() //nolint:errcheck
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				t.Error("subprocess did not exit after SIGKILL")
			}
		}
	})
	p.logs = readLogs(stderr)
	return p
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// writeAtomically replaces path the way the README tells administrators
// to: a temporary file in the same directory, renamed over the old one.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".spfmilter-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadNeverWeakensPolicy sends SIGHUP to the real process after the
// file was emptied (a write cut short), reduced to comments, and cut in the
// middle of a value: each time the running policy must stay, one log line
// must name the problem and the failure must be counted. A file replaced
// atomically is then taken.
func TestReloadNeverWeakensPolicy(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	dir := t.TempDir()
	file := filepath.Join(dir, "spfmilter.yaml")
	good := "reject: [fail]\nresolver: " + srv.Addr() + "\n"
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "serve", "--config", file, "--listen", "inet:127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--log-format", "json", "--trusted-networks", "", "--authserv-id", "mx.test.example")
	httpLine, next := p.logs.wait(t, 0, "http listening")
	base := "http://" + httpLine["addr"].(string)
	milterLine, next := p.logs.wait(t, next, "milter listening")
	addr := milterLine["local"].(string)

	// 198.51.100.7 is not in example.org's 192.0.2.0/24: fail, rejected.
	rejected := func(when string) {
		t.Helper()
		if act, _ := verdict(t, "tcp", addr, "198.51.100.7", "mail.example.org", "user@example.org"); !isReject(act) {
			t.Errorf("%s: action %+v, want the running policy's rejection", when, act)
		}
	}
	rejected("at start")

	for i, tc := range []struct{ name, content, want string }{
		{"empty", "", "no settings"},
		{"comments only", "# reject: [fail]\n", "no settings"},
		{"cut in a value", "reject: [fa", "config file " + file},
	} {
		if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		p.signal(t, syscall.SIGHUP)
		var line map[string]any
		line, next = p.logs.wait(t, next, "config reload failed, keeping the running configuration")
		if e, _ := line["err"].(string); !strings.Contains(e, tc.want) || !strings.Contains(e, file) {
			t.Errorf("%s: reload error %q, want the file's name and %q", tc.name, e, tc.want)
		}
		_, body := httpGet(t, base+"/metrics")
		failures := `spfmilter_config_reloads_total{result="failure"} ` + strconv.Itoa(i+1)
		if !strings.Contains(body, failures) || !strings.Contains(body, "spfmilter_config_last_reload_successful 0") {
			t.Errorf("%s: metrics lack %q and last_reload_successful 0:\n%s", tc.name, failures, grepLines(body, "spfmilter_config"))
		}
		rejected("after a reload of a file " + tc.name)
	}

	// The file replaced atomically, with a new policy, is taken.
	writeAtomically(t, file, "reject: []\nresolver: "+srv.Addr()+"\n")
	p.signal(t, syscall.SIGHUP)
	_, next = p.logs.wait(t, next, "config reloaded")
	if act, _ := verdict(t, "tcp", addr, "198.51.100.7", "mail.example.org", "user@example.org"); isReject(act) {
		t.Errorf("after a good reload with reject: []: %+v, want no rejection", act)
	}

	p.signal(t, syscall.SIGTERM)
	p.logs.wait(t, next, "stopped")
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("exit: %v, want status 0", p.waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
}
