//go:build linux && (amd64 || arm64)

package milter

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketFD runs f with the accepted socket's descriptor: a sockConn's, or a
// *net.TCPConn's.
func socketFD(t *testing.T, nc net.Conn, f func(fd int)) {
	t.Helper()
	if sc, ok := nc.(*sockConn); ok {
		f(sc.fd)
		return
	}
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { f(int(fd)) }); err != nil {
		t.Fatal(err)
	}
}

func quickAckOn(t *testing.T, nc net.Conn) int {
	t.Helper()
	var v int
	var gerr error
	socketFD(t, nc, func(fd int) { v, gerr = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// A packet that gets no answer has its ACK pushed out before the milter
// waits for the next one: the socket is in quick-ACK mode while it waits
// (which the kernel leaves by itself; here the test switches it off). A
// packet that gets an answer forces nothing: its ACK leaves with the answer.
// Both for the milter's own sockets (sockConn, what Serve accepts on Linux)
// and for a *net.TCPConn (elsewhere).
func TestQuickAckWhenUnanswered(t *testing.T) {
	t.Run("sockConn", func(t *testing.T) {
		if !haveSockConn {
			t.Skip("no sockConn here")
		}
		_, nc, client := acceptOne(t, "tcp4")
		testQuickAck(t, nc, client)
	})
	t.Run("net.TCPConn", func(t *testing.T) {
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
		testQuickAck(t, nc, client)
	})
}

func testQuickAck(t *testing.T, tc, client net.Conn) {
	c := NewServer(Options{}).newConn(tc)
	defer c.Close()
	off := func() {
		socketFD(t, tc, func(fd int) { unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0) }) //nolint:errcheck
		if v := quickAckOn(t, tc); v != 0 {
			t.Fatalf("TCP_QUICKACK %d after switching it off (the test cannot tell)", v)
		}
	}
	// read hands the milter's next packet to a goroutine; its result
	// arrives on the channel once the test has sent one.
	read := func() chan error {
		ch := make(chan error, 1)
		go func() { _, err := c.Read(make([]byte, 5)); ch <- err }()
		return ch
	}
	send := func(p []byte) {
		if _, err := client.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	send(pkt('A'))
	if err := <-read(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		// The packet just read got no answer: waiting for the next one,
		// the milter pushes its ACK out.
		off()
		acks := c.acks
		ch := read()
		deadline := time.Now().Add(10 * time.Second)
		for quickAckOn(t, tc) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: TCP_QUICKACK still 0 while the milter waits after an unanswered packet", i)
			}
			time.Sleep(time.Millisecond)
		}
		send(pkt('A'))
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
		if c.acks != acks+1 {
			t.Fatalf("round %d: %d forced ACKs, want %d", i, c.acks, acks+1)
		}
		// This one is answered: the answer leaves before the next read,
		// and nothing is forced.
		c.Write(pkt('c')) //nolint:errcheck
		acks = c.acks
		ch = read()
		if _, err := readPacket(client); err != nil {
			t.Fatal(err)
		}
		send(pkt('A'))
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
		if c.acks != acks {
			t.Fatalf("round %d: %d forced ACKs after an answered packet, want %d", i, c.acks, acks)
		}
	}
}
