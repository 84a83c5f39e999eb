// Package resolver is spfmilter's DNS client: an spf.Resolver that asks
// recursive name servers over UDP with EDNS0 (retrying over TCP when an
// answer is truncated), rotates over several servers and fails over on
// timeouts and server failures, follows CNAME chains, and keeps a cache of
// parsed answers bounded in entries and in bytes.
//
// A server that times out (or cannot be reached) is avoided for AvoidFor:
// the others are asked instead, and once the interval is over a single
// question probes it again. One dead server among several so costs one
// timeout per interval, not one per question. Health reports each server's
// state for metrics.
//
// Within an SPF check (a context carrying an spf.QueryBudget) every
// question sent to a server, a CNAME chain followed across queries
// included, is taken from the check's budget, so RFC 7208's bound on the
// queries of one check holds whatever the servers answer.
//
// The cache honours record TTLs (the smallest in the answer, CNAMEs
// included), caches NXDOMAIN and "no data" for the SOA's negative TTL
// (RFC 2308 §5), and never caches failures (SERVFAIL, REFUSED, timeouts,
// malformed answers): the next lookup asks again. Identical concurrent
// lookups share one upstream query.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"

	"github.com/spfmilter/spfmilter/internal/dnsname"
	"github.com/spfmilter/spfmilter/spf"
)

// Defaults for the zero Options fields.
const (
	DefaultResolvConf = "/etc/resolv.conf"
	DefaultTimeout    = 2 * time.Second // per query, per server
	DefaultAttempts   = 2               // rounds over the server list
	DefaultCacheSize  = 10000           // entries
	DefaultCacheBytes = 32 << 20        // bytes
	DefaultMaxTTL     = 24 * time.Hour
	DefaultAvoidFor   = 30 * time.Second
)

// MaxCNAMEChain bounds the CNAMEs followed for one lookup, within answers and
// across queries.
const MaxCNAMEChain = 10

// udpSize is the EDNS0 buffer size advertised: the DNS flag day 2020 value,
// which avoids IP fragmentation on common paths.
const udpSize = 1232

// Options configure a Client. The zero value asks the servers of
// /etc/resolv.conf with the defaults above.
type Options struct {
	// Servers are the recursive servers to ask, "host:port" (a bare IP
	// address means port 53). Empty: the nameserver lines of ResolvConf.
	Servers []string
	// ResolvConf is read when Servers is empty; "" means DefaultResolvConf.
	ResolvConf string
	// Timeout bounds one query to one server (a TCP retry after truncation
	// gets as long again); 0 means DefaultTimeout.
	Timeout time.Duration
	// Attempts is how many times the server list is gone through before a
	// lookup fails; 0 means DefaultAttempts.
	Attempts int
	// CacheSize is the most answers kept; 0 means DefaultCacheSize and a
	// negative value disables the cache (concurrent lookups are still
	// coalesced).
	CacheSize int
	// CacheBytes bounds the memory the cached answers hold (names, records
	// and bookkeeping); 0 means DefaultCacheBytes. An answer larger than
	// the whole budget is not cached.
	CacheBytes int64
	// AvoidFor is how long a server that timed out is left out of the
	// rotation before one question tries it again; 0 means
	// DefaultAvoidFor. While every server is avoided, all are asked.
	AvoidFor time.Duration
	// MinTTL and MaxTTL clamp the time an answer stays cached, positive and
	// negative alike; 0 for MaxTTL means DefaultMaxTTL. An answer whose
	// clamped TTL is 0 is not cached.
	MinTTL, MaxTTL time.Duration
	// Observer, if set, is told about queries and cache events.
	Observer Observer
	// Now is the clock for cache expiry and server avoidance; nil means
	// time.Now. For tests.
	Now func() time.Time
}

// Client is a caching DNS client. It is safe for concurrent use.
type Client struct {
	servers  []*server
	timeout  time.Duration
	avoidFor time.Duration
	attempts int
	minTTL   time.Duration
	maxTTL   time.Duration
	obs      Observer
	now      func() time.Time

	next   atomic.Uint32 // round-robin start over servers
	cache  *cache        // nil when disabled
	flight singleflight.Group
}

var _ spf.Resolver = (*Client)(nil)

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	c := &Client{
		timeout:  opts.Timeout,
		attempts: opts.Attempts,
		minTTL:   opts.MinTTL,
		maxTTL:   opts.MaxTTL,
		obs:      opts.Observer,
		now:      opts.Now,
		avoidFor: opts.AvoidFor,
	}
	switch {
	case opts.Timeout < 0:
		return nil, fmt.Errorf("resolver: timeout %v: must not be negative", opts.Timeout)
	case opts.Timeout == 0:
		c.timeout = DefaultTimeout
	}
	switch {
	case opts.Attempts < 0:
		return nil, fmt.Errorf("resolver: attempts %d: must not be negative", opts.Attempts)
	case opts.Attempts == 0:
		c.attempts = DefaultAttempts
	}
	if opts.MinTTL < 0 {
		return nil, fmt.Errorf("resolver: minimum TTL %v: must not be negative", opts.MinTTL)
	}
	switch {
	case opts.MaxTTL < 0:
		return nil, fmt.Errorf("resolver: maximum TTL %v: must not be negative", opts.MaxTTL)
	case opts.MaxTTL == 0:
		c.maxTTL = DefaultMaxTTL
	}
	if c.minTTL > c.maxTTL {
		return nil, fmt.Errorf("resolver: minimum TTL %v is above the maximum TTL %v", c.minTTL, c.maxTTL)
	}
	switch {
	case opts.AvoidFor < 0:
		return nil, fmt.Errorf("resolver: avoid interval %v: must not be negative", opts.AvoidFor)
	case opts.AvoidFor == 0:
		c.avoidFor = DefaultAvoidFor
	}
	cacheBytes := opts.CacheBytes
	switch {
	case cacheBytes < 0:
		return nil, fmt.Errorf("resolver: cache bytes %d: must not be negative", cacheBytes)
	case cacheBytes == 0:
		cacheBytes = DefaultCacheBytes
	}
	switch {
	case opts.CacheSize == 0:
		c.cache = newCache(DefaultCacheSize, cacheBytes)
	case opts.CacheSize > 0:
		c.cache = newCache(opts.CacheSize, cacheBytes)
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	if c.now == nil {
		// A coarse clock refreshed by a goroutine made a cache hit about
		// 0.2 µs cheaper, but a warm check no faster that benchstat could
		// tell (BenchmarkCheckWarmCache: 5.59 µs ± 62% against
		// 4.08 µs ± 38%, p=0.13): not worth a goroutine in a library.
		c.now = time.Now
	}

	servers := opts.Servers
	if len(servers) == 0 {
		path := opts.ResolvConf
		if path == "" {
			path = DefaultResolvConf
		}
		cfg, err := dns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("resolver: no servers given and %s unreadable: %w", path, err)
		}
		for _, s := range cfg.Servers {
			servers = append(servers, net.JoinHostPort(s, cfg.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("resolver: no servers given and no nameserver in %s", path)
		}
	}
	for _, s := range servers {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		c.servers = append(c.servers, &server{addr: addr})
	}
	return c, nil
}

// serverAddr checks a "host:port" (or a bare IP address) and returns it as
// "host:port".
func serverAddr(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(a.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("resolver: server %q: want host:port or an IP address", s)
	}
	if host == "" {
		return "", fmt.Errorf("resolver: server %q: empty host", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("resolver: server %q: bad port %q", s, port)
	}
	return s, nil
}

// CacheLen is the number of answers cached, expired ones not yet dropped
// included.
func (c *Client) CacheLen() int {
	if c.cache == nil {
		return 0
	}
	return c.cache.len()
}

// CacheBytes is the memory the cached answers hold, as counted against
// Options.CacheBytes.
func (c *Client) CacheBytes() int64 {
	if c.cache == nil {
		return 0
	}
	return c.cache.bytes.Load()
}

// LookupTXT returns the TXT records of name, the character-strings of each
// joined (RFC 7208 §3.3).
//
// All lookups follow spf.Resolver: NXDOMAIN is an error wrapping
// spf.ErrNotFound, "no data" an empty result and a nil error, anything else
// an error wrapping one of this package's sentinels. Results are shared with
// the cache: callers must not modify them.
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, error) {
	e, err := c.lookup(ctx, key{name: normName(name), qtype: dns.TypeTXT})
	if err != nil {
		return nil, err
	}
	return e.txt, e.err
}

// LookupA returns the IPv4 addresses of name (4-byte netip.Addr values).
func (c *Client) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	e, err := c.lookup(ctx, key{name: normName(name), qtype: dns.TypeA})
	if err != nil {
		return nil, err
	}
	return e.addrs, e.err
}

// LookupAAAA returns the IPv6 addresses of name.
func (c *Client) LookupAAAA(ctx context.Context, name string) ([]netip.Addr, error) {
	e, err := c.lookup(ctx, key{name: normName(name), qtype: dns.TypeAAAA})
	if err != nil {
		return nil, err
	}
	return e.addrs, e.err
}

// LookupMX returns the exchange names, lower-case without the trailing dot,
// in the server's order.
func (c *Client) LookupMX(ctx context.Context, name string) ([]string, error) {
	e, err := c.lookup(ctx, key{name: normName(name), qtype: dns.TypeMX})
	if err != nil {
		return nil, err
	}
	return e.names, e.err
}

// LookupPTR returns the names of addr's in-addr.arpa or ip6.arpa entry,
// lower-case without the trailing dot. An IPv4-mapped IPv6 address is looked
// up as IPv4.
func (c *Client) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	if !addr.IsValid() {
		return nil, fmt.Errorf("resolver: PTR of an invalid address: %w", ErrBadName)
	}
	e, err := c.lookup(ctx, key{addr: addr.Unmap().WithZone(""), qtype: dns.TypePTR})
	if err != nil {
		return nil, err
	}
	return e.names, e.err
}

// normName lower-cases the ASCII letters of a raw name and drops a trailing
// dot, without allocating when name is already so (the spf.Resolver
// contract).
func normName(name string) string {
	return dnsname.LowerASCII(strings.TrimSuffix(name, "."))
}

// qname is the name asked for k, fully qualified, in the presentation form
// miekg/dns packs: the raw octets of k.name, whatever they are, escaped so
// that each label goes on the wire as those octets (a macro-expanded local
// part may hold a space, "@", a quote or a backslash).
func (k key) qname() string {
	if k.qtype == dns.TypePTR {
		r, _ := dns.ReverseAddr(k.addr.String()) // a valid address always reverses
		return r
	}
	return dnsname.Escape(k.name) + "."
}

func (k key) String() string {
	return dns.TypeToString[k.qtype] + " " + k.qname()
}

// lookup answers k from the cache or, sharing the query with concurrent
// lookups of k, from the servers. A nil error means e holds the answer, whose
// err may be the NXDOMAIN error.
//
// A cached answer is returned without looking at ctx: it costs nothing to
// wait for, and asking a context whether it is done is not free.
func (c *Client) lookup(ctx context.Context, k key) (*entry, error) {
	if c.cache != nil {
		if e := c.cache.get(k, c.now()); e != nil {
			c.obs.ObserveCache(CacheHit)
			return e, nil
		}
		c.obs.ObserveCache(CacheMiss)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resolver: %s %s: %w: %w", dns.TypeToString[k.qtype], k.name, ErrTimeout, err)
	}
	if k.qtype != dns.TypePTR && !dnsname.Queryable(k.name) {
		// RFC 1035 §2.3.4: no query can carry it, so no such name exists.
		return nil, fmt.Errorf("resolver: %s %q: %w: %w", dns.TypeToString[k.qtype], k.name, ErrBadName, spf.ErrNotFound)
	}
	ks := k.String()
	budget := spf.BudgetFromContext(ctx)
	if budget != nil && !budget.Take() {
		return nil, fmt.Errorf("resolver: %s: %w", ks, spf.ErrQueryBudget)
	}
	// The shared query runs on its own clock (bounded by the timeouts and
	// attempts), so that one caller giving up does not fail the others; each
	// caller still returns when its own context ends. Questions beyond the
	// first (a CNAME chain followed across queries) are taken from the
	// budget of the caller that started it; when that runs out, the callers
	// sharing the flight get its error too, which can only happen for a
	// name whose servers hand out chains one hop at a time.
	ch := c.flight.DoChan(ks, func() (any, error) { return c.resolve(k, budget) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*entry), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("resolver: %s: %w: %w", ks, ErrTimeout, ctx.Err())
	}
}

// resolve asks the servers for k, following CNAMEs across queries when an
// answer stops at one, and caches the result. Each question after the first
// is taken from budget, when there is one.
func (c *Client) resolve(k key, budget *spf.QueryBudget) (*entry, error) {
	if c.cache != nil {
		// A flight for k may have finished between our miss and this one.
		if e := c.cache.get(k, c.now()); e != nil {
			return e, nil
		}
	}
	qtype := k.qtype
	name := k.qname()
	seen := map[string]bool{dnsname.Canonical(name): true}
	ttl := uint32(1<<32 - 1)
	var a answer
	for hops := 0; ; {
		m, err := c.exchange(name, qtype)
		if err != nil {
			return nil, err
		}
		a, err = parseAnswer(m, name, qtype, seen)
		if err != nil {
			return nil, fmt.Errorf("resolver: %s %s: %w", dns.TypeToString[qtype], name, err)
		}
		ttl = min(ttl, a.ttl)
		hops += a.hops
		if hops > MaxCNAMEChain {
			return nil, fmt.Errorf("resolver: %s %s: %w", dns.TypeToString[qtype], k.qname(), ErrCNAMELoop)
		}
		if a.next == "" {
			break
		}
		if budget != nil && !budget.Take() {
			return nil, fmt.Errorf("resolver: %s %s: CNAME to %s: %w", dns.TypeToString[qtype], k.qname(), a.next, spf.ErrQueryBudget)
		}
		name = a.next
	}
	e := &entry{key: k, txt: a.txt, addrs: a.addrs, names: a.names}
	if a.nxdomain {
		e.err = fmt.Errorf("resolver: %s %s: %w", dns.TypeToString[qtype], k.qname(), spf.ErrNotFound)
	}
	if c.cache != nil {
		d := min(max(time.Duration(ttl)*time.Second, c.minTTL), c.maxTTL)
		if d > 0 {
			e.expires = c.now().Add(d)
			for range c.cache.put(e) {
				c.obs.ObserveCache(CacheEvict)
			}
		}
	}
	return e, nil
}

// exchange asks the servers for name, starting with the next one in turn and
// failing over on anything but an answer (NOERROR or NXDOMAIN). Servers
// being avoided are left out, unless all are.
func (c *Client) exchange(name string, qtype uint16) (*dns.Msg, error) {
	n := len(c.servers)
	start := int(c.next.Add(1)-1) % n
	now := c.now()
	var stack [4]*server
	order := stack[:0]
	for i := range n {
		if s := c.servers[(start+i)%n]; s.usable(now, c.avoidFor) {
			order = append(order, s)
		}
	}
	if len(order) == 0 {
		for i := range n {
			order = append(order, c.servers[(start+i)%n])
		}
	}
	var lastErr error
	for range c.attempts {
		for _, s := range order {
			m, err := c.exchangeOne(s, name, qtype)
			if err == nil {
				return m, nil
			}
			lastErr = err
		}
	}
	return nil, lastErr
}

// exchangeOne asks srv, over UDP and then over TCP when the answer is
// truncated, reports the outcome to the observer and keeps srv's health: a
// timeout or a network error has it avoided, an answer ends that.
func (c *Client) exchangeOne(srv *server, name string, qtype uint16) (*dns.Msg, error) {
	server := srv.addr
	start := time.Now()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype) // also sets RD and a random ID
	q.SetEdns0(udpSize, false)

	r, err := c.send("udp", server, q)
	if err == nil && r.Rcode == dns.RcodeFormatError && r.IsEdns0() == nil {
		// RFC 6891 §7: a server that does not know EDNS0 answers FORMERR
		// without an OPT record; ask again without one.
		q = q.Copy()
		q.Extra = nil
		r, err = c.send("udp", server, q)
	}
	if err == nil && r.Truncated {
		r, err = c.send("tcp", server, q)
	}
	outcome, err := classify(q, r, err)
	c.obs.ObserveQuery(dns.TypeToString[qtype], outcome, time.Since(start))
	switch {
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrNetwork):
		srv.fail(c.now(), c.avoidFor)
	case r != nil:
		srv.answered()
	}
	if err != nil {
		return nil, fmt.Errorf("resolver: %s %s via %s: %w", dns.TypeToString[qtype], name, server, err)
	}
	return r, nil
}

func (c *Client) send(netw, server string, q *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	dc := &dns.Client{Net: netw, Timeout: c.timeout, UDPSize: udpSize}
	r, _, err := dc.ExchangeContext(ctx, q, server)
	return r, err
}

// classify turns the result of an exchange into an observer outcome and,
// unless the server gave an answer (NOERROR or NXDOMAIN to our question), an
// error wrapping one of the sentinels.
func classify(q, r *dns.Msg, err error) (string, error) {
	if err != nil {
		var ne net.Error
		var de *dns.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
			return OutcomeTimeout, fmt.Errorf("%w: %w", ErrTimeout, err)
		case errors.As(err, &de):
			return OutcomeError, fmt.Errorf("%w: %w", ErrMalformed, err)
		default:
			return OutcomeError, fmt.Errorf("%w: %w", ErrNetwork, err)
		}
	}
	if !r.Response || r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 ||
		r.Question[0].Qtype != q.Question[0].Qtype || r.Question[0].Qclass != q.Question[0].Qclass ||
		!dnsname.Equal(r.Question[0].Name, q.Question[0].Name) {
		// Names compare as octets up to ASCII case: miekg/dns hands back
		// the reply's question in its own escaping, not necessarily ours.
		return OutcomeError, fmt.Errorf("%w: answer to another question", ErrMalformed)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		for _, rr := range r.Answer {
			if t := rr.Header().Rrtype; t == q.Question[0].Qtype || t == dns.TypeCNAME {
				return OutcomeOK, nil
			}
		}
		return OutcomeNoData, nil
	case dns.RcodeNameError:
		return OutcomeNXDomain, nil
	case dns.RcodeServerFailure:
		return OutcomeServFail, ErrServFail
	case dns.RcodeRefused:
		return OutcomeError, ErrRefused
	default:
		return OutcomeError, fmt.Errorf("%w: %s", ErrRcode, dns.RcodeToString[r.Rcode])
	}
}
