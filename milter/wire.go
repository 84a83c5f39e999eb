package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/internal/lazyctx"
)

// Bounds on what an MTA (or anything that reaches the milter socket) may
// send. go-milter allocates a packet's declared length before reading it and
// accepts up to 1 MiB; conn frames packets itself first, so memory follows
// the bytes that actually arrived, and refuses larger declarations.
const (
	// MaxPacketSize bounds one packet. The largest an MTA sends us is a
	// header field: Postfix cuts fields at header_size_limit (100 KiB by
	// default), Sendmail at MaxHeadersLength (32 KiB for all of them).
	// libmilter's own default limit is 64 KiB.
	MaxPacketSize = 256 << 10
	// MaxMacroPacketSize and maxMacroStrings bound a macro packet. go-milter
	// splits it into strings and a map, about 18 bytes of heap per byte of
	// a packet made of empty names; the MTAs send a handful of macros per
	// stage, a few hundred bytes.
	MaxMacroPacketSize = 16 << 10
	maxMacroStrings    = 256
	// MaxHeaderBytes bounds the header fields handed to the session in one
	// message (only Authentication-Results fields are; see conn), which
	// go-milter and the session each hold until the end of the message.
	// Real messages carry a few of them, well under a kilobyte each.
	MaxHeaderBytes = 256 << 10

	readBufSize   = 4 << 10
	writeFlushAt  = 64 << 10
	deadlineSlack = 16 // a deadline may be set up to 1/16 of its timeout early
)

// The protocol steps that need no reply when the MTA agrees (SMFIP_NR_CONN,
// SMFIP_NR_HELO): the session always continues at these stages. Header
// fields (SMFIP_NOHREPL) are answered by conn itself when the MTA does not
// agree to go without.
const (
	noReplyFlags = gomilter.OptNoConnReply | gomilter.OptNoHeloReply
	offerFlags   = noReplyFlags | gomilter.OptNoHeaderReply
)

var (
	abortPacket = []byte{0, 0, 0, 1, byte(gomilter.CodeAbort)}
	arNameBytes = []byte(arName)
)

var (
	errBound   = errors.New("milter: input bound exceeded")
	errTimeout = errors.New("milter: timeout")
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// conn is a milter connection as go-milter sees it. It sits between the
// library and the socket and
//
//   - buffers both directions: one read system call serves every packet
//     that has arrived, and what the library writes (all end-of-message
//     edits and the answer) leaves in one write, just before the next read.
//     go-milter's own packet writer allocates a 4 KiB buffer per packet;
//     it is bypassed because each of its writes lands here.
//   - frames packets itself and hands the library only complete packets,
//     bounded by MaxPacketSize and MaxMacroPacketSize, so a declared size
//     costs nothing until the bytes arrive.
//   - bounds time: waiting for a packet is bounded by the idle timeout, a
//     started packet must be complete within the packet timeout however
//     slowly it trickles in, and the connection as a whole ends at the
//     session timeout. The socket deadline is moved only when a read system
//     call is due, and only when it must move by more than 1/16 of the
//     timeout.
//   - negotiates SMFIP_NR_CONN and SMFIP_NR_HELO when the MTA offers them
//     (see wireMilter for the answers).
//   - hands the library only the header fields the session reads
//     (Authentication-Results), and after each end of message an ABORT,
//     which makes go-milter drop the fields it collects (it would keep every
//     field of every message of the connection until an ABORT otherwise).
//   - on Linux, sets TCP_QUICKACK before it waits for more when what it
//     read since its last answer is still unanswered: Postfix leaves Nagle
//     on and sends packets that get no reply, and a delayed ACK would stall
//     its next write by ~40 ms. Bytes that get an answer need nothing: the
//     ACK leaves with the answer, and a forced one would be one more
//     segment for both sides to process.
type conn struct {
	net.Conn
	s     *Server
	acker acker // TCP only, for TCP_QUICKACK
	start time.Time
	// unanswered is set when a read returned bytes and cleared when an
	// answer is written; acks counts the forced ACKs.
	unanswered bool
	acks       int

	rp   *[]byte // pooled read buffer, nil once closed
	rbuf []byte  // rbuf[r:w] is read and not yet framed
	r, w int
	cur  []byte    // the rest of the packet the library is reading
	pkt  time.Time // when the first bytes of an incomplete packet were seen
	rdl  time.Time // the read deadline in force
	wdl  time.Time // the write deadline in force

	wbuf    []byte
	respFor byte // the last command handed to the library
	offered gomilter.OptProtocol
	noReply gomilter.OptProtocol // NR flags in force
	// offeredActions are the MTA's actions; quarantine is set when
	// SMFIF_QUARANTINE was negotiated.
	offeredActions gomilter.OptAction
	quarantine     bool
	rcpt           bool // the RCPT TO stage was asked for
	hdrBytes       int

	// bodyOK is set when the MTA sends the body: dkim_rescue was on at
	// negotiation. msg, set by the session for a message that waits for
	// its end (Decision.Rescuable), collects its header fields and body;
	// nil otherwise, and then body chunks are answered and dropped here,
	// never held.
	bodyOK bool
	msg    *dkim.Message

	closeOnce sync.Once
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{Conn: nc, s: s, start: s.now()}
	switch nc := nc.(type) {
	case *sockConn:
		if nc.tcp {
			c.acker = nc
		}
	case *net.TCPConn:
		if rc, err := nc.SyscallConn(); err == nil {
			c.acker = rawConnAcker{rc}
		}
	}
	c.rp = bufPool.Get().(*[]byte)
	c.rbuf = *c.rp
	return c
}

// Read hands the library the current packet, framing the next one first
// when the current one is used up.
func (c *conn) Read(p []byte) (int, error) {
	if len(c.cur) == 0 {
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

// sessionStack is about what a session's goroutine uses at its deepest:
// the SPF check, the DNS client and the header fields under the library's
// frames. A goroutine starts with 2–8 KiB, and each time its stack is
// short the runtime copies it to one twice the size and fixes up every
// frame on it: 2.6 copies per transaction, the last to 16 KiB (a uprobe
// on runtime.copystack under bench/miltload), about 5% of the milter's CPU
// time under Postfix (perf). One copy at MAIL FROM, with a handful of
// frames on the stack, costs a fraction of that; a connection that waits
// before MAIL FROM keeps its small stack.
const sessionStack = 12 << 10

// growStack makes the stack room for sessionStack bytes in one step: its
// frame is that large. The runtime sizes the new stack to fit the frame
// (runtime.newstack): 16 KiB from MAIL FROM's callback.
//
//go:noinline
func growStack(i int) byte {
	var b [sessionStack]byte
	return b[i&(len(b)-1)]
}

// next is called when the library wants a new command: it has answered the
// previous one.
func (c *conn) next() error {
	if c.respFor == byte(gomilter.CodeEOB) {
		// Not from the MTA: go-milter drops the header fields it keeps
		// (and calls the session's Abort, which has nothing left to drop).
		c.hand(abortPacket)
		return nil
	}
	for {
		p, err := c.readPacket()
		if err == nil {
			var keep bool
			keep, err = c.inspect(p)
			if err == nil && p[4] == byte(gomilter.CodeOptNeg) {
				c.negotiate()
				continue
			}
			if err == nil && !keep {
				continue
			}
		}
		if err != nil {
			if errors.Is(err, errBound) {
				c.s.log.Warn("closing milter connection", "remote", c.remote(), "err", err)
			}
			if errors.Is(err, errBound) || errors.Is(err, errTimeout) {
				c.s.obs.Error(StageConnection)
			}
			return err
		}
		c.hand(p)
		return nil
	}
}

func (c *conn) hand(p []byte) {
	c.cur = p
	c.respFor = p[4]
}

// negotiate queues the answer to the MTA's OPTNEG, which the library never
// sees (it would answer with its fixed flags, through a 4 KiB buffer of its
// own): protocol version 2 (the library's), our actions and steps, asking
// for the no-reply steps only where the MTA offered them, and the macros
// per stage (SMFIF_SETSYMLIST).
func (c *conn) negotiate() {
	proto := protocol
	cfg := c.s.cfg.Load()
	if cfg.rescueOn() {
		// The body, for the messages that wait for it, and without
		// answers to its chunks where the MTA offers that (SMFIP_NR_BODY).
		proto &^= gomilter.OptNoBody
		proto |= gomilter.OptNoBodyReply
	}
	if !cfg.refusesAtMail() {
		// MAIL FROM's answer can only be continue: the MTA need not wait
		// for it (the check runs meanwhile).
		proto |= gomilter.OptNoMailReply
	}
	proto &^= (offerFlags | gomilter.OptNoBodyReply | gomilter.OptNoMailReply) &^ c.offered
	// RCPT TO only when a refusal can move there.
	if cfg.RcptStage() {
		proto &^= gomilter.OptNoRcptTo
		c.rcpt = true
	}
	c.noReply = proto & (offerFlags | gomilter.OptNoBodyReply | gomilter.OptNoMailReply)
	c.bodyOK = proto&gomilter.OptNoBody == 0
	act := actions
	// SMFIF_QUARANTINE is asked for only when the policy in force can
	// quarantine, and only when the MTA offers it.
	if cfg != nil && cfg.Policy.Uses(ActionQuarantine) && c.offeredActions&gomilter.OptQuarantine != 0 {
		act |= gomilter.OptQuarantine
		c.quarantine = true
	}
	start := len(c.wbuf)
	c.wbuf = append(c.wbuf, 0, 0, 0, 0, byte(gomilter.CodeOptNeg))
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, 2)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(act))
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(proto))
	for _, st := range symStages {
		c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(st))
		c.wbuf = append(c.wbuf, strings.Join(symList[st], " ")...)
		c.wbuf = append(c.wbuf, 0)
	}
	binary.BigEndian.PutUint32(c.wbuf[start:], uint32(len(c.wbuf)-start-4))
	if c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		c.s.log.Debug("milter negotiated", "remote", c.remote(), "mta_protocol", fmt.Sprintf("%#x", uint32(c.offered)),
			"protocol", fmt.Sprintf("%#x", uint32(proto)),
			"no_reply_connect", proto&gomilter.OptNoConnReply != 0, "no_reply_helo", proto&gomilter.OptNoHeloReply != 0,
			"no_reply_mail", proto&gomilter.OptNoMailReply != 0,
			"quarantine", c.quarantine, "rcpt", c.rcpt)
	}
}

// wireMilter is the session as go-milter sees it: its answers go straight
// into conn's write queue (go-milter allocates a 4 KiB buffer for every
// packet it writes), and its continue answers to CONNECT and HELO are
// dropped when the MTA agreed to go without them (go-milter writes whatever
// a callback returns, negotiated or not). Final answers (accept, reject,
// discard, tempfail; the session sends none) are left to the library, which
// starts a new Milter after one.
type wireMilter struct{ *session }

func (w wireMilter) Connect(host, family string, port uint16, addr net.IP, m *gomilter.Modifier) (gomilter.Response, error) {
	r, err := w.session.Connect(host, family, port, addr, m)
	return w.conn.send(r, gomilter.OptNoConnReply), err
}

func (w wireMilter) Helo(name string, m *gomilter.Modifier) (gomilter.Response, error) {
	r, err := w.session.Helo(name, m)
	return w.conn.send(r, gomilter.OptNoHeloReply), err
}

func (w wireMilter) MailFrom(from string, m *gomilter.Modifier) (gomilter.Response, error) {
	growStack(len(from))
	r, err := w.session.MailFrom(from, m)
	return w.conn.send(r, gomilter.OptNoMailReply), err
}

func (w wireMilter) RcptTo(rcpt string, m *gomilter.Modifier) (gomilter.Response, error) {
	r, err := w.session.RcptTo(rcpt, m)
	return w.conn.send(r, 0), err
}

func (w wireMilter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	r, err := w.session.Body(m)
	return w.conn.send(r, 0), err
}

// send queues answer r and returns what the library is to write: nothing,
// unless r is final. noReply is the flag that spares the step its answer.
func (c *conn) send(r gomilter.Response, noReply gomilter.OptProtocol) gomilter.Response {
	if c == nil || r == nil || !r.Continue() {
		return r
	}
	msg := r.Response()
	if noReply != 0 && c.noReply&noReply != 0 && msg.Code == byte(gomilter.ActContinue) {
		return nil
	}
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(len(msg.Data)+1))
	c.wbuf = append(append(c.wbuf, msg.Code), msg.Data...)
	return nil
}

// editor is where the end-of-message edits go: straight into the write
// queue, in the packets go-milter's Modifier would write (each of which
// would cost it a 4 KiB buffer), or to m without a connection.
func (c *conn) editor(m *gomilter.Modifier) headerEditor {
	if c == nil {
		return m
	}
	return wireEditor{c}
}

type wireEditor struct{ c *conn }

// ChangeHeader queues SMFIR_CHGHEADER: the 1-based index among the fields
// of that name, the name, the value (empty deletes the field).
func (e wireEditor) ChangeHeader(index int, name, value string) error {
	e.c.queueEdit(byte(gomilter.ActChangeHeader), index, name, value)
	return nil
}

// InsertHeader queues SMFIR_INSHEADER: the index among all fields (0 is
// the top), the name, the value.
func (e wireEditor) InsertHeader(index int, name, value string) error {
	e.c.queueEdit(byte(gomilter.ActInsertHeader), index, name, value)
	return nil
}

var receivedBytes = []byte("Received")

// Quarantine queues SMFIR_QUARANTINE with its reason.
func (e wireEditor) Quarantine(reason string) error {
	b := binary.BigEndian.AppendUint32(e.c.wbuf, uint32(1+len(reason)+1))
	b = append(b, byte(gomilter.ActQuarantine))
	b = append(b, reason...)
	e.c.wbuf = append(b, 0)
	return nil
}

// canQuarantine says whether SMFIF_QUARANTINE was negotiated; without a
// connection (the library's own sessions in tests) it is left to the
// library.
func (c *conn) canQuarantine() bool { return c == nil || c.quarantine }

// noMailReply says whether the MTA reads no answer to MAIL FROM
// (SMFIP_NR_MAIL); without a connection it reads one.
func (c *conn) noMailReply() bool { return c != nil && c.noReply&gomilter.OptNoMailReply != 0 }

// rcptStage says whether the RCPT TO stage was negotiated; without a
// connection (the library's own sessions in tests) it was.
func (c *conn) rcptStage() bool { return c == nil || c.rcpt }

// queueEdit appends a header edit packet. As go-milter does, CRLF in the
// value becomes LF: Postfix wants LF line ends and would double the CR.
func (c *conn) queueEdit(code byte, index int, name, value string) {
	value = strings.ReplaceAll(value, "\r\n", "\n")
	b := binary.BigEndian.AppendUint32(c.wbuf, uint32(1+4+len(name)+1+len(value)+1))
	b = append(b, code)
	b = binary.BigEndian.AppendUint32(b, uint32(index))
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, value...)
	c.wbuf = append(b, 0)
}

// inspect applies the bounds to a complete packet and says whether the
// library gets it.
func (c *conn) inspect(p []byte) (bool, error) {
	data := p[5:]
	switch gomilter.Code(p[4]) {
	case gomilter.CodeOptNeg:
		if len(data) >= 12 {
			c.offeredActions = gomilter.OptAction(binary.BigEndian.Uint32(data[4:]))
			c.offered = gomilter.OptProtocol(binary.BigEndian.Uint32(data[8:]))
		}
	case gomilter.CodeMacro:
		if n := bytes.Count(data, []byte{0}); n > maxMacroStrings {
			return false, fmt.Errorf("%w: macro packet of %d strings", errBound, n)
		}
		// Macros sent with each header field: the session reads none.
		if len(data) > 0 && data[0] == byte(gomilter.CodeHeader) {
			return false, nil
		}
	case gomilter.CodeHeader:
		if c.noReply&gomilter.OptNoHeaderReply == 0 {
			// The MTA waits for an answer to each field; the session
			// gives none (go-milter writes nothing for it).
			c.wbuf = append(c.wbuf, 0, 0, 0, 1, byte(gomilter.ActContinue))
		}
		name, rest, _ := bytes.Cut(data, []byte{0})
		if c.msg != nil {
			value, _, _ := bytes.Cut(rest, []byte{0})
			c.msg.Header(string(name), string(value))
		}
		if !bytes.EqualFold(name, arNameBytes) {
			// Received fields only while relays are configured: the
			// session keeps those of a relayed message, within bounds.
			if cfg := c.s.cfg.Load(); cfg != nil && len(cfg.TrustedRelays) > 0 && bytes.EqualFold(name, receivedBytes) {
				return true, nil
			}
			return false, nil
		}
		c.hdrBytes += len(data)
		if c.hdrBytes > MaxHeaderBytes {
			return false, fmt.Errorf("%w: more than %d bytes of %s fields in one message", errBound, MaxHeaderBytes, arName)
		}
	case gomilter.CodeBody:
		// Only asked for under dkim_rescue; the session never sees it.
		if c.noReply&gomilter.OptNoBodyReply == 0 {
			c.wbuf = append(c.wbuf, 0, 0, 0, 1, byte(gomilter.ActContinue))
		}
		if c.msg != nil {
			c.msg.Body(data)
		}
		return false, nil
	case gomilter.CodeMail, gomilter.CodeAbort:
		c.hdrBytes = 0
		c.msg = nil
	}
	return true, nil
}

// readPacket returns the next complete packet, length included; it is
// valid until the next call.
func (c *conn) readPacket() ([]byte, error) {
	for {
		if avail := c.w - c.r; avail >= 4 {
			n := int(binary.BigEndian.Uint32(c.rbuf[c.r:]))
			if n == 0 || n > MaxPacketSize {
				return nil, fmt.Errorf("%w: packet of %d bytes", errBound, n)
			}
			if avail >= 5 && c.rbuf[c.r+4] == byte(gomilter.CodeMacro) && n > MaxMacroPacketSize {
				return nil, fmt.Errorf("%w: macro packet of %d bytes", errBound, n)
			}
			if avail >= 4+n {
				p := c.rbuf[c.r : c.r+4+n]
				c.r += 4 + n
				c.pkt = time.Time{}
				return p, nil
			}
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// fill flushes what the library wrote, then reads what is there to read.
func (c *conn) fill() error {
	if err := c.flush(); err != nil {
		return err
	}
	s := c.s
	now := s.now()
	partial := c.w > c.r
	if partial && c.pkt.IsZero() {
		c.pkt = now
	}
	if err := c.late(now); err != nil {
		return err
	}
	c.makeRoom()
	c.armRead(now, partial)
	if c.unanswered && c.acker != nil {
		// Nothing went back since the last read, so its ACK is still
		// delayed: the MTA's next write may be waiting for it.
		c.acker.quickAck()
		c.acks++
	}
	c.unanswered = false
	n, err := c.Conn.Read(c.rbuf[c.w:])
	c.unanswered = n > 0
	c.w += n
	if err == nil {
		return c.late(s.now())
	}
	if isTimeoutErr(err) {
		switch {
		case s.sessionTimeout > 0 && c.rdl.Equal(c.start.Add(s.sessionTimeout)):
			return c.timedOut("session")
		case partial:
			return c.timedOut("packet")
		}
		return c.timedOut("idle")
	}
	return err
}

// late checks the clock as well as the socket deadline, before and after
// each read: a packet that keeps trickling in, or a session whose packets
// keep coming, ends here.
func (c *conn) late(now time.Time) error {
	s := c.s
	switch {
	case s.sessionTimeout > 0 && !now.Before(c.start.Add(s.sessionTimeout)):
		return c.timedOut("session")
	case !c.pkt.IsZero() && s.packetTimeout > 0 && !now.Before(c.pkt.Add(s.packetTimeout)):
		return c.timedOut("packet")
	}
	return nil
}

// timedOut logs why the connection ends and returns the error for the
// library, which closes it.
func (c *conn) timedOut(which string) error {
	s := c.s
	switch which {
	case "session":
		s.log.Info("closing milter connection at the session timeout", "remote", c.remote(), "session_timeout", s.sessionTimeout)
	case "packet":
		s.log.Info("closing milter connection: packet not complete within the packet timeout", "remote", c.remote(), "packet_timeout", s.packetTimeout)
	default:
		s.log.Info("closing idle milter connection", "remote", c.remote(), "idle_timeout", s.idle)
	}
	return fmt.Errorf("%w: %s", errTimeout, which)
}

func (c *conn) remote() string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// makeRoom makes space after w: it moves the unframed bytes to the front,
// grows the buffer (at most doubling, so memory follows what arrived) when
// an incomplete packet fills it, and gives a grown buffer back once empty.
func (c *conn) makeRoom() {
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.rbuf) > readBufSize {
			c.rbuf = *c.rp
		}
		return
	}
	if c.r > 0 && c.w == len(c.rbuf) {
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.rbuf) {
		nb := make([]byte, min(2*len(c.rbuf), MaxPacketSize+4))
		c.w = copy(nb, c.rbuf[c.r:c.w])
		c.r = 0
		c.rbuf = nb
	}
}

// armRead sets the read deadline for the wait to come.
func (c *conn) armRead(now time.Time, partial bool) {
	s := c.s
	var want time.Time
	var slack time.Duration
	switch {
	case partial && s.packetTimeout > 0:
		want = c.pkt.Add(s.packetTimeout)
	case s.idle > 0:
		want, slack = now.Add(s.idle), s.idle/deadlineSlack
	}
	if s.sessionTimeout > 0 {
		if end := c.start.Add(s.sessionTimeout); want.IsZero() || end.Before(want) {
			want, slack = end, 0
		}
	}
	// Keep the deadline in force when it is at most 1/16 of the idle
	// timeout early: the runtime timer is not touched for every read.
	if want.Equal(c.rdl) || (!c.rdl.IsZero() && c.rdl.Before(want) && want.Sub(c.rdl) <= slack) {
		return
	}
	c.rdl = want
	c.Conn.SetReadDeadline(want) //nolint:errcheck // a failure shows in the read
}

// Write queues p; it leaves at the next read, or at once when much is
// queued.
func (c *conn) Write(p []byte) (int, error) {
	c.wbuf = append(c.wbuf, p...)
	if len(c.wbuf) >= writeFlushAt && c.respFor == byte(gomilter.CodeEOB) {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes the queued bytes, bounded by the idle timeout: an MTA that
// stops reading does not hold the session.
func (c *conn) flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	if s := c.s; s.idle > 0 {
		now := s.now()
		if want := now.Add(s.idle); c.wdl.IsZero() || want.Sub(c.wdl) > s.idle/deadlineSlack {
			c.wdl = want
			c.Conn.SetWriteDeadline(want) //nolint:errcheck // a failure shows in the write
		}
	}
	_, err := c.Conn.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	c.unanswered = false
	return err
}

// watchAfter is how long a check waits for the network before the
// connection is watched for the MTA going away: most lookups end sooner,
// and cost nothing more.
const watchAfter = 50 * time.Millisecond

// watch returns a context for a check that runs while the library waits:
// it is cancelled when the MTA closes the connection (or parent is done).
// The MTA sends nothing while it waits for our answer, so a read that
// returns means it went away; bytes that arrive anyway are kept. Nothing is
// armed unless the check waits for the network (see lazyctx): a check
// answered from the cache costs no timer.
func (c *conn) watch(parent context.Context) (context.Context, context.CancelFunc) {
	if c.rp == nil || len(c.cur) != 0 {
		return context.WithCancel(parent)
	}
	c.makeRoom()
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
		done    chan struct{} // non-nil once the watching read started
	)
	ctx, cancel := lazyctx.New(parent, time.Time{}, func(cancel func()) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		t = time.AfterFunc(watchAfter, func() {
			mu.Lock()
			if stopped {
				mu.Unlock()
				return
			}
			done = make(chan struct{})
			mu.Unlock()
			defer close(done)
			n, err := c.Conn.Read(c.rbuf[c.w:])
			c.w += n
			if err != nil && !isTimeoutErr(err) {
				cancel()
			}
		})
	})
	return ctx, func() {
		mu.Lock()
		stopped = true
		d, tm := done, t
		mu.Unlock()
		switch {
		case d != nil:
			select {
			case <-d:
			default:
				c.Conn.SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // wakes the watcher
				<-d
				c.Conn.SetReadDeadline(c.rdl) //nolint:errcheck // a failure shows in the next read
			}
		case tm != nil:
			tm.Stop()
		}
		cancel()
	}
}

// Close closes the socket, gives the buffer back and unregisters the
// connection. go-milter calls it once, from the connection's goroutine,
// which is the only one that uses the buffers (Shutdown closes the socket
// only).
func (c *conn) Close() error {
	c.flush() //nolint:errcheck // best effort; the connection is ending
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		bufPool.Put(c.rp)
		c.rp, c.rbuf, c.cur = nil, nil, nil
		c.s.untrack(c)
	})
	return err
}

// acker sets TCP_QUICKACK on a connection's socket: a sockConn, or a
// *net.TCPConn where sockConn is not used (rawConnAcker).
type acker interface{ quickAck() }

type rawConnAcker struct{ rc syscall.RawConn }

func (a rawConnAcker) quickAck() { quickAck(a.rc) }

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
