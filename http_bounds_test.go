package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// openFDs is the number of file descriptors the process holds.
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(es)
}

// A flood of keep-alive connections to the HTTP port holds at most
// httpMaxConns descriptors on the daemon's side, every request is answered,
// and the milter keeps accepting meanwhile.
func TestHTTPKeepAliveFlood(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	d, _, _, _ := startDaemon(t, "--listen", "inet:127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--resolver", srv.Addr(),
		"--trusted-networks", "")
	const flood = 300
	base := openFDs(t)
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.DialTimeout("tcp", d.httpAddr.String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "GET /-/healthy HTTP/1.1\r\nHost: spfmilter\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	// Every request gets its answer, though only httpMaxConns are served
	// at a time: the others wait in the backlog until idle ones close.
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	// The client side holds flood descriptors; the daemon's side at most
	// the cap (without it, one per client connection).
	if n := openFDs(t) - base; n > flood+httpMaxConns {
		t.Errorf("%d descriptors opened for %d idle keep-alive clients; want at most %d", n, flood, flood+httpMaxConns)
	}
	act, _ := verdict(t, "tcp", d.milterAddr.String(), "192.0.2.10", "mail.example.org", "user@example.org")
	if act.Code != gomilter.ActContinue && act.Code != gomilter.ActAccept {
		t.Errorf("milter answer during the flood: %+v", act)
	}
	if code, _ := httpGet(t, "http://"+d.httpAddr.String()+"/-/healthy"); code != http.StatusOK {
		t.Errorf("health during the flood: %d", code)
	}
}
