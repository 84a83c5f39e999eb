package milter

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf"
)

// fakeClock is real time plus an offset the test moves forward: socket
// deadlines computed from it are never earlier than real ones.
type fakeClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().Add(f.off)
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.off += d
	f.mu.Unlock()
}

// rawAnswer reads one packet: its command and data.
func rawAnswer(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-1)
	_, err := io.ReadFull(r, data)
	return hdr[4], data, err
}

// negotiate sends OPTNEG offering proto and returns the protocol flags of
// the answer.
func negotiate(t *testing.T, c net.Conn, proto gomilter.OptProtocol) gomilter.OptProtocol {
	t.Helper()
	neg := binary.BigEndian.AppendUint32(nil, 6)
	neg = binary.BigEndian.AppendUint32(neg, 0x1ff)
	neg = binary.BigEndian.AppendUint32(neg, uint32(proto))
	if _, err := c.Write(pkt('O', string(neg))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	code, data, err := rawAnswer(c)
	if err != nil || code != 'O' || len(data) < 12 {
		t.Fatalf("negotiation answer %q %q %v", code, data, err)
	}
	return gomilter.OptProtocol(binary.BigEndian.Uint32(data[8:]))
}

func connectPkt(ip string) []byte {
	return pkt('C', cstr("client.example"), "4", "\x0f\xb9", cstr(ip))
}

// expectClosed reads until the milter closes the connection; anything but
// a close (an answer, our own read bound) fails.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	code, _, err := rawAnswer(c)
	if err == nil {
		t.Fatalf("%s: got answer %q, want the connection closed", what, code)
	}
	if isTimeout(err) {
		t.Fatalf("%s: connection still open", what)
	}
}

func heapLive() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// With SMFIP_NR_CONN and SMFIP_NR_HELO offered, CONNECT and HELO get no
// answer: the first answer after them is MAIL FROM's.
func TestNoReplyToConnectAndHELO(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), rejectFail)})
	for _, tc := range []struct {
		name    string
		offered gomilter.OptProtocol
		want    []byte // the answers to CONNECT, HELO and MAIL FROM
	}{
		{"offered", 0x1fffff, []byte{'y'}},
		{"not offered", 0x1fffff &^ noReplyFlags, []byte{'c', 'c', 'y'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, h.addr)
			proto := negotiate(t, c, tc.offered)
			if got, want := proto&noReplyFlags, tc.offered&noReplyFlags; got != want {
				t.Errorf("negotiated no-reply flags %#x, want %#x", got, want)
			}
			var b []byte
			b = append(b, connectPkt(clientA)...)
			b = append(b, pkt('H', cstr("helo.pass.test"))...)
			b = append(b, pkt('M', cstr("<bob@fail.test>"))...)
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				code, _, err := rawAnswer(c)
				if err != nil || code != want {
					t.Fatalf("answer %d: %q %v, want %q", i, code, err, want)
				}
			}
		})
	}
}

// An ABORT the MTA did not send follows each end of message, so go-milter
// forgets the header fields: sixty messages with 240 KB of
// Authentication-Results each leave no more than one message's worth.
func TestHeaderFieldsReleasedPerMessage(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	big := "other.example; spf=pass " + strings.Repeat("x", 30<<10)
	var hdr []field
	for range 8 {
		hdr = append(hdr, field{"Authentication-Results", big})
	}
	before := heapLive()
	for i := range 60 {
		m.accepted("alice@pass.test", "Q"+strconv.Itoa(i), hdr...)
	}
	m.continued("mail", m.mail("alice@pass.test"), nil) // the abort is behind us
	grown := int64(heapLive()) - int64(before)
	if grown > 4<<20 {
		t.Errorf("heap grew by %d bytes over 60 messages of 240 KB of fields", grown)
	}
	t.Logf("heap growth after 60 messages: %d bytes", grown)
}

func TestHeaderBytesBound(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	c := rawDial(t, h.addr)
	negotiate(t, c, 0x1fffff&^gomilter.OptNoMailReply) // MAIL FROM answered
	b := append(connectPkt(clientA), pkt('H', cstr("helo.pass.test"))...)
	b = append(b, pkt('M', cstr("<alice@pass.test>"))...)
	c.Write(b) //nolint:errcheck // the answer tells
	if code, _, err := rawAnswer(c); err != nil || code != 'c' {
		t.Fatalf("mail: %q %v", code, err)
	}
	field := pkt('L', cstr(arName), cstr(strings.Repeat("y", 60<<10)))
	for range MaxHeaderBytes/(60<<10) + 2 {
		if _, err := c.Write(field); err != nil {
			break
		}
	}
	expectClosed(t, c, "more than MaxHeaderBytes of fields")
}

// A declared packet costs what arrived, not what was declared: 100
// connections each declaring a 255 KiB packet and sending 10 bytes of it.
// go-milter alone allocates the declared size at once (25 MB here).
func TestDeclaredPacketCostsWhatArrived(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	const n = 100
	before := heapLive()
	var ports []int
	for range n {
		c := rawDial(t, h.addr)
		negotiate(t, c, 0x1fffff)
		p := binary.BigEndian.AppendUint32(nil, MaxPacketSize-1)
		p = append(p, 'L')
		p = append(p, "Subject\x00x"...)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		ports = append(ports, c.LocalAddr().(*net.TCPAddr).Port)
	}
	waitServerRead(t, h.addr, ports)
	grown := int64(heapLive()) - int64(before)
	t.Logf("heap growth with %d connections holding a declared %d-byte packet: %d bytes (%d per connection)", n, MaxPacketSize-1, grown, grown/n)
	if grown > n*32<<10 {
		t.Errorf("heap grew by %d bytes, %d per connection", grown, grown/n)
	}

	// Over the bound: closed before anything is allocated.
	c := rawDial(t, h.addr)
	negotiate(t, c, 0x1fffff)
	c.Write(binary.BigEndian.AppendUint32(nil, 1<<20)) //nolint:errcheck // the close tells
	expectClosed(t, c, "a declared 1 MiB packet")
}

// waitServerRead waits until the server side of each connection from the
// given client ports has read everything sent (its receive queue in
// /proc/net/tcp is empty).
func waitServerRead(t *testing.T, server string, ports []int) {
	t.Helper()
	ap, err := netip.ParseAddrPort(server)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, p := range ports {
		want[strings.ToUpper(strconv.FormatInt(int64(p), 16))] = true
	}
	sport := strings.ToUpper(strconv.FormatInt(int64(ap.Port()), 16))
	waitFor(t, "the server to read what was sent", func() bool {
		f, err := os.Open("/proc/net/tcp")
		if err != nil {
			t.Skipf("no /proc/net/tcp: %v", err)
		}
		defer f.Close()
		drained := 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 5 {
				continue
			}
			_, lport, _ := strings.Cut(fs[1], ":")
			_, rport, _ := strings.Cut(fs[2], ":")
			_, rxq, _ := strings.Cut(fs[4], ":")
			if strings.TrimLeft(lport, "0") == sport && want[strings.TrimLeft(rport, "0")] && strings.Trim(rxq, "0") == "" {
				drained++
			}
		}
		return drained == len(ports)
	})
}

func TestMacroPacketBounds(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"1 MiB", pkt('D', "C", strings.Repeat("a\x00b\x00", 1<<18))},
		{"over the size bound", pkt('D', "C", strings.Repeat("a", MaxMacroPacketSize))},
		{"too many strings", pkt('D', "C", strings.Repeat("\x00", maxMacroStrings+1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, h.addr)
			negotiate(t, c, 0x1fffff)
			c.Write(tc.p) //nolint:errcheck // the close tells
			expectClosed(t, c, tc.name)
		})
	}
	// Within the bounds, the session goes on.
	c := rawDial(t, h.addr)
	negotiate(t, c, 0x1fffff&^noReplyFlags)
	c.Write(append(pkt('D', "C", cstr("j"), cstr(strings.Repeat("m", 8<<10))), connectPkt(clientA)...)) //nolint:errcheck
	if code, _, err := rawAnswer(c); err != nil || code != 'c' {
		t.Fatalf("connect after an 8 KiB macro packet: %q %v", code, err)
	}
	_, _, _, _, errs := h.obs.snapshot()
	if len(errs) != 3 || errs[0] != StageConnection {
		t.Errorf("errors %q, want three %q", errs, StageConnection)
	}
}

// A packet that trickles in one byte per (fake) second ends at the packet
// timeout, whatever the idle timeout.
func TestSlowWriterCannotExtendPacket(t *testing.T) {
	fc := &fakeClock{}
	h := start(t, Options{Config: testConfig(world()), IdleTimeout: time.Hour, PacketTimeout: 3 * time.Second, clock: fc.now})
	c := rawDial(t, h.addr)
	negotiate(t, c, 0x1fffff)
	p := pkt('H', cstr("a-rather-long-helo-name.example"))
	for _, b := range p {
		if _, err := c.Write([]byte{b}); err != nil {
			break // closed already
		}
		fc.advance(time.Second)
		time.Sleep(time.Millisecond) // lets the byte arrive alone; the outcome does not depend on it
	}
	expectClosed(t, c, "a packet sent one byte per second")
	if !strings.Contains(h.logs.String(), "packet not complete within the packet timeout") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

func TestSessionTimeout(t *testing.T) {
	fc := &fakeClock{}
	h := start(t, Options{Config: testConfig(world()), SessionTimeout: time.Hour, clock: fc.now})
	c := rawDial(t, h.addr)
	// MAIL FROM answered (no SMFIP_NR_MAIL offered).
	negotiate(t, c, 0x1fffff&^gomilter.OptNoMailReply)
	c.Write(append(connectPkt(clientA), pkt('H', cstr("helo.pass.test"))...)) //nolint:errcheck
	fc.advance(59 * time.Minute)
	c.Write(pkt('M', cstr("<alice@pass.test>"))) //nolint:errcheck
	if code, _, err := rawAnswer(c); err != nil || code != 'c' {
		t.Fatalf("mail within the session timeout: %q %v", code, err)
	}
	fc.advance(2 * time.Minute)
	c.Write(pkt('A'))                            //nolint:errcheck
	c.Write(pkt('M', cstr("<alice@pass.test>"))) //nolint:errcheck
	expectClosed(t, c, "a command after the session timeout")
	if !strings.Contains(h.logs.String(), "session timeout") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

// 1,000 connections that each send a byte and stall take every slot for no
// longer than the packet timeout: all are closed, a normal session is
// answered after them, and every slot comes back.
func TestThousandStalledConnections(t *testing.T) {
	h := start(t, Options{Config: testConfig(world()), PacketTimeout: 50 * time.Millisecond, MaxConnections: 50})
	const n = 1000
	var wg sync.WaitGroup
	var closed atomic.Int64
	conns := make(chan net.Conn, n)
	for range n {
		c := rawDial(t, h.addr)
		c.Write([]byte{0}) //nolint:errcheck // one byte of a packet length
		conns <- c
	}
	close(conns)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range conns {
				c.SetReadDeadline(time.Now().Add(2 * time.Minute))
				if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					closed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if closed.Load() != n {
		t.Fatalf("%d of %d stalled connections closed", closed.Load(), n)
	}
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	m.accepted("alice@pass.test", "QAFTER")
	m.cs.Close()
	waitFor(t, "every slot back", func() bool { return h.srv.activeConnections() == 0 })
}

// blockingResolver holds every TXT lookup until its context ends.
type blockingResolver struct {
	started   chan struct{}
	cancelled atomic.Int64
}

func (b *blockingResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	b.cancelled.Add(1)
	return nil, ctx.Err()
}

func (b *blockingResolver) LookupA(context.Context, string) ([]netip.Addr, error) { return nil, nil }
func (b *blockingResolver) LookupAAAA(context.Context, string) ([]netip.Addr, error) {
	return nil, nil
}
func (b *blockingResolver) LookupMX(context.Context, string) ([]string, error) { return nil, nil }
func (b *blockingResolver) LookupPTR(context.Context, netip.Addr) ([]string, error) {
	return nil, nil
}

// 200 MTA connections that go away while their check runs: every check is
// cancelled and every slot comes back, long before the check timeout.
func TestAbandonedChecksCancelled(t *testing.T) {
	br := &blockingResolver{started: make(chan struct{}, 1)}
	cfg := testConfig(world())
	cfg.Checker = &spf.Checker{Resolver: br, Receiver: ourID, Timeout: time.Hour}
	h := start(t, Options{Config: cfg, MaxConnections: 50})
	const n = 200
	for range n {
		c := rawDial(t, h.addr)
		negotiate(t, c, 0x1fffff)
		b := append(connectPkt(clientA), pkt('H', cstr("helo.pass.test"))...)
		b = append(b, pkt('M', cstr("<alice@pass.test>"))...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		<-br.started // the check runs
		c.Close()
	}
	waitFor(t, "every slot back", func() bool { return h.srv.activeConnections() == 0 })
	if got := br.cancelled.Load(); got < n {
		t.Errorf("%d lookups cancelled, want at least %d", got, n)
	}
}

// A second SIGTERM after the last session ended finds both the drained and
// the cancelled context ready: Shutdown reports no deadline.
func TestShutdownDrainedWinsOverCancelledContext(t *testing.T) {
	for range 50 {
		srv := NewServer(Options{Config: testConfig(world())})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with no connection: %v", err)
		}
	}
}

// deadlineListener reports each read deadline its connections get.
type deadlineListener struct {
	net.Listener
	set chan time.Time
}

func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c, set: l.set}, nil
}

type deadlineConn struct {
	net.Conn
	set chan time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	select {
	case c.set <- t:
	default:
	}
	return c.Conn.SetReadDeadline(t)
}

// Each wait for the MTA's next packet is bounded by the idle timeout from
// the time the wait starts (to within 1/16 of it): a session whose steps
// are each within the timeout lives longer than the timeout.
func TestIdleTimeoutRestartsEachWait(t *testing.T) {
	fc := &fakeClock{}
	const idle = time.Minute
	srv := NewServer(Options{Config: testConfig(world()), IdleTimeout: idle, clock: fc.now})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	set := make(chan time.Time, 100)
	go srv.Serve(&deadlineListener{Listener: ln, set: set}) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	h := &harness{t: t, srv: srv, addr: ln.Addr().String()}
	m := h.connect(gomilter.FamilyInet, clientA)
	for i := range 5 {
		fc.advance(idle * 3 / 4)
		m.helo("helo.pass.test")
		armed := fc.now().Add(idle - idle/deadlineSlack)
		bound := time.After(30 * time.Second)
		for found := false; !found; {
			select {
			case d := <-set:
				found = !d.Before(armed)
			case <-bound:
				t.Fatalf("step %d: no read deadline at least %v after the step", i, idle-idle/deadlineSlack)
			}
		}
	}
	m.accepted("alice@pass.test", "QLIVE")
}

// An MTA that does not offer SMFIP_NOHREPL gets an answer to every header
// field, kept or not.
func TestHeaderAnsweredWithoutNoReplyOffer(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	c := rawDial(t, h.addr)
	// Nor SMFIP_NR_MAIL: MAIL FROM's answer comes first.
	if proto := negotiate(t, c, 0x1fffff&^(gomilter.OptNoHeaderReply|gomilter.OptNoMailReply)); proto&gomilter.OptNoHeaderReply != 0 {
		t.Fatalf("negotiated %#x: asks for no header answers the MTA did not offer", proto)
	}
	b := append(connectPkt(clientA), pkt('H', cstr("helo.pass.test"))...)
	b = append(b, pkt('M', cstr("<alice@pass.test>"))...)
	b = append(b, pkt('L', cstr("Subject"), cstr("x"))...)
	b = append(b, pkt('L', cstr(arName), cstr("other.example; spf=pass"))...)
	b = append(b, pkt('E')...)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < 4 {
		code, _, err := rawAnswer(c)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if code != 'i' && code != 'm' { // the end of message's header edits
			got = append(got, code)
		}
	}
	// MAIL FROM, the two fields, and the end of message.
	if string(got) != "cccc" {
		t.Errorf("answers %q, want four continues", got)
	}
}
