//go:build !linux

package milter

import "syscall"

// quickAck does nothing where TCP_QUICKACK does not exist; a unix socket
// avoids the delayed-ACK stall there (see the README).
func quickAck(syscall.RawConn) {}
