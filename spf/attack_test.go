package spf_test

// Attacks by a sender who controls DNS zones, replayed against the real
// resolver and a hostile DNS server on loopback. Each test asserts the bound
// that must hold: retained and allocated heap (from runtime/metrics), queries
// per check within RFC 7208's bound, and no wrong verdict. The sizes here are
// small enough for every `go test` run; SPFMILTER_ATTACK=full replays them at
// the scale that once cost gigabytes (bench/attack-dns.sh).

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// attackScale picks the fast count or, with SPFMILTER_ATTACK=full, the full
// one.
func attackScale(fast, full int) int {
	if os.Getenv("SPFMILTER_ATTACK") == "full" {
		return full
	}
	return fast
}

// attackBudget is the cache budget the attack tests give, split as the
// daemon splits cache_max_bytes: three quarters to the DNS answers, a
// quarter to the parsed records.
const attackBudget = 8 << 20

// heapSlack is what the heap may grow by on top of the cache budget: the
// test's own bookkeeping, the DNS server's buffers and GC timing.
const heapSlack = 16 << 20

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveHeap is the heap held by reachable objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	return readMetric("/gc/heap/live:bytes")
}

// allocated is the cumulative number of bytes allocated on the heap.
func allocated() uint64 { return readMetric("/gc/heap/allocs:bytes") }

// peakSampler follows the heap's in-use object bytes while an attack runs,
// and the process's peak resident set, for the report only (the assertions
// use liveHeap and allocated).
type peakSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func samplePeak() *peakSampler {
	// Give the earlier tests' memory back to the system, then (Linux)
	// reset the peak RSS (VmHWM) by writing 5 to clear_refs.
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) //nolint:errcheck // elsewhere there is no RSS figure
	p := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := readMetric("/memory/classes/heap/objects:bytes"); v > p.peak.Load() {
				p.peak.Store(v)
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) Stop() uint64 {
	close(p.stop)
	<-p.done
	return p.peak.Load()
}

// peakRSS is the process's peak resident set since samplePeak, as text.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return mib(kb << 10)
			}
		}
	}
	return "?"
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// attackClient is the resolver as the daemon builds it, with the attack
// budget, asking servers.
func attackClient(t *testing.T, servers ...string) *resolver.Client {
	t.Helper()
	c, err := resolver.New(resolver.Options{Servers: servers, Timeout: 2 * time.Second, CacheBytes: attackBudget * 3 / 4})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// attackChecker checks with the attack budget, asking servers.
func attackChecker(t *testing.T, servers ...string) *spf.Checker {
	return &spf.Checker{Resolver: attackClient(t, servers...), Records: spf.NewRecordCache(attackBudget / 4)}
}

// zone answers TXT questions under suffix with text(name), NXDOMAIN for
// everything else.
func zone(text func(name string) string) spftest.Answerer {
	return func(q dns.Question) (int, []dns.RR, bool) {
		if q.Qtype == dns.TypeTXT {
			if t := text(strings.TrimSuffix(strings.ToLower(q.Name), ".")); t != "" {
				return dns.RcodeSuccess, []dns.RR{spftest.TXT(q.Name, t, 3600)}, false
			}
		}
		return dns.RcodeNameError, nil, false
	}
}

var attackIP = netip.MustParseAddr("192.0.2.99")

// recordFlood sends n MAIL FROMs for random subdomains whose records are
// built by record(i), and checks the retained heap and every verdict.
func recordFlood(t *testing.T, n int, record func(i int) string, want spf.Result) {
	srv := spftest.NewFuncServer(t, zone(func(name string) string {
		label, _, _ := strings.Cut(name, ".")
		i, err := strconv.Atoi(strings.TrimPrefix(label, "r"))
		if err != nil {
			return ""
		}
		return record(i)
	}))
	c := attackChecker(t, srv.Addr())
	ctx := context.Background()
	base := liveHeap()
	peak := samplePeak()
	wrong := 0
	for i := range n {
		o := c.CheckMailFrom(ctx, spf.Args{IP: attackIP, Sender: fmt.Sprintf("a@r%d.attack.test", i), HELO: "mail.attack.test"})
		if o.Result != want {
			if wrong == 0 {
				t.Errorf("r%d: %s (%s), want %s", i, o.Result, o.Problem, want)
			}
			wrong++
		}
	}
	p := peak.Stop()
	held := max(liveHeap(), base) - base
	t.Logf("%d records of %d bytes: heap retained %s, peak heap in use %s, peak RSS %s, wrong verdicts %d, %d queries",
		n, len(record(0)), mib(held), mib(p), peakRSS(), wrong, srv.Queries())
	if held > attackBudget+heapSlack {
		t.Errorf("heap retained %s after %d records, want at most the cache budget %s + %s", mib(held), n, mib(attackBudget), mib(heapSlack))
	}
	if wrong > 0 {
		t.Errorf("%d wrong verdicts of %d", wrong, n)
	}
	runtime.KeepAlive(c) // its caches are what is measured
}

// TestAttackManyTerms: records of 30,000 "a" terms (60 KB, the most a TXT
// answer holds), unique per random subdomain.
func TestAttackManyTerms(t *testing.T) {
	recordFlood(t, attackScale(100, 1500), func(i int) string {
		return "v=spf1" + strings.Repeat(" a", 30000) + " ip4:10.0.0." + strconv.Itoa(i%256)
	}, spf.Permerror)
}

// TestAttackSpaces: 60 KB of spaces, unique per random subdomain.
func TestAttackSpaces(t *testing.T) {
	recordFlood(t, attackScale(100, 1500), func(i int) string {
		return "v=spf1" + strings.Repeat(" ", 60000+i%1000)
	}, spf.Permerror)
}

// TestAttackExplanation: "-all exp=" whose text is thousands of %{H}, with
// a 2,000-byte HELO. Text longer than any record (the 60 KB of 15,000 %{H})
// is not used at all; text within MaxRecordLen (2,000 %{H}) expands to 4 MB
// unless the explanation stops at its cap while it is being expanded.
func TestAttackExplanation(t *testing.T) {
	for _, macros := range []int{15000, 2000} {
		t.Run(strconv.Itoa(macros), func(t *testing.T) {
			srv := spftest.NewFuncServer(t, zone(func(name string) string {
				switch name {
				case "attack.test":
					return "v=spf1 -all exp=exp.attack.test"
				case "exp.attack.test":
					return strings.Repeat("%{H}", macros)
				}
				return ""
			}))
			c := attackChecker(t, srv.Addr())
			helo := strings.Repeat("a.", 999) + "x" // 1,999 bytes
			ctx := context.Background()
			n := attackScale(5, 50)
			before := allocated()
			peak := samplePeak()
			var o spf.Outcome
			for range n {
				o = c.CheckMailFrom(ctx, spf.Args{IP: attackIP, Sender: "a@attack.test", HELO: helo})
			}
			p := peak.Stop()
			perCheck := (allocated() - before) / uint64(n)
			t.Logf("%d checks: %s allocated per check, peak heap in use %s, peak RSS %s, explanation %d bytes",
				n, mib(perCheck), mib(p), peakRSS(), len(o.Explanation))
			if o.Result != spf.Fail {
				t.Errorf("result %s (%s), want fail", o.Result, o.Problem)
			}
			if len(o.Explanation) > spf.MaxExplanationLen {
				t.Errorf("explanation of %d bytes, want at most %d", len(o.Explanation), spf.MaxExplanationLen)
			}
			if macros*4 <= spf.MaxRecordLen && len(o.Explanation) != spf.MaxExplanationLen {
				t.Errorf("explanation of %d bytes, want it expanded up to the cap of %d", len(o.Explanation), spf.MaxExplanationLen)
			}
			// The answer itself is up to 60 KB and comes over TCP; a few
			// times that is the most one check may allocate.
			if perCheck > 2<<20 {
				t.Errorf("%s allocated per check, want at most 2 MiB", mib(perCheck))
			}
		})
	}
}

// TestAttackDomainExpansion: a domain-spec of 2,000 × %{h} (the most that
// fits a record) with a 2,000-byte HELO would expand to 4 MB; only the 253
// octets RFC 7208 §7.3 keeps are built.
func TestAttackDomainExpansion(t *testing.T) {
	srv := spftest.NewFuncServer(t, zone(func(name string) string {
		if name == "attack.test" {
			return "v=spf1 a:" + strings.Repeat("%{h}", 2000) + ".attack.test -all"
		}
		return ""
	}))
	c := attackChecker(t, srv.Addr())
	helo := strings.Repeat("a.", 999) + "x"
	n := attackScale(5, 50)
	before := allocated()
	var o spf.Outcome
	for range n {
		o = c.CheckMailFrom(context.Background(), spf.Args{IP: attackIP, Sender: "a@attack.test", HELO: helo})
	}
	perCheck := (allocated() - before) / uint64(n)
	t.Logf("%s: %s allocated per check", o.Result, mib(perCheck))
	if o.Result != spf.Fail {
		t.Errorf("result %s (%s), want fail", o.Result, o.Problem)
	}
	if perCheck > 1<<20 {
		t.Errorf("%s allocated per check, want at most 1 MiB", mib(perCheck))
	}
}

// TestAttackWorstCheck: the most one check can be made to hold. Eleven
// records (the domain's and ten nested includes), each near MaxRecordLen and
// MaxRecordTerms and unique, with neither cache to help: the bytes
// allocated by one check bound what it holds at any moment, which is what
// the README's memory figures multiply by the concurrent checks.
func TestAttackWorstCheck(t *testing.T) {
	srv := spftest.NewFuncServer(t, zone(func(name string) string {
		label, _, _ := strings.Cut(name, ".")
		i, err := strconv.Atoi(strings.TrimPrefix(label, "r"))
		if err != nil || i > 10 {
			return ""
		}
		var b strings.Builder
		b.WriteString("v=spf1")
		for j := 0; j < spf.MaxRecordTerms-2 && b.Len() < spf.MaxRecordLen-64; j++ {
			fmt.Fprintf(&b, " ip4:10.%d.%d.%d", i, j/256, j%256)
		}
		if i < 10 {
			fmt.Fprintf(&b, " include:r%d.attack.test", i+1)
		}
		b.WriteString(" -all")
		return b.String()
	}))
	r, err := resolver.New(resolver.Options{Servers: []string{srv.Addr()}, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	c := &spf.Checker{Resolver: r, Records: spf.NewRecordCache(0)}
	ctx := context.Background()
	n := attackScale(5, 50)
	before := allocated()
	var o spf.Outcome
	for range n {
		o = c.CheckMailFrom(ctx, spf.Args{IP: attackIP, Sender: "a@r0.attack.test", HELO: "mail.attack.test"})
	}
	perCheck := (allocated() - before) / uint64(n)
	t.Logf("%s: %d DNS terms, %s allocated per check", o.Result, o.DNSLookups, mib(perCheck))
	if o.Result != spf.Fail || o.DNSLookups != 10 {
		t.Errorf("%s (%s) after %d DNS terms, want fail after 10", o.Result, o.Problem, o.DNSLookups)
	}
	if perCheck > 4<<20 {
		t.Errorf("%s allocated per check, want at most 4 MiB", mib(perCheck))
	}
	// As many at once as Postfix runs smtpd processes by default
	// (default_process_limit = 100): what the heap and RSS reach.
	parallel := attackScale(20, 100)
	liveHeap()
	peak := samplePeak()
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for range parallel {
		wg.Go(func() {
			if o := c.CheckMailFrom(ctx, spf.Args{IP: attackIP, Sender: "a@r0.attack.test", HELO: "mail.attack.test"}); o.Result != spf.Fail {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d such checks at once: peak heap in use %s, peak RSS %s, wrong verdicts %d", parallel, mib(peak.Stop()), peakRSS(), wrong.Load())
	if wrong.Load() != 0 {
		t.Errorf("%d wrong verdicts of %d", wrong.Load(), parallel)
	}
}

// TestAttackDNSCache: unique 60 KB TXT answers for random names fill the
// DNS cache, which must stay within its budget in bytes.
func TestAttackDNSCache(t *testing.T) {
	text := "v=spf1 " + strings.Repeat("x", 60000)
	srv := spftest.NewFuncServer(t, zone(func(name string) string { return text }))
	c := attackClient(t, srv.Addr())
	ctx := context.Background()
	n := attackScale(400, 12000)
	base := liveHeap()
	peak := samplePeak()
	for i := range n {
		txts, err := c.LookupTXT(ctx, fmt.Sprintf("n%d.attack.test", i))
		if err != nil || len(txts) != 1 || len(txts[0]) != len(text) {
			t.Fatalf("n%d: %d answers, %v", i, len(txts), err)
		}
	}
	p := peak.Stop()
	held := max(liveHeap(), base) - base
	t.Logf("%d unique 60 KB answers: heap retained %s, peak heap in use %s, peak RSS %s", n, mib(held), mib(p), peakRSS())
	if held > attackBudget+heapSlack {
		t.Errorf("heap retained %s, want at most the cache budget %s + %s", mib(held), mib(attackBudget), mib(heapSlack))
	}
	runtime.KeepAlive(c)
}

// passing111 is a zone whose record at attack.test passes 192.0.2.99 only
// after 111 queries: ten mx terms of ten names each, the client being the
// last name of the last one (RFC 7208 §4.6.4 allows exactly this much).
func passing111(q dns.Question) (int, []dns.RR, bool) {
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	switch {
	case q.Qtype == dns.TypeTXT && name == "attack.test":
		var terms []string
		for i := range 10 {
			terms = append(terms, fmt.Sprintf("mx:m%d.attack.test", i))
		}
		return dns.RcodeSuccess, []dns.RR{spftest.TXT(q.Name, "v=spf1 "+strings.Join(terms, " ")+" -all", 3600)}, false
	case q.Qtype == dns.TypeMX && strings.HasPrefix(name, "m"):
		var rrs []dns.RR
		for j := range 10 {
			rrs = append(rrs, &dns.MX{
				Hdr:        dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 3600},
				Preference: uint16(j), Mx: fmt.Sprintf("h%d.%s.", j, name),
			})
		}
		return dns.RcodeSuccess, rrs, false
	case q.Qtype == dns.TypeA && strings.HasPrefix(name, "h"):
		ip := "192.0.2.1"
		if name == "h9.m9.attack.test" {
			ip = attackIP.String()
		}
		return dns.RcodeSuccess, []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
			A:   netip.MustParseAddr(ip).AsSlice(),
		}}, false
	}
	return dns.RcodeNameError, nil, false
}

// TestAttackDeadResolver: of two resolvers one drops everything. A record
// that needs 111 queries still passes, and the dead server costs one
// timeout, not one per query.
func TestAttackDeadResolver(t *testing.T) {
	dead := spftest.NewFuncServer(t, func(dns.Question) (int, []dns.RR, bool) { return 0, nil, true })
	live := spftest.NewFuncServer(t, passing111)
	// Fast: a tenth of the daemon's timeouts; full: the daemon's (2 s per
	// question, 20 s per check), as in production.
	timeout := time.Duration(attackScale(200, 2000)) * time.Millisecond
	r, err := resolver.New(resolver.Options{Servers: []string{dead.Addr(), live.Addr()}, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	c := &spf.Checker{Resolver: r, Timeout: 10 * timeout}
	o := c.CheckMailFrom(context.Background(), spf.Args{IP: attackIP, Sender: "a@attack.test", HELO: "mail.attack.test"})
	t.Logf("%s (%s) in %v: %d queries to the dead server, %d to the live one", o.Result, o.Problem, o.Duration.Round(time.Millisecond), dead.Queries(), live.Queries())
	if o.Result != spf.Pass {
		t.Errorf("result %s (%s), want pass", o.Result, o.Problem)
	}
	if n := live.Queries(); n != 111 {
		t.Errorf("%d queries to the live server, want 111", n)
	}
	if n := dead.Queries(); n > 1 {
		t.Errorf("%d queries to the dead server, want at most 1 (one timeout per interval)", n)
	}
}

// TestAttackCNAMEHops: every name an mx points to is a CNAME chain that the
// server hands out one hop at a time. However the resolver behaves, one
// check stays within RFC 7208's 111 queries.
func TestAttackCNAMEHops(t *testing.T) {
	srv := spftest.NewFuncServer(t, func(q dns.Question) (int, []dns.RR, bool) {
		name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
		if q.Qtype != dns.TypeA || !strings.HasPrefix(name, "h") && !strings.HasPrefix(name, "c") {
			return passing111(q)
		}
		// hN.mM.attack.test → c1.hN.mM.attack.test → c2.hN… → … → c10.hN…,
		// which has the address: one hop per answer.
		hop, rest := 0, name
		if label, r, _ := strings.Cut(name, "."); label[0] == 'c' {
			hop, _ = strconv.Atoi(label[1:])
			rest = r
		}
		if hop >= 10 {
			return dns.RcodeSuccess, []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
				A:   netip.MustParseAddr("192.0.2.1").AsSlice(),
			}}, false
		}
		return dns.RcodeSuccess, []dns.RR{spftest.CNAME(q.Name, fmt.Sprintf("c%d.%s", hop+1, rest), 3600)}, false
	})
	c := attackChecker(t, srv.Addr())
	o := c.CheckMailFrom(context.Background(), spf.Args{IP: netip.MustParseAddr("192.0.2.200"), Sender: "a@attack.test", HELO: "mail.attack.test"})
	t.Logf("%s (%s): %d queries", o.Result, o.Problem, srv.Queries())
	if o.Result == spf.Pass {
		t.Errorf("result pass, want fail or temperror")
	}
	if n := srv.Queries(); n > spf.MaxQueries {
		t.Errorf("%d queries for one check, want at most %d (RFC 7208 §4.6.4)", n, spf.MaxQueries)
	}
}
