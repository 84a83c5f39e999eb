//go:build linux && (amd64 || arm64)

package milter

import (
	"errors"
	"net"
	"os"
	"path/filepath"
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
