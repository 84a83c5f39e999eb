package milter

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// pkt encodes one milter packet: length, command, then data.
func pkt(cmd byte, data ...string) []byte {
	var body []byte
	for _, d := range data {
		body = append(body, d...)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)+1))
	return append(append(b, cmd), body...)
}

// cstr is s NUL-terminated.
func cstr(s string) string { return s + "\x00" }

// postfixMessage is what Postfix 3.7 sends for a one-message SMTP session
// with spfmilter's negotiation (milter_protocol = 6), grouped by the writes
// after which it waits for an answer. Each step's bool says whether an
// answer is read after it (with SMFIP_NR_CONN, SMFIP_NR_HELO and, under a
// configuration that cannot refuse at MAIL FROM, SMFIP_NR_MAIL in force,
// CONNECT, HELO and MAIL FROM get none).
func postfixMessage(nr bool) (steps [][]byte, answered []bool) {
	var proto uint32 = 0x1fffff
	if !nr {
		proto &^= uint32(noReplyFlags | gomilter.OptNoMailReply)
	}
	neg := binary.BigEndian.AppendUint32(nil, 6)
	neg = binary.BigEndian.AppendUint32(neg, 0x1ff)
	neg = binary.BigEndian.AppendUint32(neg, proto)
	join := func(ps ...[]byte) []byte {
		var b []byte
		for _, p := range ps {
			b = append(b, p...)
		}
		return b
	}
	steps = [][]byte{
		pkt('O', string(neg)),
		join(pkt('D', "C", cstr("j"), cstr("mx.example.test"), cstr("{daemon_name}"), cstr("mx"), cstr("_"), cstr("client.example [127.0.0.2]")),
			pkt('C', cstr("client.example"), "4", "\x0f\xb9", cstr(clientA))),
		join(pkt('D', "H"), pkt('H', cstr("helo.pass.test"))),
		join(pkt('D', "M", cstr("i"), cstr("4AbCdE"), cstr("{mail_addr}"), cstr("alice@pass.test")),
			pkt('M', cstr("<alice@pass.test>"), cstr("SIZE=2048"))),
	}
	var hdr []byte
	for _, f := range [][2]string{
		{"Received", "from client.example (client.example [127.0.0.2]) by mx.example.test (Postfix) with ESMTP id 4AbCdE for <bob@example.test>; Tue,  1 Dec 2026 12:00:00 +0000 (UTC)"},
		{"Date", "Tue, 01 Dec 2026 12:00:00 +0000"},
		{"To", "bob@example.test"},
		{"From", "alice@pass.test"},
		{"Subject", "bench"},
		{"Message-Id", "<20261201120000.1234@client.example>"},
		{"X-Mailer", "smtp-source"},
		{"Authentication-Results", "other.example; spf=pass smtp.mailfrom=pass.test"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain"},
	} {
		hdr = join(hdr, pkt('D', "L", cstr("i"), cstr("4AbCdE")), pkt('L', cstr(f[0]), cstr(f[1])))
	}
	steps = append(steps, join(hdr, pkt('D', "E", cstr("i"), cstr("4AbCdE")), pkt('E')), pkt('Q'))
	answered = []bool{true, !nr, !nr, !nr, true, false}
	return steps, answered
}

// BenchmarkPostfixSession is one SMTP session with one accepted message as
// Postfix drives it, on a new loopback connection, with a raw client that
// costs little next to the milter: the figure is mostly the milter's.
// cpu-ns/op is the process's CPU time (milter and client) per session.
func BenchmarkPostfixSession(b *testing.B) {
	h := start(b, Options{Config: testConfig(world()), IdleTimeout: time.Minute, MaxConnections: 100})
	steps, answered := postfixMessage(true)
	run := func() {
		c, r := benchExchange(b, h.addr, steps, answered, nil)
		defer c.Close()
		// Wait for the milter to close its end after QUIT.
		io.Copy(io.Discard, r) //nolint:errcheck // EOF is the point
	}
	benchSessions(b, run)
}

// benchExchange opens a connection to addr and writes each step; for the
// steps answered marks (every step when it is nil) it reads the answers up
// to the step's last one (O, c, y or a), handing each to check when that is
// not nil. The caller closes the connection.
func benchExchange(b *testing.B, addr string, steps [][]byte, answered []bool, check func(step int, code byte)) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	done := false
	defer func() {
		if !done { // b.Fatal on the way
			c.Close()
		}
	}()
	r := bufio.NewReader(c)
	for i, s := range steps {
		if _, err := c.Write(s); err != nil {
			b.Fatal(err)
		}
		if answered != nil && !answered[i] {
			continue
		}
		for {
			code, err := readAnswer(r)
			if err != nil {
				b.Fatalf("step %d: %v", i, err)
			}
			if check != nil {
				check(i, code)
			}
			if code == 'O' || code == 'c' || code == 'y' || code == 'a' {
				break
			}
		}
	}
	done = true
	return c, r
}

// benchSessions runs one session to warm up, then one per iteration, and
// reports allocations and cpu-ns/op: the process's CPU time (milter and
// client) per session.
func benchSessions(b *testing.B, run func()) {
	run()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func readAnswer(r *bufio.Reader) (byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if _, err := r.Discard(int(n) - 1); err != nil {
		return 0, err
	}
	return hdr[4], nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck // cannot fail
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
