package milter

import (
	"io"
	"syscall"
	"unsafe"
)

// rawRead and rawWrite are the socket's read(2) and write(2) without the
// Go scheduler's system call bookkeeping (syscall.RawSyscall): the socket
// is non-blocking (the runtime's poller waits for it, through RawConn), so
// neither call blocks. The bookkeeping is not free for a milter that makes
// a few small calls per message and sleeps between them: every call that
// enters it while the process was idle wakes the runtime's monitor thread
// (sysmon), which then polls every 20 µs for a while. Under Postfix at a
// few hundred messages a second that monitor took a quarter of the
// milter's CPU time (perf), most of it for nothing.
const haveRawIO = true

func rawRead(rc syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if e == syscall.EINTR {
				continue
			}
			n, errno = int(r), e
			return e != syscall.EAGAIN
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func rawWrite(rc syscall.RawConn, p []byte) (int, error) {
	var (
		done  int
		errno syscall.Errno
	)
	err := rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
			switch e {
			case 0:
				done += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = errno
	}
	return done, err
}
