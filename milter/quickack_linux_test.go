package milter

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func quickAckOn(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// After each read the milter's socket is in quick-ACK mode, which the
// kernel leaves by itself (here: the test switches it off).
func TestQuickAckAfterRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client := rawDial(t, ln.Addr().String())
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := nc.(*net.TCPConn)
	c := NewServer(Options{}).newConn(tc)
	defer c.Close()
	for i := range 3 {
		rc, _ := tc.SyscallConn()
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0) }) //nolint:errcheck
		if v := quickAckOn(t, tc); v != 0 {
			t.Fatalf("read %d: TCP_QUICKACK %d before the read, want 0 (the test cannot tell)", i, v)
		}
		if _, err := client.Write(pkt('A')); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
		if v := quickAckOn(t, tc); v != 1 {
			t.Errorf("read %d: TCP_QUICKACK %d after the read, want 1", i, v)
		}
	}
}
