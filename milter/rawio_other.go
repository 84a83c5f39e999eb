//go:build !linux

package milter

import "syscall"

// rawRead and rawWrite are Linux only (see rawio_linux.go); elsewhere conn
// uses the net.Conn.
const haveRawIO = false

func rawRead(syscall.RawConn, []byte) (int, error)  { panic("milter: no raw I/O on this system") }
func rawWrite(syscall.RawConn, []byte) (int, error) { panic("milter: no raw I/O on this system") }
