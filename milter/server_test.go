package milter

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// readPacket reads one milter packet from a raw connection.
func readPacket(c net.Conn) (byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return 0, err
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if _, err := io.CopyN(io.Discard, c, int64(n-1)); err != nil {
		return 0, err
	}
	return hdr[4], nil
}

func TestIdleTimeoutClosesIdleConnection(t *testing.T) {
	h := start(t, Options{Config: testConfig(world()), IdleTimeout: 100 * time.Millisecond})
	c := rawDial(t, h.addr)
	if _, err := c.Write(optneg()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if code, err := readPacket(c); err != nil || code != 'O' {
		t.Fatalf("negotiation: %q %v", code, err)
	}
	// Now idle: the milter must hang up (EOF), long before our own deadline.
	_, err := readPacket(c)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: got %v, want EOF", err)
	}
	waitFor(t, "the connection to be forgotten", func() bool { return h.srv.activeConnections() == 0 })
	opened, closed, _, _, _ := h.obs.snapshot()
	if opened != 1 || closed != 1 {
		t.Errorf("observer: %d opened, %d closed", opened, closed)
	}
	if !strings.Contains(h.logs.String(), "closing idle milter connection") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

func TestMaxConnections(t *testing.T) {
	h := start(t, Options{Config: testConfig(world()), MaxConnections: 1})
	a := h.connect(gomilter.FamilyInet, clientA)
	if n := h.srv.activeConnections(); n != 1 {
		t.Fatalf("activeConnections %d", n)
	}

	b := rawDial(t, h.addr) // completes in the listen backlog
	if _, err := b.Write(optneg()); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := readPacket(b); !isTimeout(err) {
		t.Fatalf("second connection served beyond the cap: %v", err)
	}
	if n := h.srv.activeConnections(); n != 1 {
		t.Errorf("activeConnections %d with one waiting", n)
	}

	a.cs.Close()
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if code, err := readPacket(b); err != nil || code != 'O' {
		t.Fatalf("waiting connection not served after a slot freed: %q %v", code, err)
	}
}

// startManual is a Server whose Serve result the test reads itself.
func startManual(t *testing.T, o Options) (*Server, string, chan error) {
	t.Helper()
	srv := NewServer(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return srv, ln.Addr().String(), served
}

func TestShutdownWaitsForInFlightSession(t *testing.T) {
	obs := &recorder{}
	srv, addr, served := startManual(t, Options{Config: testConfig(world()), Observer: obs})
	h := &harness{t: t, srv: srv, addr: addr, obs: obs}
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	m.continued("mail", m.mail("alice@pass.test"), nil)

	var returned atomic.Bool
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
		returned.Store(true)
	}()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Error("still accepting after Shutdown")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("dial after Shutdown: %v", err)
	}

	// The session in flight is still served to its end.
	mods, end := m.data("QSHUT")
	m.continued("eom", end, nil)
	if len(applyMods(nil, mods)) != 2 {
		t.Errorf("mods %v", mods)
	}
	if returned.Load() {
		t.Fatal("Shutdown returned with a session open")
	}
	m.cs.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last session closed")
	}
	if n := srv.activeConnections(); n != 0 {
		t.Errorf("activeConnections %d", n)
	}
}

func TestShutdownDeadlineClosesSessions(t *testing.T) {
	srv, addr, served := startManual(t, Options{Config: testConfig(world())})
	c := rawDial(t, addr)
	if _, err := c.Write(optneg()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := readPacket(c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want deadline exceeded", err)
	}
	if _, err := readPacket(c); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("session after the deadline: %v, want closed", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	waitFor(t, "no connections", func() bool { return srv.activeConnections() == 0 })
}

func TestShutdownBeforeServe(t *testing.T) {
	srv := NewServer(Options{Config: testConfig(world())})
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener left open: %v", err)
	}
}

// flakyListener fails its first Accept with a temporary error.
type flakyListener struct {
	net.Listener
	failed atomic.Bool
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, tempErr{}
	}
	return l.Listener.Accept()
}

func TestTemporaryAcceptErrorKeepsServing(t *testing.T) {
	srv := NewServer(Options{Config: testConfig(world())})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(&flakyListener{Listener: ln}) }()
	h := &harness{t: t, srv: srv, addr: ln.Addr().String(), obs: &recorder{}}
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	m.accepted("alice@pass.test", "QTMP")
	m.cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// activeConnections is the number of connections the Server tracks.
func (s *Server) activeConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
