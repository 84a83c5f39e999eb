//go:build linux && (amd64 || arm64)

package milter

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// On Linux the milter owns its MTA connections outright: it accepts, reads,
// writes and closes them with raw system calls (syscall.RawSyscall), and
// waits for them through an epoll instance of its own, which the Go
// runtime's poller watches like any other descriptor.
//
// Why not net.Conn: the standard library makes accept4(2), close(2) and the
// socket options of every new connection through the scheduler's system
// call bookkeeping (syscall.Syscall). A milter makes a few small calls per
// message and sleeps in between, and each time that bookkeeping runs after
// the process was idle it wakes the runtime's monitor thread (sysmon),
// which then polls every 20 µs while the process works. Under Postfix at a
// few hundred messages a second that monitor took a fifth to a quarter of
// the milter's CPU time (perf); with accept and close made raw, the milter
// used 22–29% less CPU per message (bench/README.md).
//
// Nothing here blocks a thread: every socket is non-blocking, a read or
// write that would block waits on a channel that the dispatcher goroutine
// signals from the epoll events (edge-triggered), and deadlines are timers
// that signal the same channel.
const haveSockConn = true

// poller is the process's epoll instance and its dispatcher.
type poller struct {
	epfd int
	file *os.File // epfd, as the runtime's poller sees it
	mu   sync.Mutex
	fds  map[int32]*sock
}

var (
	pollerOnce sync.Once
	thePoller  *poller
	pollerErr  error
)

// sockPoller returns the poller, starting it on first use; an error means
// the milter uses net.Conn instead.
func sockPoller() (*poller, error) {
	pollerOnce.Do(func() { thePoller, pollerErr = newPoller() })
	return thePoller, pollerErr
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	// The runtime's poller reports the epoll descriptor readable when one
	// of ours has an event.
	f := os.NewFile(uintptr(epfd), "milter-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &poller{epfd: epfd, file: f, fds: make(map[int32]*sock)}
	go p.run(rc)
	return p, nil
}

// run dispatches events for as long as the process lives. It stays in one
// RawConn.Read: the runtime forgets the descriptor's readiness at the start
// of each Read, so a Read per round would have to ask epoll once more
// before every wait; within one, an epoll_pwait that returns fewer events
// than it can take has emptied the list, and the next event's edge wakes
// the wait.
func (p *poller) run(rc syscall.RawConn) {
	var (
		evs   [128]syscall.EpollEvent
		errno syscall.Errno
	)
	err := rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
			switch {
			case e == syscall.EINTR:
				continue
			case e != 0:
				errno = e
				return true
			case r == 0:
				return false
			}
			n := int(r)
			p.mu.Lock()
			for i := range evs[:n] {
				if c := p.fds[evs[i].Fd]; c != nil {
					c.ready(evs[i].Events)
				}
			}
			p.mu.Unlock()
			if n < len(evs) {
				return false
			}
		}
	})
	if err == nil {
		err = os.NewSyscallError("epoll_pwait", errno)
	}
	// Cannot happen: the descriptor is ours and never closed. Without the
	// dispatcher no connection would make progress.
	panic("milter: the socket poller failed: " + err.Error())
}

// epollET is EPOLLET, which package syscall spells with a different sign
// per architecture.
const epollET = 1 << 31

// A descriptor is watched for input only until a write would block (see
// sockConn.Write): a unix socket reports room to write every time the peer
// reads, which would wake the dispatcher for nothing several times a
// message.
const (
	readEvents  = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET
	writeEvents = readEvents | syscall.EPOLLOUT
)

// watchWrites adds EPOLLOUT to c's events. Changing the events re-checks
// the socket, so room that appeared meanwhile is reported too.
func (p *poller) watchWrites(c *sock) error {
	ev := syscall.EpollEvent{Events: writeEvents, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

func (p *poller) add(c *sock) error {
	p.mu.Lock()
	p.fds[int32(c.fd)] = c
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: readEvents, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.remove(c)
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// remove takes c out of the epoll set (close alone would not while
// another process still shares the socket, a child between fork and exec)
// and forgets it. A descriptor number reused by a newer connection is that
// connection's.
func (p *poller) remove(c *sock) {
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil) //nolint:errcheck // gone already is fine
	p.mu.Lock()
	if p.fds[int32(c.fd)] == c {
		delete(p.fds, int32(c.fd))
	}
	p.mu.Unlock()
}

// sock is a non-blocking descriptor in the poller.
type sock struct {
	fd     int
	p      *poller
	rd, wr waiter
	// io is held shared around each system call on fd, and exclusively
	// to close it: a descriptor number is never used after close, when it
	// may already name another connection.
	io     sync.RWMutex
	closed atomic.Bool
	// writes is set once EPOLLOUT is watched (under wr.op).
	writes bool
	// drained is set when the last read returned less than it could
	// take (under rd.op): the socket was empty then, so the next read
	// waits for an event first instead of asking for EAGAIN. Any bytes
	// that arrived since have signalled rd: with EPOLLET, every arrival
	// after the dispatcher took the last event is a new event. Not so an
	// end of stream or an error that came in with the bytes read: its
	// event may have been folded into the token the read consumed, and
	// only the next read reports it. hup is set by the dispatcher, before
	// it signals, once the socket reported one; from then on every read
	// goes to the socket.
	drained bool
	hup     atomic.Bool
	done    chan struct{} // closed by close; ends every wait
}

func (c *sock) init(fd int, p *poller) error {
	c.fd, c.p = fd, p
	c.done = make(chan struct{})
	c.rd.ch = make(chan struct{}, 1)
	c.wr.ch = make(chan struct{}, 1)
	return p.add(c)
}

// close ends every wait, then runs closeFD, which closes the descriptor,
// once no system call is using it.
func (c *sock) close(closeFD func() error) error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	close(c.done)
	c.rd.stop()
	c.wr.stop()
	c.io.Lock()
	defer c.io.Unlock()
	c.p.remove(c)
	return closeFD()
}

// sockConn is an accepted TCP or unix stream socket.
type sockConn struct {
	sock
	tcp   bool
	laddr net.Addr
	raddr net.Addr
}

// waiter is one direction's wait: a token from the dispatcher or the
// deadline's timer, and the deadline.
type waiter struct {
	// op is held for a whole Read (Write, accept), as in the standard
	// library: one waiter at a time, so one token wakes the right one.
	op    sync.Mutex
	ch    chan struct{} // capacity 1
	dl    atomic.Int64  // deadline as time.Since(monoEpoch); 0 for none
	mu    sync.Mutex    // guards timer
	timer *time.Timer
}

func (w *waiter) signal() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (w *waiter) setDeadline(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.IsZero() {
		w.dl.Store(0)
		if w.timer != nil {
			w.timer.Stop()
		}
		return
	}
	w.dl.Store(max(int64(t.Sub(monoEpoch)), 1))
	d := time.Until(t)
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.signal)
	} else {
		w.timer.Reset(d)
	}
}

func (w *waiter) stop() {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// expired reports whether the deadline has passed.
func (w *waiter) expired() bool {
	dl := w.dl.Load()
	return dl != 0 && int64(time.Since(monoEpoch)) >= dl
}

// monoEpoch makes deadlines monotonic: a wall clock that steps back does not
// move them.
var monoEpoch = time.Now()

func (c *sock) ready(events uint32) {
	if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		c.hup.Store(true)
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		c.rd.signal()
	}
	if events&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		c.wr.signal()
	}
}

// wait blocks until w is signalled; it fails once the deadline has passed
// or the connection is closed. A signal may be stale (an event the last
// system call already consumed): the caller tries again and comes back.
func (c *sock) wait(w *waiter) error {
	if w.expired() {
		return os.ErrDeadlineExceeded
	}
	select {
	case <-w.ch:
		return nil
	case <-c.done:
		return net.ErrClosed
	}
}

// watchWrites has the poller report room to write on c.
func (c *sock) watchWrites() error {
	c.io.RLock()
	defer c.io.RUnlock()
	if c.closed.Load() {
		return net.ErrClosed
	}
	if err := c.p.watchWrites(c); err != nil {
		return err
	}
	c.writes = true
	return nil
}

// syscall runs one raw system call on the descriptor, unless closed.
func (c *sock) syscall(trap uintptr, a2, a3, a4 uintptr) (uintptr, syscall.Errno, bool) {
	c.io.RLock()
	defer c.io.RUnlock()
	if c.closed.Load() {
		return 0, 0, false
	}
	r, _, e := syscall.RawSyscall6(trap, uintptr(c.fd), a2, a3, a4, 0, 0)
	return r, e, true
}

func (c *sockConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rd.op.Lock()
	defer c.rd.op.Unlock()
	if c.rd.expired() {
		// As in the standard library: a deadline that has passed fails
		// the call even when data is waiting.
		return 0, os.ErrDeadlineExceeded
	}
	if c.drained && !c.hup.Load() {
		c.drained = false
		if err := c.wait(&c.rd); err != nil {
			return 0, err
		}
	}
	for {
		r, e, ok := c.syscall(syscall.SYS_READ, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0)
		switch {
		case !ok:
			return 0, net.ErrClosed
		case e == 0 && r == 0:
			return 0, io.EOF
		case e == 0:
			// A stream socket's read stops short only when its queue
			// is empty (tcp_recvmsg, unix_stream_read_generic).
			c.drained = int(r) < len(b)
			return int(r), nil
		case e == syscall.EINTR:
			continue
		case e != syscall.EAGAIN:
			return 0, os.NewSyscallError("read", e)
		}
		if err := c.wait(&c.rd); err != nil {
			return 0, err
		}
	}
}

// Write writes all of b. send(2) with MSG_NOSIGNAL: a peer that went away
// is an EPIPE error, never a signal.
func (c *sockConn) Write(b []byte) (int, error) {
	c.wr.op.Lock()
	defer c.wr.op.Unlock()
	if c.wr.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	done := 0
	for done < len(b) {
		r, e, ok := c.syscall(syscall.SYS_SENDTO, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done), syscall.MSG_NOSIGNAL)
		switch {
		case !ok:
			return done, net.ErrClosed
		case e == 0:
			done += int(r)
			continue
		case e == syscall.EINTR:
			continue
		case e != syscall.EAGAIN:
			return done, os.NewSyscallError("write", e)
		}
		if !c.writes {
			// The first write that would block: from now on the
			// dispatcher reports room to write; try again first.
			if err := c.watchWrites(); err != nil {
				return done, err
			}
			continue
		}
		if err := c.wait(&c.wr); err != nil {
			return done, err
		}
	}
	return done, nil
}

// Close closes the socket at once; a Read or Write waiting in another
// goroutine returns net.ErrClosed.
func (c *sockConn) Close() error {
	return c.close(func() error {
		if _, _, e := syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(c.fd), 0, 0); e != 0 {
			return os.NewSyscallError("close", e)
		}
		return nil
	})
}

func (c *sockConn) LocalAddr() net.Addr  { return c.laddr }
func (c *sockConn) RemoteAddr() net.Addr { return c.raddr }

func (c *sockConn) SetDeadline(t time.Time) error {
	c.rd.setDeadline(t)
	c.wr.setDeadline(t)
	return nil
}

func (c *sockConn) SetReadDeadline(t time.Time) error  { c.rd.setDeadline(t); return nil }
func (c *sockConn) SetWriteDeadline(t time.Time) error { c.wr.setDeadline(t); return nil }

// quickAck sets TCP_QUICKACK (see conn); a no-op on unix sockets.
func (c *sockConn) quickAck() {
	if c.tcp {
		c.setsockopt(syscall.IPPROTO_TCP, 12 /* TCP_QUICKACK */, 1)
	}
}

func (c *sock) setsockopt(level, opt, v int) syscall.Errno {
	c.io.RLock()
	defer c.io.RUnlock()
	if c.closed.Load() {
		return syscall.EBADF
	}
	return c.setsockoptFD(c.fd, level, opt, v)
}

func (*sock) setsockoptFD(fd, level, opt, v int) syscall.Errno {
	v32 := int32(v)
	_, _, e := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v32)), 4, 0)
	return e
}

// sockListener accepts sockConns from a TCP or unix listener. The
// listener's descriptor joins the poller too (the standard library's
// RawConn of a listener cannot wait), and it is closed through close.
type sockListener struct {
	sock
	tcp bool
	ln  net.Listener
}

// newSockListener returns nil when ln is not a TCP or unix listener, or
// the poller cannot start: the caller then uses ln as it is.
func newSockListener(ln net.Listener) *sockListener {
	var (
		sc  syscall.Conn
		tcp bool
	)
	switch l := ln.(type) {
	case *net.TCPListener:
		sc, tcp = l, true
	case *net.UnixListener:
		sc = l
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd = int(s) }) != nil || fd < 0 {
		return nil
	}
	p, err := sockPoller()
	if err != nil {
		return nil
	}
	l := &sockListener{tcp: tcp, ln: ln}
	if l.init(fd, p) != nil {
		return nil
	}
	return l
}

// Close closes the listener; a waiting accept returns net.ErrClosed.
func (l *sockListener) Close() error {
	err := l.close(l.ln.Close)
	if errors.Is(err, net.ErrClosed) {
		return l.ln.Close()
	}
	return err
}

// accept returns the next connection. Errors are net.ErrClosed once
// closed, or accept4's, as *os.SyscallError, whose Errno tells whether it
// is temporary (EMFILE and friends).
func (l *sockListener) accept() (net.Conn, error) {
	l.rd.op.Lock()
	defer l.rd.op.Unlock()
	var sa syscall.RawSockaddrAny
	for {
		n := uint32(syscall.SizeofSockaddrAny)
		r, e, ok := l.syscall(syscall.SYS_ACCEPT4, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)),
			syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch {
		case !ok:
			return nil, net.ErrClosed
		case e == syscall.EINTR, e == syscall.ECONNABORTED:
			// Interrupted, or the client left the queue before we took
			// it (the standard library retries it too).
			continue
		case e == syscall.EAGAIN:
			if err := l.wait(&l.rd); err != nil {
				return nil, err
			}
			continue
		case e != 0:
			return nil, os.NewSyscallError("accept4", e)
		}
		fd := int(r)
		c := &sockConn{tcp: l.tcp, laddr: l.ln.Addr(), raddr: sockaddrAddr(&sa, l.tcp)}
		if l.tcp {
			// Like the standard library: answers leave at once.
			c.setsockoptFD(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		}
		if err := c.init(fd, l.p); err != nil {
			syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
			return nil, err
		}
		return c, nil
	}
}

func sockaddrAddr(sa *syscall.RawSockaddrAny, tcp bool) net.Addr {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), p.Addr[:]...)), Port: int(port[0])<<8 | int(port[1])}
	case syscall.AF_INET6:
		p := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		a := &net.TCPAddr{IP: net.IP(append([]byte(nil), p.Addr[:]...)), Port: int(port[0])<<8 | int(port[1])}
		if p.Scope_id != 0 {
			a.Zone = strconv.FormatUint(uint64(p.Scope_id), 10)
		}
		return a
	}
	if tcp {
		return &net.TCPAddr{}
	}
	return &net.UnixAddr{Net: "unix"}
}
