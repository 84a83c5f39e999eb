package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sink is Postfix's smtp-sink: the relay that both MTAs deliver to. It writes
// every message, with its full header, to a file of its own.
type sink struct {
	dir  string
	Port int
}

func startSink(t *testing.T, dir string) *sink {
	t.Helper()
	bin := needProgram(t, "smtp-sink")
	s := &sink{dir: filepath.Join(dir, "sink"), Port: freePort(t)}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// smtp-sink drops to the postfix user, which must write there.
	uid, gid := postfixIDs(t)
	if err := os.Chown(s.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.Port)
	cmd := exec.Command(bin, "-u", "postfix", "-c", "-d", filepath.Join(s.dir, "msg."), addr, "1024")
	p := startProc(t, "smtp-sink", cmd, nil)
	waitListening(t, p, addr, 10*time.Second)
	return s
}

// delivered is one message as smtp-sink stored it.
type delivered struct {
	Raw string
	// Header is the message's header as the MTA under test sent it: the
	// sink's own envelope notes and Received field are removed.
	Header []headerField
}

// wait returns the message whose X-Test-ID is id, failing after d.
func (s *sink) wait(t *testing.T, id string, d time.Duration) delivered {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if m, ok := s.find(t, id); ok {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s not delivered to the sink within %v", id, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count is the number of messages in the sink whose X-Test-ID is id.
func (s *sink) count(t *testing.T, id string) int {
	t.Helper()
	n := 0
	for _, m := range s.all(t) {
		if testID(m.Header) == id {
			n++
		}
	}
	return n
}

func (s *sink) find(t *testing.T, id string) (delivered, bool) {
	t.Helper()
	for _, m := range s.all(t) {
		if testID(m.Header) == id {
			return m, true
		}
	}
	return delivered{}, false
}

func (s *sink) all(t *testing.T) []delivered {
	t.Helper()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []delivered
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		raw := string(b)
		// smtp-sink writes the file while the message arrives; a complete
		// one has its body, which always ends in our marker line.
		if !strings.Contains(raw, bodyMarker) {
			continue
		}
		out = append(out, delivered{Raw: raw, Header: sinkHeader(parseHeader(raw))})
	}
	return out
}

// sinkHeader drops what smtp-sink adds before the message: X-Client-Addr and
// friends, and its Received field ("by smtp-sink").
func sinkHeader(h []headerField) []headerField {
	for i, f := range h {
		if strings.EqualFold(f.Name, "Received") && strings.Contains(f.Value, "by smtp-sink") {
			return h[i+1:]
		}
	}
	return h
}

func testID(h []headerField) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, "X-Test-ID") {
			return f.Value
		}
	}
	return ""
}

// bodyMarker ends every test message.
const bodyMarker = "-- end of spfmilter e2e message --"

// message is one test message.
type message struct {
	ID        string   // X-Test-ID, unique per run
	From      string   // envelope sender; "" is the null sender
	Header    []string // extra header lines, "Name: value"
	Rcpt      string   // defaults to rcptAddr
	WantReply int      // expected SMTP code at MAIL FROM; 0 means accepted
	// Raw, when set, is sent as the whole message instead.
	Raw string
}

func (m message) data() string {
	if m.Raw != "" {
		return m.Raw
	}
	var b strings.Builder
	b.WriteString("Received: from old.example.net (old.example.net [192.0.2.99]) by relay.example.net; Sun, 1 Nov 2026 00:00:00 +0000\r\n")
	for _, h := range m.Header {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: spfmilter e2e %s\r\nX-Test-ID: %s\r\n", orPostmaster(m.From), m.rcpt(), m.ID, m.ID)
	fmt.Fprintf(&b, "Message-ID: <%s@e2e.example.test>\r\n\r\nTest message %s.\r\n%s\r\n", m.ID, m.ID, bodyMarker)
	return b.String()
}

func (m message) rcpt() string {
	if m.Rcpt == "" {
		return rcptAddr
	}
	return m.Rcpt
}

func orPostmaster(from string) string {
	if from == "" {
		return "postmaster@" + clientHELO
	}
	return from
}

// smtpConn is one client SMTP session.
type smtpConn struct {
	c *smtp.Client
}

// dialSMTP connects to addr and says EHLO helo, all within 2 minutes.
func dialSMTP(t *testing.T, addr, helo string) *smtpConn {
	t.Helper()
	return dialSMTPFrom(t, "", addr, helo)
}

// dialSMTPFrom is dialSMTP from a given loopback address ("" for any).
func dialSMTPFrom(t *testing.T, local, addr, helo string) *smtpConn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	from := ""
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		from = " from " + local
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s%s: %v", addr, from, err)
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute)) //nolint:errcheck
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		t.Fatalf("SMTP greeting from %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello(helo); err != nil {
		t.Fatalf("EHLO %s: %v", helo, err)
	}
	return &smtpConn{c: c}
}

// startTLS upgrades the session; net/smtp says EHLO again afterwards.
func (s *smtpConn) startTLS(t *testing.T, cfg *tls.Config) {
	t.Helper()
	if cfg == nil {
		t.Fatal("STARTTLS asked for, but the MTA has no TLS configuration")
	}
	if ok, _ := s.c.Extension("STARTTLS"); !ok {
		t.Fatal("the MTA does not offer STARTTLS")
	}
	if err := s.c.StartTLS(cfg); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
}

// send runs one transaction. It returns the reply that refused the message
// (nil when it was accepted).
func (s *smtpConn) send(t *testing.T, m message) *textproto.Error {
	t.Helper()
	if err := s.c.Mail(m.From); err != nil {
		return replyError(t, "MAIL FROM", err)
	}
	if err := s.c.Rcpt(m.rcpt()); err != nil {
		return replyError(t, "RCPT TO", err)
	}
	w, err := s.c.Data()
	if err != nil {
		return replyError(t, "DATA", err)
	}
	if _, err := w.Write([]byte(m.data())); err != nil {
		t.Fatalf("writing message %s: %v", m.ID, err)
	}
	if err := w.Close(); err != nil {
		return replyError(t, "end of DATA", err)
	}
	return nil
}

// reset sends RSET, as a client does after a refused transaction.
func (s *smtpConn) reset(t *testing.T) {
	t.Helper()
	if err := s.c.Reset(); err != nil {
		t.Fatalf("RSET: %v", err)
	}
}

func (s *smtpConn) quit() { s.c.Quit() } //nolint:errcheck // the test has its answers

func replyError(t *testing.T, stage string, err error) *textproto.Error {
	t.Helper()
	if te, ok := err.(*textproto.Error); ok {
		te.Msg = stage + ": " + te.Msg
		return te
	}
	t.Fatalf("%s: %v", stage, err)
	return nil
}
