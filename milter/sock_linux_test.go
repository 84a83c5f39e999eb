//go:build linux && (amd64 || arm64)

package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// acceptOne listens on network ("tcp4", "tcp6", "unix"), connects once and
// returns the sockConn the listener accepted and the client's end.
func acceptOne(t *testing.T, network string) (*sockListener, net.Conn, net.Conn) {
	t.Helper()
	addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0", "unix": filepath.Join(t.TempDir(), "s")}[network]
	ln, err := net.Listen(network, addr)
	if err != nil {
		if network == "tcp6" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	sl := newSockListener(ln)
	if sl == nil {
		t.Fatal("newSockListener: nil")
	}
	t.Cleanup(func() { sl.Close() })
	client, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := sl.accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sl, c, client
}

// TestSockConnNetConn runs x/net's net.Conn conformance tests (I/O,
// deadlines in the past, present and future, Close during a blocked call,
// concurrent use) on sockConn, against the standard library's other end.
func TestSockConnNetConn(t *testing.T) {
	for _, network := range []string{"tcp4", "unix"} {
		t.Run(network, func(t *testing.T) {
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				_, c, client := acceptOne(t, network)
				return c, client, func() { c.Close(); client.Close() }, nil
			})
		})
	}
}

// TestSockConnEOFAfterShortRead: a read that returned less than it could
// take makes the next one wait for an event first (no read for EAGAIN).
// When the last bytes and the end of stream arrive together, their events
// fold into one wake-up, which the read of the bytes consumes: the end of
// stream must still be read, not waited for.
func TestSockConnEOFAfterShortRead(t *testing.T) {
	for _, network := range []string{"tcp4", "unix"} {
		t.Run(network, func(t *testing.T) {
			_, c, client := acceptOne(t, network)
			sc := c.(*sockConn)
			buf := make([]byte, 64)
			if _, err := client.Write([]byte("a")); err != nil {
				t.Fatal(err)
			}
			if n, err := c.Read(buf); err != nil || string(buf[:n]) != "a" {
				t.Fatalf("first read: %q, %v", buf[:n], err)
			}
			if !sc.drained {
				t.Fatal("a short read did not mark the socket drained")
			}
			if _, err := client.Write([]byte("b")); err != nil {
				t.Fatal(err)
			}
			client.Close()
			// Until the dispatcher has seen the end of stream: from
			// here on at most one wake-up is waiting, for both.
			for end := time.Now().Add(5 * time.Second); !sc.hup.Load(); time.Sleep(time.Millisecond) {
				if time.Now().After(end) {
					t.Fatal("no end-of-stream event in 5 s")
				}
			}
			if n, err := c.Read(buf); err != nil || string(buf[:n]) != "b" {
				t.Fatalf("second read: %q, %v", buf[:n], err)
			}
			// No read deadline: a read that waits for an event that was
			// folded away waits forever.
			done := make(chan error, 1)
			go func() {
				n, err := c.Read(buf)
				if n != 0 {
					err = fmt.Errorf("%d bytes, %v", n, err)
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, io.EOF) {
					t.Fatalf("third read: %v, want io.EOF", err)
				}
			case <-time.After(10 * time.Second):
				c.Close()
				t.Fatal("third read still waiting 10 s after the end of stream arrived")
			}
		})
	}
}

func TestSockConnAddrs(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6", "unix"} {
		t.Run(network, func(t *testing.T) {
			sl, c, client := acceptOne(t, network)
			if network != "unix" {
				if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
					t.Errorf("RemoteAddr %s, want %s", got, want)
				}
			} else if _, ok := c.RemoteAddr().(*net.UnixAddr); !ok {
				t.Errorf("RemoteAddr %T, want *net.UnixAddr", c.RemoteAddr())
			}
			if got, want := c.LocalAddr().String(), sl.ln.Addr().String(); got != want {
				t.Errorf("LocalAddr %s, want %s", got, want)
			}
			if sc := c.(*sockConn); sc.tcp != (network != "unix") {
				t.Errorf("tcp = %v on %s", sc.tcp, network)
			}
		})
	}
}

// TestSockListenerClose: closing the listener ends a waiting accept with
// net.ErrClosed (Serve then returns), and closes the socket.
func TestSockListenerClose(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := newSockListener(ln)
	errc := make(chan error, 1)
	go func() {
		_, err := sl.accept()
		errc <- err
	}()
	if err := sl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after Close: %v, want net.ErrClosed", err)
	}
	if c, err := net.Dial("tcp4", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts connections after Close")
	}
}

// TestSockConnWriteDeadline: a peer that stops reading holds a write only
// until the write deadline, and the error is a timeout (what the wire code
// checks for).
func TestSockConnWriteDeadline(t *testing.T) {
	_, c, _ := acceptOne(t, "tcp4")
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 1<<20)
	var err error
	for range 64 { // at most 64 MiB, far beyond any socket buffer
		if _, err = c.Write(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeoutErr(err) {
		t.Fatalf("write to a peer that does not read: %v, want a timeout", err)
	}
}

// TestServeUsesSockConn pins that the path the wire tests take through a
// real listener is sockConn's, on the systems that have it.
func TestServeUsesSockConn(t *testing.T) {
	if !haveSockConn {
		t.Skip("no sockConn here")
	}
	_, c, _ := acceptOne(t, "tcp4")
	if _, ok := c.(*sockConn); !ok {
		t.Fatalf("accepted %T", c)
	}
}

// TestAcceptOutOfDescriptors: accept4 failing because the process is at its
// descriptor limit (EMFILE) is logged and retried with a backoff, not the
// end of Serve; the client waiting in the backlog is served once
// descriptors are free again.
func TestAcceptOutOfDescriptors(t *testing.T) {
	if _, err := sockPoller(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client := rawDial(t, ln.Addr().String()) // waits in the backlog
	logs := &syncBuffer{}
	srv := NewServer(Options{Config: testConfig(world()), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	served := make(chan error, 1)

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// The lowest free descriptor number becomes the limit: no new
	// descriptor fits under it.
	free, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(free)
	low := lim
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	if fd, err := syscall.Dup(0); err == nil {
		syscall.Close(fd)
		restore()
		t.Fatalf("descriptor %d allocated under a limit of %d", fd, low.Cur)
	}
	go func() { served <- srv.Serve(ln) }()
	waitFor(t, "the accept failure in the log", func() bool {
		return strings.Contains(logs.String(), "milter accept failed; retrying")
	})
	restore()
	if !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("log does not name the error:\n%s", logs.String())
	}
	if _, err := client.Write(optneg()); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if code, err := readPacket(client); err != nil || code != 'O' {
		t.Fatalf("after the limit was raised: %q %v, want the OPTNEG answer", code, err)
	}
	client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
