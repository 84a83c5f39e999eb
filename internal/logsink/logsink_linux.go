//go:build linux && (amd64 || arm64)

package logsink

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// New returns a writer for f that writes with raw system calls when f is a
// socket (journald's stream) or a pipe (a container runtime, a supervisor),
// and f itself otherwise.
//
// Why: a write through *os.File enters the Go scheduler's system call
// bookkeeping, which wakes the runtime's monitor thread (sysmon) whenever
// the process was idle; sysmon then polls every 20 µs while the process
// works. A milter that logs one line per message and sleeps in between
// paid for that on every message: with the verdict line at info, the
// milter used about a quarter more CPU per message under Postfix than at
// warn (bench/README.md).
//
// A raw write must not block the thread: it is made non-blocking (send(2)
// with MSG_DONTWAIT on a socket; on a pipe, through a second, non-blocking
// open of the same pipe). When it would block, because the reader is
// behind, and on any error, the rest of the line goes through f as before,
// so a slow reader still slows the logging goroutine only, and a reader
// that went away has the same effect as before (SIGPIPE on stderr).
func New(f *os.File) io.Writer {
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd = int(s) }) != nil || fd < 0 {
		return f
	}
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return f
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFSOCK:
		return &writer{f: f, fallback: f, fd: fd, send: true}
	case syscall.S_IFIFO:
		// A new open file description of the pipe: O_NONBLOCK on it
		// leaves the one f shares with other processes as it is.
		nfd, err := syscall.Open(fmt.Sprintf("/proc/self/fd/%d", fd), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			return f
		}
		return &writer{f: f, fallback: f, fd: nfd}
	}
	return f
}

type writer struct {
	f        *os.File  // keeps the descriptor open
	fallback io.Writer // f, but for tests
	fd       int
	send     bool
}

func (w *writer) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		var (
			r uintptr
			e syscall.Errno
		)
		if w.send {
			r, _, e = syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(w.fd), uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done),
				syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
		} else {
			r, _, e = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(w.fd), uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
		}
		switch e {
		case 0:
			done += int(r)
		case syscall.EINTR:
		default:
			n, err := w.fallback.Write(p[done:])
			return done + n, err
		}
	}
	return done, nil
}
