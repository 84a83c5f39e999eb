package milter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// What the milter asks of the MTA at negotiation. Only the stages that carry
// something we use are kept: RCPT, DATA, EOH, unknown commands and the body
// are switched off to save round trips (the body is asked for only while
// dkim_rescue is on; see conn.answered). Every configuration needs the rest:
// CONNECT for the client address, HELO for the HELO identity, MAIL FROM for
// the checks, the header fields for forged Authentication-Results and the
// end of message for our fields. Header fields, CONNECT and HELO go without
// an answer (SMFIP_NOHREPL, SMFIP_NR_CONN, SMFIP_NR_HELO) where the MTA
// offers it, and so does MAIL FROM (SMFIP_NR_MAIL, added by conn) when the
// configuration cannot refuse there: conn masks these flags by the MTA's
// offer and answers header fields itself otherwise (go-milter writes nothing
// for the session's nil answer); wireMilter drops the continue answers to
// CONNECT, HELO and MAIL FROM. Both Postfix and Sendmail offer and honour
// them at protocol version 2, which go-milter speaks (e2e/).
const (
	protocol = gomilter.OptNoRcptTo | gomilter.OptNoBody | gomilter.OptNoEOH |
		gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptNoHeaderReply |
		noReplyFlags
	actions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptSetSymList
)

// symList is the macros asked for per stage (SMFIF_SETSYMLIST). A list
// replaces the MTA's default list for that stage. Neither MTA sends
// {client_addr} unless asked; it is how Sendmail's IPv6 clients are read.
var symList = map[gomilter.Stage][]string{
	gomilter.StageConnect:  {"j", "{daemon_name}", "{client_addr}", "_"},
	gomilter.StageMailFrom: {"i", "{auth_authen}", "{auth_type}", "{mail_addr}"},
	gomilter.StageEOM:      {"i"},
}

// symStages are symList's stages, in the order the negotiation lists them.
var symStages = []gomilter.Stage{gomilter.StageConnect, gomilter.StageMailFrom, gomilter.StageEOM}

// Server accepts milter connections. Its zero value is not usable; use
// NewServer.
type Server struct {
	log            *slog.Logger
	obs            Observer
	idle           time.Duration
	packetTimeout  time.Duration
	sessionTimeout time.Duration
	now            func() time.Time
	cfg            atomic.Pointer[Config]

	// slots holds one token per open connection when MaxConnections is set.
	slots chan struct{}

	// ctx bounds SPF checks; it is cancelled when Shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closing  bool
	done     chan struct{} // closed by Shutdown
	drained  chan struct{} // closed when closing and no connection is left
	conns    map[*conn]struct{}
	lns      []*listener
	shutOnce sync.Once
}

// NewServer returns a Server ready to Serve.
//
// With MaxConnections set, a connection beyond the cap is not accepted until
// another one closes: it waits in the listen backlog, so a burst is served a
// moment later, while a sustained overload runs into the MTA's milter
// timeouts (Postfix milter_connect_timeout / milter_command_timeout,
// Sendmail's T= equate), after which the MTA applies its default action
// (milter_default_action, F=).
func NewServer(o Options) *Server {
	s := &Server{
		log:            o.Logger,
		obs:            o.Observer,
		idle:           o.IdleTimeout,
		packetTimeout:  o.PacketTimeout,
		sessionTimeout: o.SessionTimeout,
		now:            o.clock,
		done:           make(chan struct{}),
		drained:        make(chan struct{}),
		conns:          make(map[*conn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if o.MaxConnections > 0 {
		s.slots = make(chan struct{}, o.MaxConnections)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cfg.Store(o.Config)
	return s
}

// SetConfig atomically replaces the config; new messages use it. A message
// keeps the config it started with at MAIL FROM.
func (s *Server) SetConfig(c *Config) { s.cfg.Store(c) }

// Serve accepts connections on ln until Shutdown; it then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	wl := &listener{Listener: ln, s: s, sock: newSockListener(ln)}
	s.lns = append(s.lns, wl)
	s.mu.Unlock()

	// One go-milter server per listener: its Close is not safe to call
	// while Serve runs, so it is never called; closing our listener ends
	// its Serve instead. Serve calls NewMilter right after Accept, in the
	// same goroutine (pinned in library_test.go): that is how a session
	// finds its connection.
	lib := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return wireMilter{&session{srv: s, conn: wl.accepted.Swap(nil)}} },
		Actions:   actions,
		Protocol:  protocol,
		SymList:   symList,
	}
	err := lib.Serve(wl)
	if s.isClosing() {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets in-flight sessions finish until ctx is done,
// then closes the rest and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutOnce.Do(func() {
		s.closing = true
		close(s.done)
		s.checkDrained()
	})
	lns := s.lns
	s.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		// Both may be ready (a second SIGTERM after the last session
		// ended): drained wins.
		select {
		case <-s.drained:
			return nil
		default:
		}
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.Conn.Close()
	}
	s.mu.Unlock()
	return ctx.Err()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// checkDrained closes drained once shutting down and idle; s.mu is held.
func (s *Server) checkDrained() {
	if s.closing && len(s.conns) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// track registers a new connection; it fails once Shutdown has begun.
func (s *Server) track(nc net.Conn) (*conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	c := s.newConn(nc)
	s.conns[c] = struct{}{}
	s.obs.ConnOpened()
	return c, true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.checkDrained()
	s.mu.Unlock()
	s.obs.ConnClosed()
	if s.slots != nil {
		<-s.slots
	}
}

// listener hands go-milter tracked connections, holds back accepting while
// MaxConnections are open, and retries temporary accept errors (go-milter
// stops serving at the first error).
type listener struct {
	net.Listener
	s         *Server
	sock      *sockListener        // raw accept (sock_linux.go); nil uses Listener
	accepted  atomic.Pointer[conn] // the connection NewMilter is about to get
	closeOnce sync.Once
	closeErr  error
}

func (l *listener) Accept() (net.Conn, error) {
	s := l.s
	var delay time.Duration
	for {
		if s.slots != nil {
			select {
			case s.slots <- struct{}{}:
			case <-s.done:
				return nil, net.ErrClosed
			}
		}
		var (
			nc  net.Conn
			err error
		)
		if l.sock != nil {
			nc, err = l.sock.accept()
		} else {
			nc, err = l.Listener.Accept()
		}
		if err != nil {
			if s.slots != nil {
				<-s.slots
			}
			if s.isClosing() || !temporary(err) {
				return nil, err
			}
			// Back off like net/http does on EMFILE and friends.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("milter accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-s.done:
				return nil, net.ErrClosed
			}
			continue
		}
		c, ok := s.track(nc)
		if !ok {
			nc.Close()
			if s.slots != nil {
				<-s.slots
			}
			return nil, net.ErrClosed
		}
		l.accepted.Store(c)
		return c, nil
	}
}

func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		if l.sock != nil {
			l.closeErr = l.sock.Close()
		} else {
			l.closeErr = l.Listener.Close()
		}
	})
	return l.closeErr
}

func temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary()
}

// checkContext is the context of a session's SPF checks: it ends when the
// Server gives up at shutdown, and when the MTA closes the connection
// while the check runs.
func (s *session) checkContext() (context.Context, context.CancelFunc) {
	if s.conn == nil {
		return s.srv.ctx, func() {}
	}
	return s.conn.watch(s.srv.ctx)
}
