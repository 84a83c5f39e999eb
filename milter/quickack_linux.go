package milter

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAck switches delayed ACKs off until the kernel turns them back on
// (it does so by itself, which is why this follows every read). Postfix
// does not set TCP_NODELAY on milter sockets and sends packets that get no
// answer (macros, header fields); with our ACK delayed, its next write
// waits for it, ~40 ms.
func quickAck(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) { //nolint:errcheck // an optimisation only
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) //nolint:errcheck // an optimisation only
	})
}
