package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// world is the DNS data most tests serve.
func world() *spftest.Resolver {
	return &spftest.Resolver{
		TXT: map[string][]string{
			"example.com":      {"v=spf1 ip4:192.0.2.0/24 -all"},
			"two.example.com":  {"first", "second"},
			"long.example.com": {"v=spf1 " + strings.Repeat("ip4:192.0.2.1 ", 40) + "-all"},
			"a.example.com":    {"a"},
			"b.example.com":    {"b"},
			"c.example.com":    {"c"},
		},
		A: map[string][]netip.Addr{
			"example.com":      {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
			"mail.example.com": {netip.MustParseAddr("192.0.2.10")},
		},
		AAAA: map[string][]netip.Addr{
			"example.com": {netip.MustParseAddr("2001:db8::1")},
		},
		MX: map[string][]string{
			"example.com": {"Mail.Example.com", "mx2.example.com."},
		},
		PTR: map[string][]string{
			"192.0.2.10":  {"mail.example.com"},
			"2001:db8::1": {"v6.example.com"},
		},
		CNAME: map[string]string{
			"alias.example.com":    "alias2.example.com",
			"alias2.example.com":   "example.com",
			"dangling.example.com": "nowhere.example.com",
			"loop1.example.com":    "loop2.example.com",
			"loop2.example.com":    "loop1.example.com",
		},
		Fail: map[string]error{
			"TXT servfail.example.com": spftest.ErrServFail,
			"* refused.example.com":    spftest.ErrRefused,
			"* timeout.example.com":    spftest.ErrTimeout,
		},
	}
}

// observer records what a Client reports.
type observer struct {
	mu      sync.Mutex
	queries []string // "TYPE outcome"
	cache   map[string]int
}

func (o *observer) ObserveQuery(qtype, outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queries = append(o.queries, qtype+" "+outcome)
}

func (o *observer) ObserveCache(event string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cache == nil {
		o.cache = map[string]int{}
	}
	o.cache[event]++
}

func (o *observer) snapshot() ([]string, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.queries), maps(o.cache)
}

func maps(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// clock is a settable time for cache expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClient(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.Attempts == 0 {
		opts.Attempts = 1
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestLookupEveryType(t *testing.T) {
	s := spftest.NewServer(t, world())
	c := newClient(t, Options{Servers: []string{s.Addr()}})
	long := world().TXT["long.example.com"][0]

	for _, tc := range []struct {
		name string
		want []string
	}{
		{"example.com", []string{"v=spf1 ip4:192.0.2.0/24 -all"}},
		{"EXAMPLE.COM.", []string{"v=spf1 ip4:192.0.2.0/24 -all"}},
		{"two.example.com", []string{"first", "second"}},
		// Over 255 bytes: several character-strings joined (RFC 7208 §3.3),
		// and over 512 bytes in all, so EDNS0 is needed too.
		{"long.example.com", []string{long}},
	} {
		got, err := c.LookupTXT(ctx(t), tc.name)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("LookupTXT(%s) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if len(long) <= 512 {
		t.Fatalf("long record is only %d bytes", len(long))
	}
	for _, q := range s.Log() {
		if q.Net != "udp" {
			t.Errorf("%+v: want every query over UDP (EDNS0 makes room)", q)
		}
	}

	addrs, err := c.LookupA(ctx(t), "example.com")
	if want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}; err != nil || !slices.Equal(addrs, want) {
		t.Errorf("LookupA = %v, %v; want %v", addrs, err, want)
	}
	if err == nil && !addrs[0].Is4() {
		t.Errorf("LookupA gave %v, want a 4-byte address", addrs[0])
	}
	addrs, err = c.LookupAAAA(ctx(t), "example.com")
	if want := []netip.Addr{netip.MustParseAddr("2001:db8::1")}; err != nil || !slices.Equal(addrs, want) {
		t.Errorf("LookupAAAA = %v, %v; want %v", addrs, err, want)
	}
	names, err := c.LookupMX(ctx(t), "example.com")
	if want := []string{"mail.example.com", "mx2.example.com"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("LookupMX = %q, %v; want %q", names, err, want)
	}
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"192.0.2.10", []string{"mail.example.com"}},
		{"::ffff:192.0.2.10", []string{"mail.example.com"}}, // IPv4-mapped: asked as IPv4
		{"2001:db8::1", []string{"v6.example.com"}},
	} {
		names, err := c.LookupPTR(ctx(t), netip.MustParseAddr(tc.addr))
		if err != nil || !slices.Equal(names, tc.want) {
			t.Errorf("LookupPTR(%s) = %q, %v; want %q", tc.addr, names, err, tc.want)
		}
	}
	if !slices.Contains(s.Queries(), "PTR 10.2.0.192.in-addr.arpa") ||
		!slices.Contains(s.Queries(), "PTR 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa") {
		t.Errorf("queries %q, want the reverse names", s.Queries())
	}
}

func TestNXDomainAndNoData(t *testing.T) {
	s := spftest.NewServer(t, world())
	c := newClient(t, Options{Servers: []string{s.Addr()}, CacheSize: -1})

	_, err := c.LookupTXT(ctx(t), "nowhere.example.com")
	if !errors.Is(err, spf.ErrNotFound) || !strings.HasPrefix(err.Error(), "resolver: ") {
		t.Errorf("NXDOMAIN: err = %v, want spf.ErrNotFound wrapped with a resolver: prefix", err)
	}
	txt, err := c.LookupTXT(ctx(t), "mail.example.com") // exists, has no TXT
	if err != nil || len(txt) != 0 {
		t.Errorf("no data: %q, %v; want nothing and no error", txt, err)
	}
	addrs, err := c.LookupAAAA(ctx(t), "mail.example.com")
	if err != nil || len(addrs) != 0 {
		t.Errorf("no data AAAA: %v, %v; want nothing and no error", addrs, err)
	}
	// A CNAME to a name that does not exist is NXDOMAIN (RFC 6604).
	if _, err := c.LookupA(ctx(t), "dangling.example.com"); !errors.Is(err, spf.ErrNotFound) {
		t.Errorf("dangling CNAME: err = %v, want spf.ErrNotFound", err)
	}
	// A name that cannot exist is not sent at all.
	n := s.QueryCount()
	bad := strings.Repeat("x", 64) + ".example.com"
	if _, err := c.LookupTXT(ctx(t), bad); !errors.Is(err, spf.ErrNotFound) || !errors.Is(err, ErrBadName) {
		t.Errorf("64-byte label: err = %v, want ErrBadName and spf.ErrNotFound", err)
	}
	if _, err := c.LookupA(ctx(t), "a..example.com"); !errors.Is(err, ErrBadName) {
		t.Errorf("empty label: err = %v, want ErrBadName", err)
	}
	if s.QueryCount() != n {
		t.Errorf("bad names reached the server: %q", s.Queries()[n:])
	}
}

func TestCNAMEChains(t *testing.T) {
	s := spftest.NewServer(t, world())
	c := newClient(t, Options{Servers: []string{s.Addr()}, CacheSize: -1})

	addrs, err := c.LookupA(ctx(t), "alias.example.com")
	if want := world().A["example.com"]; err != nil || !slices.Equal(addrs, want) {
		t.Errorf("chased chain: %v, %v; want %v", addrs, err, want)
	}
	if s.QueryCount() != 1 {
		t.Errorf("chased chain took queries %q, want one", s.Queries())
	}

	// A server that stops at each CNAME: the client asks for the targets.
	s.ChaseCNAME(false)
	s.ResetLog()
	addrs, err = c.LookupA(ctx(t), "alias.example.com")
	if want := world().A["example.com"]; err != nil || !slices.Equal(addrs, want) {
		t.Errorf("unchased chain: %v, %v; want %v", addrs, err, want)
	}
	if want := []string{"A alias.example.com", "A alias2.example.com", "A example.com"}; !slices.Equal(s.Queries(), want) {
		t.Errorf("unchased chain: queries %q, want %q", s.Queries(), want)
	}

	// Loops end in an error, chased or not.
	for _, chase := range []bool{true, false} {
		s.ChaseCNAME(chase)
		if _, err := c.LookupTXT(ctx(t), "loop1.example.com"); !errors.Is(err, ErrCNAMELoop) {
			t.Errorf("loop (chase %v): err = %v, want ErrCNAMELoop", chase, err)
		}
	}
}

// Within a check, every question is taken from the check's budget, the
// questions of a chain followed across queries included; answers from the
// cache are free.
func TestQueryBudget(t *testing.T) {
	s := spftest.NewServer(t, world())
	s.ChaseCNAME(false)
	c := newClient(t, Options{Servers: []string{s.Addr()}})
	bctx, _ := spf.WithQueryBudget(ctx(t), 4)
	if _, err := c.LookupA(bctx, "alias.example.com"); err != nil { // 3 questions
		t.Fatal(err)
	}
	if _, err := c.LookupA(bctx, "alias.example.com"); err != nil { // cached
		t.Fatal(err)
	}
	_, err := c.LookupA(bctx, "mail.example.com") // the 4th
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LookupTXT(bctx, "example.com"); !errors.Is(err, spf.ErrQueryBudget) {
		t.Errorf("5th question: err = %v, want ErrQueryBudget", err)
	}
	if n := s.QueryCount(); n != 4 {
		t.Errorf("%d questions sent, want 4", n)
	}
	// A chain longer than what is left stops where the budget does.
	s.ResetLog()
	c = newClient(t, Options{Servers: []string{s.Addr()}})
	bctx, _ = spf.WithQueryBudget(ctx(t), 2)
	if _, err := c.LookupA(bctx, "alias.example.com"); !errors.Is(err, spf.ErrQueryBudget) {
		t.Errorf("chain of 3 on a budget of 2: err = %v, want ErrQueryBudget", err)
	}
	if n := s.QueryCount(); n != 2 {
		t.Errorf("%d questions sent, want 2", n)
	}
}

func TestCNAMEChainTooLong(t *testing.T) {
	w := &spftest.Resolver{CNAME: map[string]string{}, TXT: map[string][]string{"end.example": {"end"}}}
	for i := range MaxCNAMEChain + 1 {
		next := "end.example"
		if i < MaxCNAMEChain {
			next = "c" + string(rune('a'+i+1)) + ".example"
		}
		w.CNAME["c"+string(rune('a'+i))+".example"] = next
	}
	s := spftest.NewServer(t, w)
	c := newClient(t, Options{Servers: []string{s.Addr()}})
	// ca → cb → … → ck → end: 11 CNAMEs.
	if _, err := c.LookupTXT(ctx(t), "ca.example"); !errors.Is(err, ErrCNAMELoop) {
		t.Errorf("11 CNAMEs: err = %v, want ErrCNAMELoop", err)
	}
	// cb → … → end: 10 CNAMEs, the most allowed.
	if txt, err := c.LookupTXT(ctx(t), "cb.example"); err != nil || !slices.Equal(txt, []string{"end"}) {
		t.Errorf("10 CNAMEs: %q, %v; want the record", txt, err)
	}
}

func TestFailuresAreErrors(t *testing.T) {
	w := world()
	s := spftest.NewServer(t, w)
	s.Malformed("malformed.example.com")
	obs := &observer{}
	c := newClient(t, Options{Servers: []string{s.Addr()}, Timeout: 200 * time.Millisecond, Observer: obs})

	for _, tc := range []struct {
		name    string
		want    error
		outcome string
	}{
		{"servfail.example.com", ErrServFail, "servfail"},
		{"refused.example.com", ErrRefused, "error"},
		{"timeout.example.com", ErrTimeout, "timeout"},
		{"malformed.example.com", ErrMalformed, "error"},
	} {
		obs.mu.Lock()
		obs.queries = nil
		obs.mu.Unlock()
		_, err := c.LookupTXT(ctx(t), tc.name)
		if !errors.Is(err, tc.want) || errors.Is(err, spf.ErrNotFound) || !strings.HasPrefix(err.Error(), "resolver: ") {
			t.Errorf("%s: err = %v, want %v and not ErrNotFound", tc.name, err, tc.want)
		}
		if q, _ := obs.snapshot(); !slices.Equal(q, []string{"TXT " + tc.outcome}) {
			t.Errorf("%s: observed %q, want [TXT %s]", tc.name, q, tc.outcome)
		}
	}
	// Failures are not cached: the server is asked again.
	s.ResetLog()
	c.LookupTXT(ctx(t), "servfail.example.com")
	c.LookupTXT(ctx(t), "servfail.example.com")
	if s.QueryCount() != 2 {
		t.Errorf("SERVFAIL twice: %d queries, want 2 (not cached)", s.QueryCount())
	}
	if c.CacheLen() != 0 {
		t.Errorf("CacheLen = %d after failures only, want 0", c.CacheLen())
	}
}

func TestObserverOutcomes(t *testing.T) {
	s := spftest.NewServer(t, world())
	obs := &observer{}
	c := newClient(t, Options{Servers: []string{s.Addr()}, Observer: obs})
	c.LookupTXT(ctx(t), "example.com")                     // ok, miss
	c.LookupTXT(ctx(t), "example.com")                     // hit
	c.LookupA(ctx(t), "nowhere.example.com")               // nxdomain
	c.LookupMX(ctx(t), "mail.example.com")                 // nodata
	c.LookupAAAA(ctx(t), "example.com")                    // ok
	c.LookupPTR(ctx(t), netip.MustParseAddr("192.0.2.10")) // ok
	q, cache := obs.snapshot()
	want := []string{"TXT ok", "A nxdomain", "MX nodata", "AAAA ok", "PTR ok"}
	if !slices.Equal(q, want) {
		t.Errorf("queries observed %q, want %q", q, want)
	}
	if cache["hit"] != 1 || cache["miss"] != 5 || cache["evict"] != 0 {
		t.Errorf("cache events %v, want 1 hit, 5 misses", cache)
	}
}

func TestTimeoutBoundedByContext(t *testing.T) {
	s := spftest.NewServer(t, world())
	// A per-query timeout far beyond the caller's deadline: the deadline wins.
	c := newClient(t, Options{Servers: []string{s.Addr()}, Timeout: time.Minute})
	cx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.LookupTXT(cx, "timeout.example.com")
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrTimeout and context.DeadlineExceeded", err)
	}
	// Not a speed test: only that the minute-long query timeout did not apply.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("returned after %v, past the context deadline", d)
	}

	// The per-query timeout alone ends a lookup too.
	c = newClient(t, Options{Servers: []string{s.Addr()}, Timeout: 100 * time.Millisecond, Attempts: 2})
	s.ResetLog()
	start = time.Now()
	_, err = c.LookupTXT(ctx(t), "timeout.example.com")
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %v, far past 2 attempts of 100ms", d)
	}
	if n := s.QueryCount(); n != 2 {
		t.Errorf("%d queries for 2 attempts over 1 server, want 2", n)
	}

	// A context already done sends nothing.
	s.ResetLog()
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.LookupTXT(done, "example.com"); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTimeout) {
		t.Errorf("cancelled context: err = %v", err)
	}
	if s.QueryCount() != 0 {
		t.Errorf("cancelled context sent %q", s.Queries())
	}
}

func TestTruncationRetriesOverTCP(t *testing.T) {
	s := spftest.NewServer(t, world())
	s.Truncate("example.com")
	obs := &observer{}
	c := newClient(t, Options{Servers: []string{s.Addr()}, Observer: obs})
	txt, err := c.LookupTXT(ctx(t), "example.com")
	if err != nil || !slices.Equal(txt, world().TXT["example.com"]) {
		t.Fatalf("LookupTXT = %q, %v", txt, err)
	}
	want := []spftest.Query{{Type: "TXT", Name: "example.com", Net: "udp"}, {Type: "TXT", Name: "example.com", Net: "tcp"}}
	if got := s.Log(); !slices.Equal(got, want) {
		t.Errorf("server saw %+v, want %+v", got, want)
	}
	if q, _ := obs.snapshot(); !slices.Equal(q, []string{"TXT ok"}) {
		t.Errorf("observed %q, want one query", q)
	}
}

func TestFailover(t *testing.T) {
	failing := world()
	failing.Fail = map[string]error{"* b.example.com": spftest.ErrServFail}
	s1 := spftest.NewServer(t, failing)
	s2 := spftest.NewServer(t, world())
	obs := &observer{}
	c := newClient(t, Options{Servers: []string{s1.Addr(), s2.Addr()}, Timeout: 200 * time.Millisecond, CacheSize: -1, Observer: obs})
	if got := addrs(c.Health()); !slices.Equal(got, []string{s1.Addr(), s2.Addr()}) {
		t.Fatalf("Health() lists %q", got)
	}
	// Lookups start with each server in turn: the first with s1, which
	// fails (b), so s2 answers; the second goes straight to s2. A SERVFAIL
	// is about the name, not the server: the third starts with s1 again.
	for _, name := range []string{"b.example.com", "b.example.com", "c.example.com"} {
		txt, err := c.LookupTXT(ctx(t), name)
		if err != nil || len(txt) != 1 {
			t.Errorf("LookupTXT(%s) = %q, %v; want an answer", name, txt, err)
		}
	}
	if want := []string{"TXT b.example.com", "TXT c.example.com"}; !slices.Equal(s1.Queries(), want) {
		t.Errorf("first server saw %q, want %q", s1.Queries(), want)
	}
	if want := []string{"TXT b.example.com", "TXT b.example.com"}; !slices.Equal(s2.Queries(), want) {
		t.Errorf("second server saw %q, want %q", s2.Queries(), want)
	}
	want := []string{"TXT servfail", "TXT ok", "TXT ok", "TXT ok"}
	if q, _ := obs.snapshot(); !slices.Equal(q, want) {
		t.Errorf("observed %q, want %q", q, want)
	}
	for _, h := range c.Health() {
		if !h.Up || h.Failures != 0 {
			t.Errorf("%+v after SERVFAIL only, want up", h)
		}
	}
}

func addrs(hs []ServerHealth) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Addr)
	}
	return out
}

// A server that times out is left out for AvoidFor, then one question
// probes it: one timeout per interval, not one per question.
func TestAvoidDeadServer(t *testing.T) {
	var alive atomic.Bool
	dead := spftest.NewFuncServer(t, func(q dns.Question) (int, []dns.RR, bool) {
		if !alive.Load() {
			return 0, nil, true
		}
		return dns.RcodeSuccess, []dns.RR{spftest.TXT(q.Name, "from the revived server", 60)}, false
	})
	live := spftest.NewServer(t, world())
	clk := newClock()
	c := newClient(t, Options{Servers: []string{dead.Addr(), live.Addr()}, Timeout: 200 * time.Millisecond,
		CacheSize: -1, AvoidFor: 30 * time.Second, Now: clk.Now})
	lookups := func(n int) {
		t.Helper()
		for range n {
			if txt, err := c.LookupTXT(ctx(t), "example.com"); err != nil || len(txt) != 1 {
				t.Fatalf("LookupTXT = %q, %v", txt, err)
			}
		}
	}
	lookups(6)
	if n := dead.Queries(); n != 1 {
		t.Errorf("6 lookups asked the dead server %d times, want 1", n)
	}
	if h := c.Health()[0]; h.Up || h.Failures != 1 {
		t.Errorf("dead server %+v, want down after 1 failure", h)
	}
	clk.Advance(29 * time.Second)
	lookups(4)
	if n := dead.Queries(); n != 1 {
		t.Errorf("within the interval: %d questions to the dead server, want still 1", n)
	}
	// Past the interval one question probes it, and it is avoided again.
	clk.Advance(2 * time.Second)
	lookups(6)
	if n := dead.Queries(); n != 2 {
		t.Errorf("after the interval: %d questions to the dead server, want 2", n)
	}
	// Once it answers a probe, it is back in the rotation.
	alive.Store(true)
	clk.Advance(31 * time.Second)
	lookups(4)
	if h := c.Health()[0]; !h.Up || h.Failures != 2 {
		t.Errorf("revived server %+v, want up after 2 failures", h)
	}
	if n := dead.Queries(); n != 4 {
		t.Errorf("revived server asked %d times in all, want 4 (a probe and every other lookup)", n)
	}
}

func TestFailoverOnNetworkError(t *testing.T) {
	// A UDP port with nothing behind it: reserve one, then free it.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()
	s := spftest.NewServer(t, world())
	c := newClient(t, Options{Servers: []string{closed, s.Addr()}, Timeout: 200 * time.Millisecond})
	for _, name := range []string{"a.example.com", "b.example.com"} {
		if _, err := c.LookupTXT(ctx(t), name); err != nil {
			t.Errorf("LookupTXT(%s): %v", name, err)
		}
	}
	c = newClient(t, Options{Servers: []string{closed}, Timeout: 200 * time.Millisecond})
	if _, err := c.LookupTXT(ctx(t), "a.example.com"); err == nil || errors.Is(err, spf.ErrNotFound) {
		t.Errorf("only a closed port: err = %v, want a failure", err)
	}
}

func TestCacheHitAndExpiry(t *testing.T) {
	s := spftest.NewServer(t, world())
	s.SetTTL(1)
	clk := newClock()
	c := newClient(t, Options{Servers: []string{s.Addr()}, Now: clk.Now})

	lookup := func(want int) {
		t.Helper()
		txt, err := c.LookupTXT(ctx(t), "example.com")
		if err != nil || len(txt) != 1 {
			t.Fatalf("LookupTXT = %q, %v", txt, err)
		}
		if n := s.QueryCount(); n != want {
			t.Fatalf("server saw %d queries, want %d", n, want)
		}
	}
	lookup(1)
	lookup(1) // cached
	clk.Advance(999 * time.Millisecond)
	lookup(1) // still within the 1 s TTL
	clk.Advance(time.Millisecond)
	lookup(2) // expired: asked again
	if c.CacheLen() != 1 {
		t.Errorf("CacheLen = %d, want 1", c.CacheLen())
	}
}

func TestTTLClamps(t *testing.T) {
	s := spftest.NewServer(t, world())
	clk := newClock()
	c := newClient(t, Options{Servers: []string{s.Addr()}, Now: clk.Now, MaxTTL: 10 * time.Second, MinTTL: 5 * time.Second})

	s.SetTTL(300)
	c.LookupTXT(ctx(t), "a.example.com")
	clk.Advance(10 * time.Second) // MaxTTL cut the 300 s
	c.LookupTXT(ctx(t), "a.example.com")
	if n := s.QueryCount(); n != 2 {
		t.Errorf("TTL 300 with MaxTTL 10s: %d queries after 10s, want 2", n)
	}

	s.SetTTL(0)
	s.ResetLog()
	c.LookupTXT(ctx(t), "b.example.com")
	clk.Advance(4 * time.Second) // MinTTL keeps the TTL-0 answer
	c.LookupTXT(ctx(t), "b.example.com")
	if n := s.QueryCount(); n != 1 {
		t.Errorf("TTL 0 with MinTTL 5s: %d queries, want 1", n)
	}

	// Without a MinTTL a TTL-0 answer is not kept at all.
	c = newClient(t, Options{Servers: []string{s.Addr()}, Now: clk.Now})
	s.ResetLog()
	c.LookupTXT(ctx(t), "c.example.com")
	c.LookupTXT(ctx(t), "c.example.com")
	if n := s.QueryCount(); n != 2 || c.CacheLen() != 0 {
		t.Errorf("TTL 0: %d queries, CacheLen %d; want 2 and 0", n, c.CacheLen())
	}
}

func TestNegativeCaching(t *testing.T) {
	s := spftest.NewServer(t, world())
	s.SetTTL(3600)
	s.SetNegativeTTL(60)
	clk := newClock()
	c := newClient(t, Options{Servers: []string{s.Addr()}, Now: clk.Now})

	for range 3 {
		if _, err := c.LookupTXT(ctx(t), "nowhere.example.com"); !errors.Is(err, spf.ErrNotFound) {
			t.Fatalf("NXDOMAIN: err = %v", err)
		}
		if txt, err := c.LookupTXT(ctx(t), "mail.example.com"); err != nil || len(txt) != 0 {
			t.Fatalf("no data: %q, %v", txt, err)
		}
	}
	if n := s.QueryCount(); n != 2 {
		t.Errorf("3 rounds of NXDOMAIN and no data: %d queries, want 2", n)
	}
	clk.Advance(60 * time.Second) // the SOA's negative TTL, not the 3600 s of data
	c.LookupTXT(ctx(t), "nowhere.example.com")
	c.LookupTXT(ctx(t), "mail.example.com")
	if n := s.QueryCount(); n != 4 {
		t.Errorf("after the negative TTL: %d queries, want 4", n)
	}
}

func TestCoalescing(t *testing.T) {
	s := spftest.NewServer(t, world())
	// With a cache, a lookup starting after the query ended is a hit; without
	// one it would ask again, so the answer is held back long enough for
	// every goroutine to have started.
	for _, tc := range []struct {
		size  int
		delay time.Duration
	}{{0, 200 * time.Millisecond}, {-1, time.Second}} {
		size := tc.size
		s.SetDelay(tc.delay)
		s.ResetLog()
		c := newClient(t, Options{Servers: []string{s.Addr()}, CacheSize: size, Timeout: 10 * time.Second})
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				txt, err := c.LookupTXT(ctx(t), "example.com")
				if err == nil && len(txt) != 1 {
					err = errors.New("wrong answer")
				}
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if got := s.QueryCount(); got != 1 {
			t.Errorf("cache size %d: %d concurrent lookups made %d queries, want 1", size, n, got)
		}
	}
}

func TestCacheBounded(t *testing.T) {
	s := spftest.NewServer(t, world())
	obs := &observer{}
	c := newClient(t, Options{Servers: []string{s.Addr()}, CacheSize: 2, Observer: obs})
	for _, name := range []string{"a.example.com", "b.example.com", "a.example.com", "c.example.com"} {
		if _, err := c.LookupTXT(ctx(t), name); err != nil {
			t.Fatal(err)
		}
	}
	// a was used after b, so b is the one evicted for c.
	if c.CacheLen() != 2 {
		t.Errorf("CacheLen %d, want 2", c.CacheLen())
	}
	if _, cache := obs.snapshot(); cache["evict"] != 1 {
		t.Errorf("observed cache events %v, want one evict", cache)
	}
	s.ResetLog()
	c.LookupTXT(ctx(t), "a.example.com")
	c.LookupTXT(ctx(t), "c.example.com")
	if s.QueryCount() != 0 {
		t.Errorf("a and c should be cached, server saw %q", s.Queries())
	}
	c.LookupTXT(ctx(t), "b.example.com")
	if !slices.Equal(s.Queries(), []string{"TXT b.example.com"}) {
		t.Errorf("b should have been evicted, server saw %q", s.Queries())
	}
}

func TestCacheDisabled(t *testing.T) {
	s := spftest.NewServer(t, world())
	c := newClient(t, Options{Servers: []string{s.Addr()}, CacheSize: -1})
	c.LookupTXT(ctx(t), "example.com")
	c.LookupTXT(ctx(t), "example.com")
	if s.QueryCount() != 2 || c.CacheLen() != 0 {
		t.Errorf("no cache: %d queries, CacheLen %d; want 2 and 0", s.QueryCount(), c.CacheLen())
	}
}

// handlerServer runs a DNS server on loopback UDP with a custom handler.
func handlerServer(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestAnswerMatching(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	addr := handlerServer(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		switch strings.ToLower(req.Question[0].Name) {
		case "mixed.example.":
			m.Answer = []dns.RR{
				rr(`MIXED.Example. 60 IN TXT "upper-case owner"`),
				rr(`other.example. 60 IN TXT "another owner"`),
				rr(`mixed.example. 60 IN A 192.0.2.1`),
				rr(`mixed.example. 60 CH TXT "another class"`),
			}
		case "wrongq.example.":
			m.Question[0].Name = "other.example."
			m.Answer = []dns.RR{rr(`other.example. 60 IN TXT "x"`)}
		case "formerr.example.":
			m.Rcode = dns.RcodeFormatError
		case "noedns.example.":
			if req.IsEdns0() != nil {
				m.Rcode = dns.RcodeFormatError
				break
			}
			m.Answer = []dns.RR{rr(`noedns.example. 60 IN TXT "plain DNS"`)}
		case "nullmx.example.":
			m.Answer = []dns.RR{rr(`nullmx.example. 60 IN MX 0 .`)}
		case "nosoa.example.":
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	clk := newClock()
	c := newClient(t, Options{Servers: []string{addr}, Now: clk.Now})

	txt, err := c.LookupTXT(ctx(t), "mixed.example")
	if err != nil || !slices.Equal(txt, []string{"upper-case owner"}) {
		t.Errorf("mixed: %q, %v; want only the record for the question", txt, err)
	}
	if _, err := c.LookupTXT(ctx(t), "wrongq.example"); !errors.Is(err, ErrMalformed) {
		t.Errorf("answer to another question: err = %v, want ErrMalformed", err)
	}
	if _, err := c.LookupTXT(ctx(t), "formerr.example"); !errors.Is(err, ErrRcode) || !strings.Contains(err.Error(), "FORMERR") {
		t.Errorf("FORMERR: err = %v, want ErrRcode naming it", err)
	}
	if txt, err := c.LookupTXT(ctx(t), "noedns.example"); err != nil || !slices.Equal(txt, []string{"plain DNS"}) {
		t.Errorf("server without EDNS0: %q, %v; want the answer to the plain question", txt, err)
	}
	if mx, err := c.LookupMX(ctx(t), "nullmx.example"); err != nil || !slices.Equal(mx, []string{"."}) {
		t.Errorf("null MX: %q, %v; want [.]", mx, err)
	}
	// NXDOMAIN without an SOA is not cached (RFC 2308 §5).
	c.LookupTXT(ctx(t), "nosoa.example")
	if _, err := c.LookupTXT(ctx(t), "nosoa.example"); !errors.Is(err, spf.ErrNotFound) {
		t.Errorf("NXDOMAIN without SOA: err = %v", err)
	}
	if c.CacheLen() != 3 { // mixed, noedns and nullmx only
		t.Errorf("CacheLen = %d, want 3", c.CacheLen())
	}
}

func TestNewOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string // in the error
	}{
		{Options{Servers: []string{"127.0.0.1:0"}}, `"127.0.0.1:0"`},
		{Options{Servers: []string{"127.0.0.1:domain"}}, `"domain"`},
		{Options{Servers: []string{"dns.example"}}, `"dns.example"`},
		{Options{Servers: []string{":53"}}, `":53"`},
		{Options{Servers: []string{"127.0.0.1"}, Timeout: -time.Second}, "-1s"},
		{Options{Servers: []string{"127.0.0.1"}, Attempts: -1}, "-1"},
		{Options{Servers: []string{"127.0.0.1"}, MinTTL: -time.Second}, "-1s"},
		{Options{Servers: []string{"127.0.0.1"}, MaxTTL: -time.Second}, "-1s"},
		{Options{Servers: []string{"127.0.0.1"}, MinTTL: time.Hour, MaxTTL: time.Minute}, "1h0m0s"},
		{Options{ResolvConf: filepath.Join(t.TempDir(), "missing")}, "missing"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "resolver: ") {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.opts, err, tc.want)
		}
	}

	c, err := New(Options{Servers: []string{"127.0.0.1", "::1", "127.0.0.2:5353", "localhost:53"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:53", "[::1]:53", "127.0.0.2:5353", "localhost:53"}; !slices.Equal(addrs(c.Health()), want) {
		t.Errorf("servers %q, want %q", addrs(c.Health()), want)
	}

	conf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(conf, []byte("# test\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n"), 0o644)
	c, err = New(Options{ResolvConf: conf})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.53:53", "[::1]:53"}; !slices.Equal(addrs(c.Health()), want) {
		t.Errorf("from resolv.conf: servers %q, want %q", addrs(c.Health()), want)
	}
	empty := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(empty, []byte("search example\n"), 0o644)
	if _, err := New(Options{ResolvConf: empty}); err == nil || !strings.Contains(err.Error(), "no nameserver") {
		t.Errorf("resolv.conf without nameserver: err = %v", err)
	}
}
