package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// Soak senders beyond the test world's: a domain whose TXT answers are
// SERVFAIL, and one whose UDP answers are truncated (the record arrives over
// TCP and passes).
const (
	servfailDomain  = "servfail.example.test"
	truncatedDomain = "truncated.example.test"
)

// soakKind is one kind of sender in the soak mix, with the outcome its SPF
// result must have.
type soakKind struct {
	domain string
	// code is the SMTP reply expected at MAIL FROM, 0 when the message is
	// accepted; result is then the Received-SPF result it must carry.
	code   string
	result string
}

// soakMix: per 100 messages, how many of each kind. Temperrors are deferred
// (--defer-temperror), fails rejected (--reject fail).
var soakMix = []struct {
	kind soakKind
	n    int
}{
	{soakKind{domain: passDomain, result: "pass"}, 60},
	{soakKind{domain: truncatedDomain, result: "pass"}, 10},
	{soakKind{domain: softfailDomain, result: "softfail"}, 10},
	{soakKind{domain: failDomain, code: "550 5.7.23"}, 10},
	{soakKind{domain: servfailDomain, code: "451 4.7.24"}, 7},
	{soakKind{domain: timeoutDomain, code: "451 4.7.24"}, 3},
}

// milterDown is Postfix's reply while the milter cannot be reached
// (milter_default_action = tempfail).
const milterDown = "451 4.7.1"

func soakKindOf(i int) soakKind {
	r := i % 100
	for _, m := range soakMix {
		if r < m.n {
			return m.kind
		}
		r -= m.n
	}
	panic("soakMix does not add up to 100")
}

// soakOutcome is what the client saw for one message.
type soakOutcome struct {
	code string // "250" when accepted, else "NNN X.Y.Z" of the refusal
	err  error  // a failure without an SMTP reply
}

// TestPostfixSoak sends SPFMILTER_SOAK messages through real Postfix and
// spfmilter, one per SMTP session from several clients at once, with DNS
// faults in the mix (timeouts, SERVFAIL, truncated UDP answers, one-second
// TTLs so that the faults keep coming), a SIGHUP every second and two SIGTERMs
// (each followed by a fresh milter on the same port) while the load runs.
// Every message must be accounted for: accepted and delivered to the sink
// exactly once with the expected SPF verdict, or refused with the code its
// sender's result calls for, or deferred with Postfix's milter-unavailable
// code while the milter restarts; Postfix's log must show every refusal.
// Lost messages, duplicates, wrong verdicts and unknown replies fail the
// test. bench/soak.sh runs it with 100,000 messages; CI runs a bounded form.
func TestPostfixSoak(t *testing.T) {
	v := os.Getenv("SPFMILTER_SOAK")
	if v == "" {
		t.Skip("soak run; set SPFMILTER_SOAK=MESSAGES (bench/soak.sh does)")
	}
	total, err := strconv.Atoi(v)
	if err != nil || total < 100 || total > 1_000_000 {
		t.Fatalf("SPFMILTER_SOAK=%q: want a message count from 100 to 1000000", v)
	}
	clients := envInt(t, "SPFMILTER_SOAK_CLIENTS", 16)
	needRoot(t)
	needProgram(t, "postfix")
	needProgram(t, "smtp-sink")

	dir := openRunDir(t)
	world := testWorld()
	world.TXT[truncatedDomain] = []string{"v=spf1 ip4:127.0.0.1 ip6:::1 -all"}
	world.A[truncatedDomain] = []netip.Addr{loop4}
	world.A[servfailDomain] = []netip.Addr{loop4}
	world.Fail["TXT "+servfailDomain] = spftest.ErrServFail
	dns := startDNSWith(t, world)
	dns.Truncate(truncatedDomain)
	dns.SetTTL(1)
	ns := newNamespace(t, dir, strings.Split(dns.Addr(), ":")[0])

	// The policy lives in a file, so that each SIGHUP re-reads it.
	conf := filepath.Join(dir, "spfmilter.yaml")
	if err := os.WriteFile(conf, []byte("reject: [fail]\ndefer_temperror: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	milterAddr := fmt.Sprintf("127.0.0.1:%d", port)
	startSoakMilter := func(gen int) *proc {
		return startMilterOn(t, fmt.Sprintf("soak %d", gen), dns.Addr(), "inet:"+milterAddr,
			"--config", conf, "--dns-timeout", "300ms", "--shutdown-timeout", "10s", "--log-level", "warn")
	}
	s := startSink(t, dir)
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startPostfix(t, dir, ns, s.Port, []postfixListener{{Addr: smtpAddr, Milter: milterAddr}})

	milterP := startSoakMilter(0)
	restarts, hups := 0, 0
	outcomes := make([]soakOutcome, total)
	var next, finished atomic.Int64

	// The clients: one message per SMTP session, until every message is
	// sent. Bounded by the message count and, per session, by deadlines.
	start := time.Now()
	loadDone := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				outcomes[i] = soakSend(smtpAddr, soakMessage(i))
				finished.Add(1)
			}
		}()
	}
	go func() { wg.Wait(); close(loadDone) }()

	// Meanwhile the signals: SIGHUP every second, and SIGTERM at a third
	// and at two thirds of the messages, each followed by a new milter on
	// the same port.
	terms := []int64{int64(total) / 3, 2 * int64(total) / 3}
	tick := time.NewTicker(time.Second)
signals:
	for {
		select {
		case <-loadDone:
			break signals
		case <-tick.C:
		}
		if len(terms) > 0 && finished.Load() >= terms[0] {
			terms = terms[1:]
			milterP.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // the exit status is checked
			if !milterP.waitExit(30 * time.Second) {
				t.Fatal("the milter did not stop within 30 s of SIGTERM")
			}
			if milterP.err != nil {
				t.Errorf("the milter exited on SIGTERM with %v\n%s", milterP.err, milterP.out.String())
			}
			restarts++
			milterP = startSoakMilter(restarts)
			continue
		}
		milterP.cmd.Process.Signal(syscall.SIGHUP) //nolint:errcheck // a dead milter shows in the outcomes
		hups++
	}
	tick.Stop()
	elapsed := time.Since(start)
	if milterP.hasExited() {
		t.Errorf("the milter exited during the soak: %v\n%s", milterP.err, milterP.out.String())
	}

	// Accounting.
	want := map[string]int{} // refusal code → messages
	accepted := 0
	var wrong, noReply []string
	for i, o := range outcomes {
		k := soakKindOf(i)
		switch {
		case o.err != nil:
			noReply = append(noReply, fmt.Sprintf("%s: %v", soakID(i), o.err))
		case o.code == "250":
			accepted++
			if k.code != "" {
				wrong = append(wrong, fmt.Sprintf("%s from %s accepted, want %s", soakID(i), k.domain, k.code))
			}
		case o.code == k.code || o.code == milterDown:
			want[o.code]++
		default:
			wrong = append(wrong, fmt.Sprintf("%s from %s: %s, want %q or %s", soakID(i), k.domain, o.code, k.code, milterDown))
		}
	}
	if len(noReply) > 0 {
		t.Errorf("%d messages got no SMTP reply, e.g. %s", len(noReply), noReply[0])
	}
	if len(wrong) > 0 {
		t.Errorf("%d wrong verdicts, e.g. %s", len(wrong), strings.Join(wrong[:min(5, len(wrong))], "; "))
	}

	// Every accepted message reaches the sink exactly once, with the
	// verdict its sender calls for; nothing else does.
	waitFiles(t, s.dir, accepted, 5*time.Minute+time.Duration(accepted)*10*time.Millisecond)
	seen := make([]int, total)
	lost, dup, unexpected := 0, 0, 0
	for _, m := range s.all(t) {
		id := testID(m.Header)
		i, ok := soakIndex(id)
		if !ok || i >= total {
			t.Errorf("the sink holds a message that is not from this soak: %q", id)
			continue
		}
		seen[i]++
		if outcomes[i].code != "250" {
			unexpected++
			continue
		}
		if got := receivedSPFResult(m.Header); got != soakKindOf(i).result {
			wrong = append(wrong, fmt.Sprintf("%s delivered with Received-SPF %q, want %q", id, got, soakKindOf(i).result))
		}
	}
	for i, o := range outcomes {
		switch {
		case o.code == "250" && seen[i] == 0:
			lost++
		case seen[i] > 1:
			dup++
		}
	}
	if lost+dup+unexpected > 0 {
		t.Errorf("%d accepted messages lost, %d delivered more than once, %d delivered though refused", lost, dup, unexpected)
	}
	if len(wrong) > 0 {
		t.Errorf("wrong verdicts: %s", strings.Join(wrong[:min(5, len(wrong))], "; "))
	}

	// Postfix logs every refusal it passed on.
	logged := waitMilterRejects(t, filepath.Join(dir, "maillog"), want, 30*time.Second)

	fmt.Printf("\nsoak: %d messages, %d clients, %.1f s (%.0f msgs/s), %d SIGHUPs, %d SIGTERM restarts\n",
		total, clients, elapsed.Seconds(), float64(total)/elapsed.Seconds(), hups, restarts)
	fmt.Printf("accepted and delivered %d; rejected 550 5.7.23 %d; deferred 451 4.7.24 (temperror) %d; deferred %s (milter restarting) %d\n",
		accepted-lost, want["550 5.7.23"], want["451 4.7.24"], milterDown, want[milterDown])
	fmt.Printf("Postfix logged refusals: %v\n", logged)
	fmt.Printf("lost %d, duplicates %d, delivered though refused %d, wrong verdicts %d, no reply %d\n",
		lost, dup, unexpected, len(wrong), len(noReply))
}

// enhancedCode is an RFC 3463 status code.
var enhancedCode = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)

func soakID(i int) string { return fmt.Sprintf("soak-%07d", i) }

func soakIndex(id string) (int, bool) {
	n, ok := strings.CutPrefix(id, "soak-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil && i >= 0
}

func soakMessage(i int) message {
	return message{ID: soakID(i), From: "soak@" + soakKindOf(i).domain}
}

// soakSend runs one SMTP session with one message. It returns "250" when
// the message was accepted, the refusal's code and enhanced code otherwise.
func soakSend(addr string, m message) soakOutcome {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return soakOutcome{err: err}
	}
	// Bounded: a check takes at most the milter's check timeout, and
	// Postfix's milter timeouts are 60 s.
	conn.SetDeadline(time.Now().Add(3 * time.Minute)) //nolint:errcheck
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return soakOutcome{err: err}
	}
	defer c.Close()
	refused := func(err error) soakOutcome {
		var te *textproto.Error
		if !errors.As(err, &te) {
			return soakOutcome{err: err}
		}
		code := strconv.Itoa(te.Code)
		if f := strings.Fields(te.Msg); len(f) > 0 && enhancedCode.MatchString(f[0]) {
			code += " " + f[0]
		}
		c.Quit() //nolint:errcheck // the outcome is known
		return soakOutcome{code: code}
	}
	if err := c.Hello(clientHELO); err != nil {
		return refused(err)
	}
	if err := c.Mail(m.From); err != nil {
		return refused(err)
	}
	if err := c.Rcpt(m.rcpt()); err != nil {
		return refused(err)
	}
	w, err := c.Data()
	if err != nil {
		return refused(err)
	}
	if _, err := w.Write([]byte(m.data())); err != nil {
		return soakOutcome{err: err}
	}
	if err := w.Close(); err != nil {
		return refused(err)
	}
	c.Quit() //nolint:errcheck // accepted already
	return soakOutcome{code: "250"}
}

// receivedSPFResult is the result token of the first Received-SPF field.
func receivedSPFResult(h []headerField) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, "Received-SPF") {
			r, _, _ := strings.Cut(strings.TrimSpace(f.Value), " ")
			return r
		}
	}
	return ""
}

// waitMilterRejects waits until Postfix's log holds, for every code in
// want, as many milter-reject lines as the clients saw refusals, and
// returns the counts it found. Postfix's log is written asynchronously.
//
// Only the stages from MAIL on count: while the milter cannot be reached,
// Postfix also logs the tempfail at CONNECT and EHLO, but answers those
// commands normally and refuses the session's MAIL FROM.
func waitMilterRejects(t *testing.T, maillog string, want map[string]int, d time.Duration) map[string]int {
	t.Helper()
	re := regexp.MustCompile(`milter-reject: (?:MAIL|RCPT|DATA|END-OF-MESSAGE) from \S+: (\d{3} \d\.\d{1,3}\.\d{1,3})`)
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(maillog)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			got[m[1]]++
		}
		ok := true
		for code, n := range want {
			if got[code] != n {
				ok = false
			}
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			t.Errorf("Postfix logged milter refusals %v, the clients saw %v", got, want)
			return got
		}
		time.Sleep(500 * time.Millisecond)
	}
}
