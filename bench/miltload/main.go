// Command miltload is a load generator for the milter protocol. It starts
// spfmilter (or talks to a milter already running) against a DNS server of
// its own on loopback and runs full transactions through go-milter's client,
// by default one connection per transaction as Postfix opens one per SMTP
// session with one message: negotiate, connect, HELO, MAIL, RCPT, header
// fields, end of header, a body chunk and end of message, each step the
// milter did not negotiate away. -per-conn sends several messages on each
// connection; -mta says whether the client talks as Postfix (the default:
// see mtaConn), as go-milter's client does by itself, or sends Postfix's
// bytes without go-milter's client (raw.go), which costs less CPU than the
// milter does.
//
//	go run ./bench/miltload -bin ./spfmilter
//
// For each concurrency level it prints transactions per second, latency
// percentiles, the daemon's peak resident memory and its CPU time per
// transaction; then it holds -idle connections open and prints the daemon's
// memory and goroutines, and checks that both settle back once the clients
// are gone. Every level is bounded by -n transactions and -d time. Traffic
// stays on loopback.
//go:build linux

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-milter"
	"golang.org/x/sys/unix"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// The test world: the client is 127.0.0.1, says HELO client.example.test and
// sends from a domain whose SPF record allows it.
const (
	mtaHost    = "mx.example.test"
	clientHELO = "client.example.test"
	passDomain = "pass.example.test"
	sender     = "<load@" + passDomain + ">"
	rcpt       = "<rcpt@dest.example.test>"
)

func world() *spftest.Resolver {
	lo4 := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	return &spftest.Resolver{
		TXT: map[string][]string{
			passDomain: {"v=spf1 ip4:127.0.0.1 ip6:::1 -all"},
			clientHELO: {"v=spf1 ip4:127.0.0.1 ip6:::1 -all"},
		},
		A:        map[string][]netip.Addr{mtaHost: lo4, clientHELO: lo4, passDomain: lo4},
		NoRecord: true,
	}
}

type options struct {
	bin        string
	addr       string
	unix       bool
	pid        int
	metricsURL string
	levels     []int
	n          int
	d          time.Duration
	idle       int
	bodySize   int
	perConn    int
	mta        string
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	var levels string
	flag.StringVar(&o.bin, "bin", "", "spfmilter binary to start (with its own DNS server); empty uses -addr")
	flag.StringVar(&o.addr, "addr", "", "milter already running: inet:HOST:PORT or unix:PATH (loopback only)")
	flag.BoolVar(&o.unix, "unix", false, "with -bin, listen on a unix socket instead of TCP")
	flag.IntVar(&o.pid, "pid", 0, "with -addr, the milter's process id for memory and CPU figures")
	flag.StringVar(&o.metricsURL, "metrics", "", "with -addr, the milter's /metrics URL for goroutine counts")
	flag.StringVar(&levels, "c", "1,16,64,256", "concurrency levels")
	flag.IntVar(&o.n, "n", 30000, "transactions per level at most")
	flag.DurationVar(&o.d, "d", 10*time.Second, "time per level at most")
	flag.IntVar(&o.idle, "idle", 1000, "idle connections to hold open after the load (0 skips)")
	flag.IntVar(&o.bodySize, "body", 2048, "body bytes per message")
	flag.IntVar(&o.perConn, "per-conn", 1, "messages per connection (Postfix: one per SMTP session)")
	flag.StringVar(&o.mta, "mta", "postfix", "how the client talks: postfix (offers what Postfix offers, batches what needs no answer), plain (go-milter's client as it is: every step, every answer) or raw (postfix's bytes, built once, without go-milter's client)")
	flag.Parse()
	for f := range strings.SplitSeq(levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > 4096 {
			fmt.Fprintf(os.Stderr, "miltload: bad concurrency %q (1 to 4096)\n", f)
			return 2
		}
		o.levels = append(o.levels, c)
	}
	if o.n < 1 || o.d <= 0 || o.d > 10*time.Minute || o.idle < 0 || o.idle > 10000 || o.bodySize < 0 || o.bodySize > milter.MaxBodyChunk || o.perConn < 1 || o.perConn > 1000 {
		fmt.Fprintln(os.Stderr, "miltload: -n, -d (up to 10m), -idle (up to 10000), -body or -per-conn (up to 1000) out of range")
		return 2
	}
	if o.mta != "postfix" && o.mta != "plain" && o.mta != "raw" {
		fmt.Fprintln(os.Stderr, "miltload: -mta is postfix, plain or raw")
		return 2
	}
	if (o.bin == "") == (o.addr == "") {
		fmt.Fprintln(os.Stderr, "miltload: give exactly one of -bin and -addr")
		return 2
	}
	if err := runLoad(o); err != nil {
		fmt.Fprintln(os.Stderr, "miltload:", err)
		return 1
	}
	return 0
}

// target is the milter under load.
type target struct {
	network, address string
	mta              string // "postfix", "plain" or "raw"
	pid              int
	metricsURL       string

	scriptMu sync.Mutex // guards scripts (-mta raw)
	scripts  map[milter.OptProtocol]*rawScript
}

func runLoad(o options) error {
	t := target{pid: o.pid, metricsURL: o.metricsURL, mta: o.mta}
	if o.bin != "" {
		stop, err := startMilter(o, &t)
		if err != nil {
			return err
		}
		defer stop()
	} else {
		var ok bool
		if t.network, t.address, ok = parseAddr(o.addr); !ok {
			return fmt.Errorf("-addr %q: want inet:HOST:PORT on loopback or unix:PATH", o.addr)
		}
	}
	fmt.Printf("milter %s:%s, client talking as %s, %d-byte body, %d message(s) per connection, each level bounded by %d transactions and %v, %s\n",
		t.network, t.address, o.mta, o.bodySize, o.perConn, o.n, o.d, machine())

	base := t.snapshot()
	fmt.Printf("\nat start: RSS %s, goroutines %s\n\n", mib(base.rss), count(base.goroutines))
	fmt.Println("| concurrency | transactions | errors | tx/s | p50 ms | p99 ms | max ms | peak RSS MiB | milter CPU µs/tx | load generator CPU µs/tx |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var rates []float64
	for _, c := range o.levels {
		r := t.level(c, o.n, o.perConn, o.d, o.bodySize)
		rates = append(rates, r.rate)
		fmt.Printf("| %d | %d | %d | %.0f | %.2f | %.2f | %.2f | %s | %s | %s |\n",
			c, r.done, r.errors, r.rate, ms(r.pct(0.50)), ms(r.pct(0.99)), ms(r.pct(1)),
			mibNum(r.peakRSS), cpuPerTx(r.cpuTicks, r.done), cpuPerTx(r.ownTicks, r.done))
		if r.firstErr != nil {
			fmt.Printf("  first error: %v\n", r.firstErr)
		}
	}
	for i := 1; i < len(o.levels); i++ {
		if o.levels[i-1] == 64 && o.levels[i] == 256 {
			verdict := "does not fall"
			if rates[i] < rates[i-1] {
				verdict = "falls"
			}
			fmt.Printf("\nthroughput from concurrency 64 to 256 %s (%.0f → %.0f tx/s, %+.1f%%)\n",
				verdict, rates[i-1], rates[i], 100*(rates[i]/rates[i-1]-1))
		}
	}
	after := t.settle(base.goroutines)
	fmt.Printf("\nafter the load: RSS %s, goroutines %s\n", mib(after.rss), count(after.goroutines))

	if o.idle > 0 {
		if err := t.idle(o.idle, base.goroutines); err != nil {
			return err
		}
	}
	return nil
}

// startMilter starts the DNS server and o.bin listening on loopback and
// fills in t; stop ends both.
func startMilter(o options, t *target) (stop func(), err error) {
	dns, err := spftest.StartServer(world())
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "miltload-")
	if err != nil {
		dns.Close()
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		dns.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	listen := ""
	if o.unix {
		t.network, t.address = "unix", filepath.Join(dir, "milter.sock")
		listen = "unix:" + t.address
	} else {
		port, err := freePort()
		if err != nil {
			dns.Close()
			os.RemoveAll(dir)
			return nil, err
		}
		t.network, t.address = "tcp", fmt.Sprintf("127.0.0.1:%d", port)
		listen = "inet:" + t.address
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	t.metricsURL = "http://" + httpAddr + "/metrics"
	cmd := exec.Command(o.bin,
		"--listen", listen,
		"--http-listen", httpAddr,
		"--resolver", dns.Addr(),
		"--authserv-id", mtaHost,
		"--trusted-networks", "",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		dns.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	t.pid = cmd.Process.Pid
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() //nolint:errcheck
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-done
		}
		dns.Close()
		os.RemoveAll(dir)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout(t.network, t.address, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s does not listen on %s: %v", o.bin, listen, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop, nil
}

func parseAddr(s string) (network, address string, ok bool) {
	if p, found := strings.CutPrefix(s, "unix:"); found && p != "" {
		return "unix", p, true
	}
	hp, found := strings.CutPrefix(s, "inet:")
	if !found {
		return "", "", false
	}
	ap, err := netip.ParseAddrPort(hp)
	if err != nil || !ap.Addr().IsLoopback() {
		return "", "", false
	}
	return "tcp", hp, true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// levelResult is one concurrency level's outcome.
type levelResult struct {
	done, errors int
	firstErr     error
	rate         float64
	lat          []time.Duration // sorted
	peakRSS      int64
	cpuTicks     int64 // the milter's
	ownTicks     int64 // this program's
}

func (r levelResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p*float64(len(r.lat))+0.5) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
}

// level runs up to n transactions on c connections at a time, for at most d.
func (t *target) level(c, n, perConn int, d time.Duration, bodySize int) levelResult {
	body := []byte(strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\r\n", bodySize/66+1)[:bodySize])
	var (
		claimed  atomic.Int64
		mu       sync.Mutex
		res      levelResult
		wg       sync.WaitGroup
		stopPeak = make(chan struct{})
		peakDone = make(chan int64)
	)
	go func() { peakDone <- t.watchPeak(stopPeak) }()
	cpu0, own0 := t.cpuTicks(), procCPUTicks(os.Getpid())
	start := time.Now()
	deadline := start.Add(d)
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := t.client(w)
			var lat []time.Duration
			errs := 0
			var first error
			for time.Now().Before(deadline) {
				// Claim the messages of one connection.
				end := claimed.Add(int64(perConn))
				k := min(int64(perConn), int64(n)-(end-int64(perConn)))
				if k <= 0 {
					break
				}
				var err error
				if t.mta == "raw" {
					err = t.rawSession(w, body, int(k), &lat)
				} else {
					err = session(cl, body, int(k), &lat)
				}
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.cpuTicks = t.cpuTicks() - cpu0
	res.ownTicks = procCPUTicks(os.Getpid()) - own0
	close(stopPeak)
	res.peakRSS = <-peakDone
	slices.Sort(res.lat)
	res.done = len(res.lat)
	res.rate = float64(res.done) / elapsed.Seconds()
	return res
}

// dialer dials from one of several loopback source addresses, so that a
// long run does not run out of source ports.
func (t *target) dialer(worker int) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if t.network == "tcp" {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+worker/250%250), byte(1+worker%250))}
		// The port is chosen at connect, for the whole address pair: bind
		// alone would look for a port free for every destination, a long
		// search once TIME_WAIT holds most of them (it took a single client
		// 10 ms of CPU per connection).
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return d
}

// client is go-milter's client on t.dialer. With -mta postfix (the default)
// the connection behaves as Postfix's does: see mtaConn.
func (t *target) client(worker int) *milter.Client {
	var dialer milter.Dialer = t.dialer(worker)
	opts := milter.ClientOptions{
		Dialer:       dialer,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		ActionMask:   milter.OptAddHeader | milter.OptChangeHeader,
	}
	if t.mta == "postfix" {
		opts.Dialer = mtaDialer{dialer}
		opts.ReadTimeout, opts.WriteTimeout = 0, 0 // one deadline per connection
		opts.ActionMask = postfixActions
		opts.ProtocolMask = postfixProtocol
	}
	return milter.NewClientWithOptions(t.network, t.address, opts)
}

// What Postfix 3.7 offers a milter (milter8.c: SMFIF_* it implements, and
// every SMFIP_* step and no-reply flag of protocol version 6).
const (
	postfixActions  = milter.OptAction(0x1ff)
	postfixProtocol = milter.OptProtocol(0x1fffff)
)

// sessionTimeout bounds one connection of the load generator as a whole.
const sessionTimeout = 60 * time.Second

type mtaDialer struct{ milter.Dialer }

func (d mtaDialer) Dial(network, address string) (net.Conn, error) {
	nc, err := d.Dialer.Dial(network, address)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(sessionTimeout)) //nolint:errcheck // a failure shows in the first read
	return &mtaConn{Conn: nc}, nil
}

// mtaConn makes go-milter's client talk as Postfix does:
//
//   - What the client writes leaves when it next reads, in one write: Postfix
//     writes each packet at once but leaves Nagle on, so the packets it sends
//     while no answer is due (macros, CONNECT and HELO under SMFIP_NR_CONN and
//     SMFIP_NR_HELO, header fields under SMFIP_NOHREPL) travel together.
//   - It reads through a buffer, as Postfix's VSTREAM does (go-milter's
//     client reads each packet's length and body with two system calls).
//   - The milter answers OPTNEG with protocol version 2 (go-milter's server
//     speaks no other); go-milter's client, which offers 6, then refuses
//     every no-reply flag. Postfix honours them at version 2 (milter8.c), so
//     the answer's version is shown to the client as 6.
//   - Deadlines are one per connection (sessionTimeout), not one per packet.
type mtaConn struct {
	net.Conn
	wbuf   []byte
	rbuf   [4096]byte
	r, w   int
	offset int // bytes read so far, up to the OPTNEG answer's version
}

func (c *mtaConn) Write(p []byte) (int, error) {
	c.wbuf = append(c.wbuf, p...)
	return len(p), nil
}

func (c *mtaConn) Read(p []byte) (int, error) {
	if len(c.wbuf) > 0 {
		_, err := c.Conn.Write(c.wbuf)
		c.wbuf = c.wbuf[:0]
		if err != nil {
			return 0, err
		}
	}
	if c.r == c.w {
		n, err := c.Conn.Read(c.rbuf[:])
		if n == 0 {
			return 0, err
		}
		c.r, c.w = 0, n
	}
	n := copy(p, c.rbuf[c.r:c.w])
	c.r += n
	// The first packet is the OPTNEG answer: length (4), 'O' (1), version (4).
	for i := range n {
		if o := c.offset + i; o == 8 && p[i] == 2 {
			p[i] = 6
		}
	}
	c.offset = min(c.offset+n, 9)
	return n, nil
}

func (c *mtaConn) Close() error {
	if len(c.wbuf) > 0 {
		c.Conn.Write(c.wbuf) //nolint:errcheck // the connection is ending
	}
	return c.Conn.Close()
}

// The client sets a deadline around each packet when asked to; mtaConn
// keeps the one set at dial.
func (c *mtaConn) SetDeadline(time.Time) error      { return nil }
func (c *mtaConn) SetReadDeadline(time.Time) error  { return nil }
func (c *mtaConn) SetWriteDeadline(time.Time) error { return nil }

// session runs k messages on a connection of its own (k = 1 is Postfix
// with one message per SMTP session) and appends the time each took to lat;
// the first also counts the connection's setup. Each must get the milter's
// verdict (Received-SPF: pass).
func session(cl *milter.Client, body []byte, k int, lat *[]time.Duration) error {
	t0 := time.Now()
	s, err := cl.Session()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Macros(milter.CodeConn, "j", mtaHost, "{daemon_name}", "smtpd", "v", "Postfix 3.7"); err != nil {
		return err
	}
	act, err := s.Conn(clientHELO, milter.FamilyInet, 40000, "127.0.0.1")
	if err := want("connect", act, err); err != nil {
		return err
	}
	act, err = s.Helo(clientHELO)
	if err := want("HELO", act, err); err != nil {
		return err
	}
	for range k {
		if err := message(s, body); err != nil {
			return err
		}
		*lat = append(*lat, time.Since(t0))
		t0 = time.Now()
	}
	return nil
}

func want(what string, act *milter.Action, err error) error {
	if err != nil {
		return err
	}
	if act.Code != milter.ActContinue {
		return fmt.Errorf("%s: action %q, want continue", what, act.Code)
	}
	return nil
}

// messageFields are each message's header fields.
var messageFields = [][2]string{
	{"From", sender},
	{"To", rcpt},
	{"Subject", "milter load"},
	{"Message-ID", "<load@" + passDomain + ">"},
	{"Date", "Tue, 1 Dec 2026 12:00:00 +0000"},
}

// message runs one transaction, MAIL to end of message, on s.
func message(s *milter.ClientSession, body []byte) error {
	if err := s.Macros(milter.CodeMail, "{mail_addr}", sender[1:len(sender)-1]); err != nil {
		return err
	}
	act, err := s.Mail(sender, nil)
	if err := want("MAIL", act, err); err != nil {
		return err
	}
	act, err = s.Rcpt(rcpt, nil)
	if err := want("RCPT", act, err); err != nil {
		return err
	}
	for _, h := range messageFields {
		if err := s.Macros(milter.CodeHeader, "i", "4ABCDEF"); err != nil {
			return err
		}
		act, err = s.HeaderField(h[0], h[1])
		if err := want("header", act, err); err != nil {
			return err
		}
	}
	act, err = s.HeaderEnd()
	if err := want("end of header", act, err); err != nil {
		return err
	}
	act, err = s.BodyChunk(body)
	if err := want("body", act, err); err != nil {
		return err
	}
	mods, act, err := s.End()
	if err != nil {
		return err
	}
	if act.Code != milter.ActContinue && act.Code != milter.ActAccept {
		return fmt.Errorf("end of message: action %q", act.Code)
	}
	for _, m := range mods {
		if strings.EqualFold(m.HeaderName, "Received-SPF") && strings.HasPrefix(strings.TrimSpace(m.HeaderValue), "pass") {
			return nil
		}
	}
	return errors.New("end of message: no Received-SPF: pass among the modifications")
}

// idle holds n connections open past connect and HELO, reports the daemon's
// memory and goroutines, closes them and waits for the daemon to settle.
func (t *target) idle(n int, baseGoroutines int) error {
	sessions := make([]*milter.ClientSession, 0, n)
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	for i := range n {
		s, err := t.client(i).Session()
		if err != nil {
			return fmt.Errorf("idle connection %d: %w", i+1, err)
		}
		sessions = append(sessions, s)
		if _, err := s.Conn(clientHELO, milter.FamilyInet, 40000, "127.0.0.1"); err != nil {
			return fmt.Errorf("idle connection %d: %w", i+1, err)
		}
		if _, err := s.Helo(clientHELO); err != nil {
			return fmt.Errorf("idle connection %d: %w", i+1, err)
		}
	}
	time.Sleep(2 * time.Second)
	runtime.GC()
	held := t.snapshot()
	fmt.Printf("\n%d idle connections: RSS %s, goroutines %s\n", n, mib(held.rss), count(held.goroutines))
	for _, s := range sessions {
		s.Close()
	}
	sessions = nil
	after := t.settle(baseGoroutines)
	fmt.Printf("after closing them: RSS %s, goroutines %s\n", mib(after.rss), count(after.goroutines))
	return nil
}

type snapshot struct {
	rss        int64 // bytes; -1 unknown
	goroutines int   // -1 unknown
}

func (t *target) snapshot() snapshot {
	return snapshot{rss: t.rss(), goroutines: t.goroutines()}
}

// settle waits (at most 15 s) for the daemon's goroutines to come back to
// base, as sessions that the clients closed wind down.
func (t *target) settle(base int) snapshot {
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := t.snapshot()
		if s.goroutines <= base || time.Now().After(deadline) {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// watchPeak samples the daemon's resident memory every 20 ms until stop is
// closed and returns the largest value.
func (t *target) watchPeak(stop <-chan struct{}) int64 {
	peak := t.rss()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return max(peak, t.rss())
		case <-tick.C:
			peak = max(peak, t.rss())
		}
	}
}

// rss is the daemon's VmRSS in bytes, -1 when unknown.
func (t *target) rss() int64 {
	if t.pid <= 0 {
		return -1
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", t.pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb * 1024
		}
	}
	return -1
}

// cpuTicks is the daemon's user plus system time in clock ticks, -1 when
// unknown.
func (t *target) cpuTicks() int64 {
	if t.pid <= 0 {
		return -1
	}
	return procCPUTicks(t.pid)
}

// procCPUTicks reads utime and stime (fields 14 and 15) of /proc/PID/stat.
func procCPUTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces; fields count from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}

// goroutines is go_goroutines from the daemon's /metrics, -1 when unknown.
func (t *target) goroutines() int {
	if t.metricsURL == "" {
		return -1
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(t.metricsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int(n)
		}
	}
	return -1
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

func cpuPerTx(ticks int64, n int) string {
	if ticks < 0 || n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(ticks)/clockTick*1e6/float64(n))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) string {
	if b < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func mibNum(b int64) string {
	if b < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(b)/(1<<20))
}

func count(n int) string {
	if n < 0 {
		return "–"
	}
	return strconv.Itoa(n)
}

// machine describes where the figures come from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		kernel = utsString(u.Release[:])
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), model, kernel, time.Now().UTC().Format("2006-01-02 15:04 MST"))
}

func utsString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
