package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a process's output for the test log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a background process owned by a test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error // valid after exited is closed
}

// startProc starts cmd in its own process group and makes sure the group is
// gone when the test ends: stop, if given, runs first (a polite shutdown),
// then SIGTERM, then SIGKILL, each bounded in time.
func startProc(t *testing.T, name string, cmd *exec.Cmd, stop func()) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, out: &lockedBuffer{}, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Daemon children may hold the output pipe after the leader exits.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if stop != nil && !p.hasExited() {
			stop()
			p.waitExit(15 * time.Second)
		}
		pgid := cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM) //nolint:errcheck // may be gone already
		if !p.waitExit(10 * time.Second) {
			syscall.Kill(-pgid, syscall.SIGKILL) //nolint:errcheck
			p.waitExit(5 * time.Second)
		}
		// Whatever is left of the group (daemon children that outlived
		// their parent) goes too.
		syscall.Kill(-pgid, syscall.SIGKILL) //nolint:errcheck
		if t.Failed() || testing.Verbose() {
			if s := strings.TrimSpace(p.out.String()); s != "" {
				t.Logf("%s output:\n%s", name, s)
			}
		}
	})
	return p
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// waitListening waits until addr accepts TCP connections, failing the test
// when p exits first or the deadline passes.
func waitListening(t *testing.T, p *proc, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p != nil && p.hasExited() {
			t.Fatalf("%s exited before listening on %s: %v\n%s", p.name, addr, p.err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p != nil {
		t.Fatalf("%s does not listen on %s after %v\n%s", p.name, addr, d, p.out.String())
	}
	t.Fatalf("nothing listens on %s after %v", addr, d)
}

// runCmd runs a short command to completion within d.
func runCmd(d time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// safeRunDir makes a private directory for a Sendmail run. Sendmail's
// safe-file checks refuse group- or world-writable parents, which rules out
// /tmp; the directory goes under $SPFMILTER_E2E_DIR or the user's cache
// directory instead and is removed when the test ends.
func safeRunDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("SPFMILTER_E2E_DIR")
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no directory for the Sendmail run (set SPFMILTER_E2E_DIR): %v", err)
		}
		base = filepath.Join(cache, "spfmilter-e2e")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for p := base; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o022 != 0 {
			t.Fatalf("%s is group- or world-writable, which Sendmail refuses; set SPFMILTER_E2E_DIR to a safe directory", p)
		}
		if p == "/" {
			break
		}
	}
	d, err := os.MkdirTemp(base, "run-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// openRunDir makes a directory for a Postfix run. Postfix's daemons run as
// the postfix user and must reach it, so it lives in the world-traversable
// test temp dir.
func openRunDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o755); err != nil {
				t.Fatal(err)
			}
		}
		if p == os.TempDir() {
			break
		}
	}
	return d
}
