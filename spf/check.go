package spf

import (
	"cmp"
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/spfmilter/spfmilter/internal/lazyctx"
)

// DefaultTimeout is the overall deadline of one check (RFC 7208 §4.6.4 note:
// at least 20 seconds).
const DefaultTimeout = 20 * time.Second

// Checker evaluates SPF policies. It is safe for concurrent use once
// configured; its fields must not change while checks run.
type Checker struct {
	// Resolver answers DNS queries. Required.
	Resolver Resolver
	// Timeout bounds one whole check; 0 means DefaultTimeout. Running out
	// yields temperror.
	Timeout time.Duration
	// Receiver is this host's name, expanded by %{r} (RFC 7208 §7.3);
	// "unknown" when empty.
	Receiver string
	// Records caches parsed records; nil means a cache shared by every
	// Checker without one, of DefaultRecordCacheBytes.
	Records *RecordCache
}

// Args describe one SMTP client for a check.
type Args struct {
	IP netip.Addr // the SMTP client; IPv4-mapped IPv6 is treated as IPv4
	// Sender is the MAIL FROM address without angle brackets; "" is the null
	// sender, checked as postmaster@<HELO> (RFC 7208 §2.4).
	Sender string
	HELO   string // the HELO/EHLO argument as given
	Trace  bool   // record a step-by-step trace in Outcome.Trace
}

// CheckHELO evaluates the HELO identity (RFC 7208 §2.3). An empty HELO, an
// IP-literal or a name that is not a fully qualified domain is not checked:
// the Outcome has NotChecked set (and Result None, Problem the reason). The
// sender checked is postmaster@<HELO>.
func (c *Checker) CheckHELO(ctx context.Context, a Args) Outcome {
	start := time.Now()
	o := Outcome{Identity: IdentityHELO}
	d, problem := heloDomain(a.HELO)
	if problem != "" {
		o.NotChecked = true
		return none(o, problem, start)
	}
	o.Domain = d
	o.Sender = "postmaster@" + d
	return c.run(ctx, o, a, "postmaster", start)
}

// CheckMailFrom evaluates the MAIL FROM identity (RFC 7208 §2.4). The null
// sender is checked as postmaster@<HELO>; a missing local-part becomes
// "postmaster" (§4.3).
func (c *Checker) CheckMailFrom(ctx context.Context, a Args) Outcome {
	start := time.Now()
	o := Outcome{Identity: IdentityMailFrom}
	if a.Sender == "" {
		d, problem := heloDomain(a.HELO)
		if problem != "" {
			return none(o, "null sender and "+problem, start)
		}
		o.Domain = d
		o.Sender = "postmaster@" + d
		return c.run(ctx, o, a, "postmaster", start)
	}
	local, dom := splitSender(a.Sender)
	d, ok := normalizeDomain(dom)
	if !ok {
		o.Sender = a.Sender
		return none(o, "sender domain is not a valid domain name (RFC 7208 §4.3)", start)
	}
	o.Domain = d
	if d == dom && len(local)+1+len(d) == len(a.Sender) {
		o.Sender = a.Sender // already normalized: no allocation
	} else {
		o.Sender = local + "@" + d
	}
	return c.run(ctx, o, a, local, start)
}

// DefaultExplanation is the explanation of a fail when the record has no
// usable exp= (RFC 7208 §6.2 leaves it to the implementation).
func DefaultExplanation(domain string, ip netip.Addr) string {
	return domain + " does not designate " + ip.Unmap().String() + " as permitted sender"
}

// heloDomain normalizes a HELO argument, or says why it cannot be checked.
func heloDomain(helo string) (string, string) {
	if helo == "" {
		return "", "no HELO/EHLO name given"
	}
	if isIPLiteral(helo) {
		return "", "HELO is an address literal"
	}
	d, ok := normalizeDomain(helo)
	if !ok {
		return "", "HELO is not a fully qualified domain name (RFC 7208 §2.3)"
	}
	return d, ""
}

func none(o Outcome, problem string, start time.Time) Outcome {
	o.Result = None
	o.Problem = problem
	o.Duration = time.Since(start)
	return o
}

// run evaluates check_host() for o.Domain under the overall deadline and
// fills in the rest of o.
func (c *Checker) run(ctx context.Context, o Outcome, a Args, local string, start time.Time) Outcome {
	ip := a.IP.Unmap()
	if !ip.IsValid() {
		o.Result = Temperror
		o.Problem = "no valid client IP address"
		o.Duration = time.Since(start)
		return o
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// The deadline starts no timer unless the check waits for the network:
	// one answered from the cache costs none (see lazyctx).
	ctx, cancel := lazyctx.WithDeadline(ctx, start.Add(timeout))
	defer cancel()
	ctx, budget := WithQueryBudget(ctx, MaxQueries)
	// %{h} is the HELO domain (RFC 7208 §7.2); a trailing dot is the root,
	// not part of the name, and left in it would put an empty label in the
	// middle of every name built from %{h} (§4.3 calls a zero-length label
	// "not at the end" malformed).
	helo := strings.TrimSuffix(a.HELO, ".")
	e := evaluator{
		ctx:      ctx,
		budget:   budget,
		res:      c.Resolver,
		records:  cmp.Or(c.Records, defaultRecords),
		ip:       ip,
		sender:   o.Sender,
		local:    local,
		sdomain:  o.Domain,
		helo:     helo,
		receiver: c.Receiver,
		now:      start,
		tracing:  a.Trace,
	}
	if e.tracing {
		e.tracef("check_host(%s, %s, %s)", ip, o.Domain, o.Sender)
	}
	res, mech, exp := e.checkHost(o.Domain, true)
	o.Result = res
	o.Mechanism = mech
	switch res {
	case Fail:
		o.Explanation = exp
		if exp == "" {
			o.Explanation = DefaultExplanation(o.Domain, ip)
		}
	case None, Temperror, Permerror:
		o.Problem = e.problem
		if res == Permerror {
			o.Cause = e.cause
		}
		if res == None {
			o.Mechanism = ""
		}
	}
	o.DNSLookups = e.dnsTerms
	o.VoidLookups = e.voids
	o.Duration = time.Since(start)
	if e.tracing {
		e.tracef("result %s", res)
		o.Trace = e.trace
	}
	return o
}
