package milter

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAck sends the ACK the kernel is delaying, and switches delayed ACKs
// off until the kernel turns them back on by itself. Postfix does not set
// TCP_NODELAY on milter sockets and sends packets that get no answer
// (macros, header fields); with our ACK delayed, its next write waits for
// it, ~40 ms. Setting TCP_QUICKACK while an ACK is pending sends it at once
// (Linux, net/ipv4/tcp.c: __tcp_sock_set_quickack calls tcp_cleanup_rbuf).
func quickAck(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) { //nolint:errcheck // an optimisation only
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) //nolint:errcheck // an optimisation only
	})
}
