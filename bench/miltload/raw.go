//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-milter"
)

// With -mta raw the load generator sends the bytes go-milter's client sends
// in -mta postfix mode (the same packets, the same batching of what needs
// no answer, the same checks of the answers), built once per negotiated
// protocol mask instead of packet by packet. go-milter's client costs more
// CPU per transaction than the milter does, so on a machine with few cores
// it, not the milter, sets the rate; this one costs a fraction of it.

// rawStep is what goes out before the next answer is due, and which answer.
type rawStep struct {
	out  []byte
	want byte // 0: none (the rest goes with the next step); 'c': continue; 'E': end of message
}

// rawScript is one connection's steps after the negotiation: setup (CONNECT,
// HELO), one message (repeated), and the end.
type rawScript struct {
	setup, message []rawStep
	end            []byte
}

func rawPacket(b []byte, code byte, data ...[]byte) []byte {
	n := 1
	for _, d := range data {
		n += len(d)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, code)
	for _, d := range data {
		b = append(b, d...)
	}
	return b
}

func cstr(s ...string) []byte {
	var b []byte
	for _, x := range s {
		b = append(b, x...)
		b = append(b, 0)
	}
	return b
}

// rawOptneg offers what Postfix 3.7 offers (as -mta postfix does).
func rawOptneg() []byte {
	d := make([]byte, 12)
	binary.BigEndian.PutUint32(d, 6)
	binary.BigEndian.PutUint32(d[4:], uint32(postfixActions))
	binary.BigEndian.PutUint32(d[8:], uint32(postfixProtocol))
	return rawPacket(nil, byte(milter.CodeOptNeg), d)
}

// newRawScript lays out the steps for the milter's protocol mask, as
// go-milter's client does in session and message: macros always, a step
// only unless the milter declined it, an answer only unless it asked for
// none.
func newRawScript(proto milter.OptProtocol, body []byte) *rawScript {
	var (
		sc  rawScript
		cur []rawStep
		buf []byte
	)
	step := func(code byte, skip, noReply milter.OptProtocol, data ...[]byte) {
		if proto&skip != 0 {
			return
		}
		buf = rawPacket(buf, code, data...)
		if proto&noReply == 0 {
			cur = append(cur, rawStep{out: buf, want: 'c'})
			buf = nil
		}
	}
	macros := func(stage milter.Code, kv ...string) {
		buf = rawPacket(buf, byte(milter.CodeMacro), []byte{byte(stage)}, cstr(kv...))
	}
	port := binary.BigEndian.AppendUint16(nil, 40000)

	macros(milter.CodeConn, "j", mtaHost, "{daemon_name}", "smtpd", "v", "Postfix 3.7")
	step(byte(milter.CodeConn), milter.OptNoConnect, milter.OptNoConnReply,
		cstr(clientHELO), []byte{byte(milter.FamilyInet)}, port, cstr("127.0.0.1"))
	step(byte(milter.CodeHelo), milter.OptNoHelo, milter.OptNoHeloReply, cstr(clientHELO))
	sc.setup, cur = cur, nil

	macros(milter.CodeMail, "{mail_addr}", sender[1:len(sender)-1])
	step(byte(milter.CodeMail), milter.OptNoMailFrom, milter.OptNoMailReply, cstr("<"+sender+">"))
	step(byte(milter.CodeRcpt), milter.OptNoRcptTo, milter.OptNoRcptReply, cstr("<"+rcpt+">"))
	for _, h := range messageFields {
		macros(milter.CodeHeader, "i", "4ABCDEF")
		step(byte(milter.CodeHeader), milter.OptNoHeaders, milter.OptNoHeaderReply, cstr(h[0], h[1]))
	}
	step(byte(milter.CodeEOH), milter.OptNoEOH, milter.OptNoEOHReply)
	step(byte(milter.CodeBody), milter.OptNoBody, milter.OptNoBodyReply, body)
	buf = rawPacket(buf, byte(milter.CodeEOB))
	cur = append(cur, rawStep{out: buf, want: 'E'})
	sc.message = cur

	// go-milter's Close: ABORT (still "in a transaction" after a continue),
	// then QUIT.
	sc.end = rawPacket(rawPacket(nil, byte(milter.CodeAbort)), byte(milter.CodeQuit))
	return &sc
}

// rawConn is one connection of -mta raw.
type rawConn struct {
	nc   net.Conn
	r    *bufio.Reader
	wbuf []byte
	pkt  []byte
}

func (c *rawConn) send(b []byte) error {
	_, err := c.nc.Write(b)
	return err
}

// read returns the next packet's code and data (valid until the next
// read), skipping progress packets.
func (c *rawConn) read() (byte, []byte, error) {
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return 0, nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > 1<<20 {
			return 0, nil, fmt.Errorf("answer of %d bytes", n)
		}
		if cap(c.pkt) < int(n) {
			c.pkt = make([]byte, n)
		}
		p := c.pkt[:n]
		if _, err := io.ReadFull(c.r, p); err != nil {
			return 0, nil, err
		}
		if p[0] != 'p' {
			return p[0], p[1:], nil
		}
	}
}

// run sends steps, checking each answer.
func (c *rawConn) run(steps []rawStep) error {
	for _, st := range steps {
		c.wbuf = append(c.wbuf, st.out...)
		if st.want == 0 {
			continue
		}
		err := c.send(c.wbuf)
		c.wbuf = c.wbuf[:0]
		if err != nil {
			return err
		}
		if st.want == 'E' {
			return c.endOfMessage()
		}
		code, _, err := c.read()
		if err != nil {
			return err
		}
		if code != byte(milter.ActContinue) {
			return fmt.Errorf("action %q, want continue", code)
		}
	}
	return nil
}

var receivedSPF = []byte("Received-SPF\x00")

// endOfMessage reads the modifications up to the final answer; one of them
// must add Received-SPF: pass.
func (c *rawConn) endOfMessage() error {
	pass := false
	for {
		code, data, err := c.read()
		if err != nil {
			return err
		}
		switch code {
		case byte(milter.ActAddHeader), byte(milter.ActInsertHeader):
			if code == byte(milter.ActInsertHeader) && len(data) >= 4 {
				data = data[4:] // the index
			}
			if v, ok := bytes.CutPrefix(data, receivedSPF); ok && bytes.HasPrefix(bytes.TrimLeft(v, " \t"), []byte("pass")) {
				pass = true
			}
		case byte(milter.ActChangeHeader), byte(milter.ActQuarantine):
		case byte(milter.ActContinue), byte(milter.ActAccept):
			if !pass {
				return errors.New("end of message: no Received-SPF: pass among the modifications")
			}
			return nil
		default:
			return fmt.Errorf("end of message: action %q", code)
		}
	}
}

// rawSession is session for -mta raw: k messages on a connection of its
// own, the time each took appended to lat.
func (t *target) rawSession(worker int, body []byte, k int, lat *[]time.Duration) error {
	t0 := time.Now()
	nc, err := t.dialer(worker).Dial(t.network, t.address)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(sessionTimeout)) //nolint:errcheck // a failure shows in the first read
	c := &rawConn{nc: nc, r: bufio.NewReaderSize(nc, 4096)}
	if err := c.send(rawOptneg()); err != nil {
		return err
	}
	code, data, err := c.read()
	if err != nil {
		return err
	}
	if code != byte(milter.CodeOptNeg) || len(data) < 12 {
		return fmt.Errorf("negotiation: answer %q of %d bytes", code, len(data))
	}
	sc := t.script(milter.OptProtocol(binary.BigEndian.Uint32(data[8:])), body)
	if err := c.run(sc.setup); err != nil {
		return fmt.Errorf("connect and HELO: %w", err)
	}
	for range k {
		if err := c.run(sc.message); err != nil {
			return err
		}
		*lat = append(*lat, time.Since(t0))
		t0 = time.Now()
	}
	c.send(sc.end) //nolint:errcheck // the connection ends
	return nil
}

// script returns the steps for a protocol mask, built on first use.
func (t *target) script(proto milter.OptProtocol, body []byte) *rawScript {
	t.scriptMu.Lock()
	defer t.scriptMu.Unlock()
	if t.scripts == nil {
		t.scripts = make(map[milter.OptProtocol]*rawScript)
	}
	sc := t.scripts[proto]
	if sc == nil {
		sc = newRawScript(proto, body)
		t.scripts[proto] = sc
	}
	return sc
}
