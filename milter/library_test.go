package milter

import (
	"encoding/binary"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// These tests pin the go-milter v0.5.0 behaviours the session is built
// around. If an upgrade changes one of them, the workaround in session.go
// must be revisited.

// probe records what the library hands a Milter.
type probe struct {
	gomilter.NoOpMilter
	mu      *sync.Mutex
	seen    *[]string
	eomResp gomilter.Response
	mailArg *string
	hdrs    *[]textproto.MIMEHeader
}

func (p *probe) note(s string) { p.mu.Lock(); *p.seen = append(*p.seen, s); p.mu.Unlock() }

// Header sends no reply, as the session does: the probe negotiates the
// session's protocol flags, SMFIP_NOHREPL among them.
func (p *probe) Header(string, string, *gomilter.Modifier) (gomilter.Response, error) {
	return nil, nil
}

func (p *probe) Connect(host, family string, port uint16, addr net.IP, m *gomilter.Modifier) (gomilter.Response, error) {
	p.note("connect j=" + m.Macros["j"])
	return gomilter.RespContinue, nil
}

func (p *probe) Helo(name string, m *gomilter.Modifier) (gomilter.Response, error) {
	p.note("helo j=" + m.Macros["j"])
	return gomilter.RespContinue, nil
}

func (p *probe) MailFrom(from string, m *gomilter.Modifier) (gomilter.Response, error) {
	p.mu.Lock()
	*p.mailArg = from
	p.mu.Unlock()
	p.note("mail j=" + m.Macros["j"])
	return gomilter.RespContinue, nil
}

func (p *probe) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	p.mu.Lock()
	*p.hdrs = append(*p.hdrs, m.Headers)
	p.mu.Unlock()
	return p.eomResp, nil
}

type probeServer struct {
	addr    string
	mu      sync.Mutex
	seen    []string
	created int
	mailArg string
	hdrs    []textproto.MIMEHeader
}

func startProbe(t *testing.T, eomResp gomilter.Response) *probeServer {
	t.Helper()
	ps := &probeServer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps.addr = ln.Addr().String()
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter {
			ps.mu.Lock()
			ps.created++
			ps.mu.Unlock()
			return &probe{mu: &ps.mu, seen: &ps.seen, eomResp: eomResp, mailArg: &ps.mailArg, hdrs: &ps.hdrs}
		},
		Actions: actions,
		// Without conn in between, the library answers CONNECT and HELO
		// whatever it negotiated: the probe does not ask to go without.
		Protocol: protocol &^ noReplyFlags,
		SymList:  symList,
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	// Closing the listener ends Serve; go-milter's Close is avoided (it
	// races with Serve).
	t.Cleanup(func() { ln.Close(); <-done })
	return ps
}

func (ps *probeServer) session(t *testing.T) *mta {
	t.Helper()
	h := &harness{t: t, addr: ps.addr}
	return h.connect(gomilter.FamilyInet, clientA, "j", ourID)
}

func TestLibraryReplacesMacroMapPerPacket(t *testing.T) {
	ps := startProbe(t, gomilter.RespContinue)
	m := ps.session(t)
	m.helo("helo.pass.test")
	m.continued("mail", m.mail("alice@pass.test"), nil)
	m.cs.Close()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	want := []string{"connect j=" + ourID, "helo j=", "mail j="}
	if len(ps.seen) != 3 || ps.seen[0] != want[0] || ps.seen[1] != want[1] || ps.seen[2] != want[2] {
		t.Errorf("macro j seen as %q, want %q", ps.seen, want)
	}
}

func TestLibraryNewMilterAfterFinalResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp gomilter.Response
		want int // Milters created for one connection with two messages
	}{
		{"accept", gomilter.RespAccept, 3},
		{"continue", gomilter.RespContinue, 1},
		{"replycode", gomilter.NewResponseStr(byte(gomilter.ActReplyCode), "550 5.7.23 no"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := startProbe(t, tc.resp)
			m := ps.session(t)
			m.helo("helo.pass.test")
			for range 2 {
				m.continued("mail", m.mail("alice@pass.test"), nil)
				if _, _, err := m.cs.End(); err != nil {
					t.Fatal(err)
				}
			}
			// The library writes its answer to the end of message before
			// it calls NewMilter; the answer to one more command proves
			// that call has happened.
			m.helo("helo.pass.test")
			m.cs.Close()
			ps.mu.Lock()
			defer ps.mu.Unlock()
			if ps.created != tc.want {
				t.Errorf("%d Milters created, want %d", ps.created, tc.want)
			}
		})
	}
}

// The library's own header map keeps the previous message's fields until an
// ABORT; the session counts Authentication-Results itself.
func TestLibraryHeadersSurviveMessages(t *testing.T) {
	ps := startProbe(t, gomilter.RespContinue)
	m := ps.session(t)
	m.helo("helo.pass.test")
	for _, subj := range []string{"one", "two"} {
		m.continued("mail", m.mail("alice@pass.test"), nil)
		m.data("Q", field{"Subject", subj})
	}
	m.cs.Close()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.hdrs) != 2 || len(ps.hdrs[1]["Subject"]) != 2 {
		t.Errorf("second message's library headers: %v", ps.hdrs)
	}
}

// The MAIL FROM callback gets the address only, brackets trimmed; ESMTP
// parameters are dropped, SMTPUTF8 among them: the milter cannot tell an
// SMTPUTF8 transaction, so its replies stay ASCII (sanitizeReply).
func TestLibraryMailArgument(t *testing.T) {
	ps := startProbe(t, gomilter.RespContinue)
	m := ps.session(t)
	m.helo("helo.pass.test")
	m.must(m.cs.Macros(gomilter.CodeMail))
	act, err := m.cs.Mail("alice@pass.test", []string{"SIZE=100", "BODY=8BITMIME", "SMTPUTF8"})
	m.continued("mail", act, err)
	m.cs.Close()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.mailArg != "alice@pass.test" {
		t.Errorf("MailFrom got %q", ps.mailArg)
	}
}

// The negotiation answer: version 2, our actions and protocol flags, and
// the macro lists.
func TestLibraryNegotiation(t *testing.T) {
	ps := startProbe(t, gomilter.RespContinue)
	c := rawDial(t, ps.addr)
	if _, err := c.Write(optneg()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var n uint32
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatal(err)
	}
	if p[0] != 'O' || len(p) < 13 {
		t.Fatalf("answer %q", p)
	}
	version := binary.BigEndian.Uint32(p[1:])
	act := gomilter.OptAction(binary.BigEndian.Uint32(p[5:]))
	proto := gomilter.OptProtocol(binary.BigEndian.Uint32(p[9:]))
	if version != 2 || act != actions || proto != protocol&^noReplyFlags {
		t.Errorf("version %d, actions %#x, protocol %#x", version, act, proto)
	}
	if proto&gomilter.OptNoHeaders != 0 || proto&gomilter.OptNoMailFrom != 0 {
		t.Errorf("a needed stage is switched off: %#x", proto)
	}
	// Headers are read for forged Authentication-Results only: the MTA
	// need not wait for a reply to each (SMFIP_NOHREPL).
	if proto&gomilter.OptNoHeaderReply == 0 {
		t.Errorf("header replies are still asked for: %#x", proto)
	}
	lists := map[uint32]string{}
	for rest := p[13:]; len(rest) > 4; {
		stage := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		end := 0
		for end < len(rest) && rest[end] != 0 {
			end++
		}
		lists[stage] = string(rest[:end])
		rest = rest[min(end+1, len(rest)):]
	}
	want := map[uint32]string{
		0: "j {daemon_name} {client_addr} _",
		2: "i {auth_authen} {auth_type} {mail_addr}",
		5: "i",
	}
	if len(lists) != len(want) {
		t.Errorf("macro lists %v", lists)
	}
	for k, v := range want {
		if lists[k] != v {
			t.Errorf("stage %d macros %q, want %q", k, lists[k], v)
		}
	}
}

// orderListener records Accept returns, for the NewMilter order pin.
type orderListener struct {
	net.Listener
	mu     *sync.Mutex
	events *[]string
}

func (l *orderListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		*l.events = append(*l.events, "accept")
		l.mu.Unlock()
	}
	return c, err
}

// Serve calls NewMilter once after each Accept, before the next one: the
// Server hands each session its connection that way.
func TestLibraryNewMilterAfterAccept(t *testing.T) {
	var mu sync.Mutex
	var events []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter {
			mu.Lock()
			events = append(events, "new")
			mu.Unlock()
			return gomilter.NoOpMilter{}
		},
		Protocol: protocol &^ noReplyFlags,
	}
	done := make(chan struct{})
	go func() { srv.Serve(&orderListener{Listener: ln, mu: &mu, events: &events}); close(done) }()
	for range 3 {
		c := rawDial(t, ln.Addr().String())
		c.Write(optneg()) //nolint:errcheck
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := readPacket(c); err != nil {
			t.Fatal(err)
		}
	}
	ln.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(events, " "); got != "accept new accept new accept new" {
		t.Errorf("events %q", got)
	}
}

// The library answers CONNECT and HELO whatever it negotiated: with
// SMFIP_NR_CONN in its flags it still writes the callback's continue, so
// wireMilter returns none.
func TestLibraryAnswersConnectDespiteNoReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &gomilter.Server{NewMilter: func() gomilter.Milter { return gomilter.NoOpMilter{} }, Protocol: protocol}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { ln.Close(); <-done })
	c := rawDial(t, ln.Addr().String())
	if got := negotiate(t, c, 0x1fffff); got&noReplyFlags != noReplyFlags {
		t.Fatalf("negotiated %#x", got)
	}
	c.Write(connectPkt(clientA)) //nolint:errcheck
	if code, _, err := rawAnswer(c); err != nil || code != 'c' {
		t.Errorf("after CONNECT with SMFIP_NR_CONN: %q %v, want the library's continue", code, err)
	}
}

// ABORT makes the library drop the header fields it collects (see
// TestLibraryHeadersSurviveMessages for what happens without one).
func TestLibraryAbortDropsHeaders(t *testing.T) {
	ps := startProbe(t, gomilter.RespContinue)
	m := ps.session(t)
	m.helo("helo.pass.test")
	for _, subj := range []string{"one", "two"} {
		m.continued("mail", m.mail("alice@pass.test"), nil)
		m.data("Q", field{"Subject", subj})
		m.abort()
	}
	m.cs.Close()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.hdrs) != 2 || len(ps.hdrs[1]["Subject"]) != 1 {
		t.Errorf("second message's library headers: %v", ps.hdrs)
	}
}

// The library allocates a packet's declared length as soon as it has read
// the length, before the data arrives; conn frames packets so that it never
// sees a length before the data.
func TestLibraryAllocatesDeclaredLength(t *testing.T) {
	ps := startProbe(t, gomilter.RespContinue)
	const n, size = 20, 1 << 20
	before := heapLive()
	var ports []int
	for range n {
		c := rawDial(t, ps.addr)
		c.Write(binary.BigEndian.AppendUint32(nil, size)) //nolint:errcheck
		ports = append(ports, c.LocalAddr().(*net.TCPAddr).Port)
	}
	waitServerRead(t, ps.addr, ports)
	if grown := int64(heapLive()) - int64(before); grown < n*size*9/10 {
		t.Errorf("heap grew by %d bytes for %d declared %d-byte packets", grown, n, size)
	}
}

// editProbe makes the two header edits the session makes at end of
// message.
type editProbe struct{ gomilter.NoOpMilter }

func (editProbe) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	if err := m.ChangeHeader(2, "Authentication-Results", ""); err != nil {
		return nil, err
	}
	if err := m.InsertHeader(0, "Received-SPF", "pass (mx.example.test: ok)\r\n\tclient-ip=127.0.0.2;"); err != nil {
		return nil, err
	}
	return gomilter.RespContinue, nil
}

// conn writes the end-of-message edits itself, byte for byte as the
// library's Modifier does.
func TestLibraryEditPackets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &gomilter.Server{NewMilter: func() gomilter.Milter { return editProbe{} }, Actions: actions, Protocol: protocol &^ noReplyFlags}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { ln.Close(); <-done })
	c := rawDial(t, ln.Addr().String())
	negotiate(t, c, 0x1fffff)
	c.Write(pkt('E')) //nolint:errcheck
	var lib []byte
	for {
		code, data, err := rawAnswer(c)
		if err != nil {
			t.Fatal(err)
		}
		if code == 'c' {
			break
		}
		lib = append(lib, binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))...)
		lib = append(append(lib, code), data...)
	}

	var ours conn
	ed := wireEditor{&ours}
	ed.ChangeHeader(2, "Authentication-Results", "")                                           //nolint:errcheck
	ed.InsertHeader(0, "Received-SPF", "pass (mx.example.test: ok)\r\n\tclient-ip=127.0.0.2;") //nolint:errcheck
	if string(ours.wbuf) != string(lib) {
		t.Errorf("edit packets\n got %q\nwant %q", ours.wbuf, lib)
	}
}
