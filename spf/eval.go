package spf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Processing limits (RFC 7208 §4.6.4). They count across include and
// redirect, and cache hits in the resolver count like any other lookup: the
// counting happens here, not in the resolver.
const (
	// MaxDNSTerms is the number of include, a, mx, ptr, exists and redirect
	// terms one check may evaluate; the 11th is a permerror and is never
	// looked up (§4.6.4).
	MaxDNSTerms = 10
	// MaxMXNames is the number of MX names an mx mechanism may look up;
	// more is a permerror (§4.6.4).
	MaxMXNames = 10
	// MaxPTRNames is the number of PTR names the ptr mechanism and %{p}
	// validate; the rest are ignored (§4.6.4, §5.5).
	MaxPTRNames = 10
	// MaxVoidLookups is the number of lookups answering NXDOMAIN or no data
	// a check tolerates; the next one is a permerror (§4.6.4).
	MaxVoidLookups = 2
)

// evaluator is the state of one check_host() run, including nested include
// and redirect evaluations (RFC 7208 §4).
type evaluator struct {
	ctx      context.Context
	res      Resolver
	records  *RecordCache
	budget   *QueryBudget
	ip       netip.Addr // never IPv4-mapped
	sender   string     // local@domain, for %{s}
	local    string     // %{l}
	sdomain  string     // %{o}
	helo     string     // %{h}
	receiver string     // %{r}
	now      time.Time

	dnsTerms int
	voids    int
	problem  string
	cause    Cause
	// within[:depth] are the domains whose check_host() is under way,
	// outermost first: an include or redirect back to one of them is a
	// loop. Each nested check_host() costs a DNS-causing term, so the
	// depth never exceeds 1+MaxDNSTerms; a fixed array costs no allocation.
	within [1 + MaxDNSTerms]string
	depth  int

	tracing bool
	trace   []string

	ptrDone  bool
	ptrNames []string // validated PTR names, for %{p}
	iMacro   string   // %{i}, computed on first use

	buf [maxDomainLen + 64]byte // scratch for macro expansion
}

func (e *evaluator) tracef(format string, args ...any) {
	e.trace = append(e.trace, fmt.Sprintf(format, args...))
}

// fail records the first problem, with its cause for a permerror, and
// returns res.
func (e *evaluator) fail(res Result, cause Cause, problem string) Result {
	if e.problem == "" {
		e.problem = problem
		if res == Permerror {
			e.cause = cause
		}
	}
	if e.tracing {
		e.tracef("%s: %s", res, problem)
	}
	return res
}

// dnsFailure turns a resolver error into temperror (RFC 7208 §5: any DNS
// error other than NXDOMAIN).
func (e *evaluator) dnsFailure(qtype, name string, err error) Result {
	if ctxErr := e.ctx.Err(); ctxErr != nil {
		return e.fail(Temperror, "", "check deadline exceeded during "+qtype+" "+name)
	}
	if errors.Is(err, ErrQueryBudget) {
		return e.fail(Temperror, "", "more than "+strconv.Itoa(MaxQueries)+" DNS queries (at "+qtype+" "+name+")")
	}
	// The problem text reaches headers and SMTP replies, so it names the
	// query and the kind of failure only; the resolver's own error (servers,
	// sockets) goes to the trace.
	if e.tracing {
		e.tracef("DNS error for %s %s: %v", qtype, name, err)
	}
	kind := "DNS error"
	var te interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		kind = "DNS timeout"
	}
	return e.fail(Temperror, "", kind+" for "+qtype+" "+name)
}

// classify classifies a lookup result. It returns fail != "" when the
// check must stop: temperror on a DNS error, permerror on the void lookup
// beyond MaxVoidLookups.
func (e *evaluator) classify(qtype, name string, n int, err error) (void bool, fail Result) {
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, e.dnsFailure(qtype, name, err)
	}
	if err == nil && n > 0 {
		return false, ""
	}
	return true, e.countVoid(qtype, name)
}

func (e *evaluator) countVoid(qtype, name string) Result {
	if e.voids >= MaxVoidLookups {
		return e.fail(Permerror, CauseVoidLookupLimit, "more than "+strconv.Itoa(MaxVoidLookups)+" void lookups (at "+qtype+" "+name+")")
	}
	e.voids++
	if e.tracing {
		e.tracef("void lookup %d: %s %s", e.voids, qtype, name)
	}
	return ""
}

// countTerm enforces MaxDNSTerms before the lookup it guards; prefix+text
// names the term (only built when the limit is hit).
func (e *evaluator) countTerm(prefix, text string) Result {
	if e.dnsTerms >= MaxDNSTerms {
		return e.fail(Permerror, CauseLookupLimit, "more than "+strconv.Itoa(MaxDNSTerms)+" DNS-causing terms (at "+prefix+text+")")
	}
	e.dnsTerms++
	return ""
}

// lookupRecord fetches and parses the SPF record of domain (RFC 7208 §4.4,
// §4.5). rec is nil when res says why there is none.
func (e *evaluator) lookupRecord(domain string) (rec *record, res Result) {
	txts, err := e.res.LookupTXT(e.ctx, domain)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, e.dnsFailure("TXT", domain, err)
	}
	found := -1
	for i, t := range txts {
		if isSPFRecord(t) {
			if found >= 0 {
				return nil, e.fail(Permerror, CauseMultipleRecords, "more than one SPF record for "+domain)
			}
			found = i
		}
	}
	if found < 0 {
		if e.problem == "" {
			e.problem = "no SPF record for " + domain
		}
		return nil, None
	}
	if e.tracing {
		e.tracef("%s: %q", domain, txts[found])
	}
	rec = e.records.get(txts[found])
	if rec.err != nil {
		return nil, e.fail(Permerror, CauseSyntax, domain+": "+rec.err.Error())
	}
	return rec, ""
}

// checkHost is check_host() of RFC 7208 §4. It returns the result, the text
// of the matching mechanism ("default" when none matched) and, for fail
// when wantExp is set, the exp= explanation if one could be used.
func (e *evaluator) checkHost(domain string, wantExp bool) (Result, string, string) {
	if e.depth < len(e.within) {
		e.within[e.depth] = domain
	}
	e.depth++
	defer func() { e.depth-- }()
	rec, res := e.lookupRecord(domain)
	if rec == nil {
		return res, "", ""
	}
	for i := range rec.terms {
		t := &rec.terms[i]
		match, fail := e.evalTerm(t, domain)
		if fail != "" {
			return fail, t.text, ""
		}
		if !match {
			continue
		}
		if e.tracing {
			e.tracef("%s: %s matched: %s", domain, t.text, t.result)
		}
		exp := ""
		if t.result == Fail && wantExp && rec.hasExp {
			exp = e.explain(rec, domain)
		}
		return t.result, t.text, exp
	}
	// §6.1: redirect applies only when no mechanism matched.
	if rec.hasRedirect {
		if fail := e.countTerm("redirect=", rec.redirect.raw); fail != "" {
			return fail, "redirect=" + rec.redirect.raw, ""
		}
		target, ok := e.expandDomain(&rec.redirect, domain)
		if e.tracing {
			e.tracef("%s: redirect to %s", domain, target)
		}
		if !ok {
			return e.fail(Permerror, CauseSyntax, "redirect to an invalid domain"), "redirect=" + rec.redirect.raw, ""
		}
		if fail := e.loop("redirect", target); fail != "" {
			return fail, "redirect=" + rec.redirect.raw, ""
		}
		res, mech, exp := e.checkHost(target, wantExp)
		if res == None {
			// §6.1: a redirect to a domain without a record is permerror.
			e.problem, e.cause = "", ""
			return e.fail(Permerror, CauseNoRecord, "redirect to "+target+", which has no SPF record"), "redirect=" + rec.redirect.raw, ""
		}
		return res, mech, exp
	}
	if e.tracing {
		e.tracef("%s: no match, default neutral", domain)
	}
	return Neutral, "default", ""
}

// expandDomain returns the name a domain-spec designates: macro-expanded,
// truncated to 253 octets (§7.3), lower-case, no trailing dot. ok is false
// when that is not a queryable name.
func (e *evaluator) expandDomain(m *macroString, domain string) (string, bool) {
	if m.static {
		return m.value, m.valid
	}
	name := e.expandDomainSpec(m, domain)
	return name, validQueryName(name)
}

// target is the domain a mechanism applies to: its domain-spec or <domain>.
func (e *evaluator) target(t *term, domain string) (string, bool) {
	if t.domain == nil {
		return domain, true
	}
	return e.expandDomain(t.domain, domain)
}

// evalTerm evaluates one mechanism (RFC 7208 §5). fail is set when the check
// must stop with that result.
func (e *evaluator) evalTerm(t *term, domain string) (match bool, fail Result) {
	switch t.kind {
	case mechAll:
		return true, ""
	case mechIP4, mechIP6:
		// An IPv4 prefix never contains an IPv6 client and vice versa
		// (§5.6).
		return t.prefix.Contains(e.ip), ""
	}
	if fail := e.countTerm("", t.text); fail != "" {
		return false, fail
	}
	target, ok := e.target(t, domain)
	if !ok {
		if t.kind == mechInclude {
			return false, e.fail(Permerror, CauseSyntax, "include of an invalid domain ("+t.text+")")
		}
		// An unqueryable name cannot exist: treat it as NXDOMAIN.
		return false, e.countVoid("name", target)
	}
	switch t.kind {
	case mechInclude:
		return e.include(t, target)
	case mechA:
		return e.matchAddrs(target, t.cidr4, t.cidr6, true)
	case mechMX:
		return e.mx(t, target)
	case mechPTR:
		return e.ptr(target)
	case mechExists:
		// §5.7: always an A query, whatever the client's address family.
		addrs, err := e.res.LookupA(e.ctx, target)
		if _, fail := e.classify("A", target, len(addrs), err); fail != "" {
			return false, fail
		}
		return len(addrs) > 0, ""
	}
	return false, e.fail(Permerror, CauseSyntax, "unknown mechanism")
}

// loop is a permerror when target's check_host() is already under way. Its
// evaluation would repeat the one in progress term for term (it depends
// only on the domain and the client's IP, sender and HELO, all unchanged),
// so it would recurse until the §4.6.4 limits stop it with a permerror
// anyway; stopping at once names the cause and spares the queries.
func (e *evaluator) loop(kind, target string) Result {
	for _, d := range e.within[:min(e.depth, len(e.within))] {
		if d == target {
			return e.fail(Permerror, CauseLoop, kind+" of "+target+" loops back to a record being evaluated")
		}
	}
	return ""
}

// include maps the included check_host() result per RFC 7208 §5.2.
func (e *evaluator) include(t *term, target string) (bool, Result) {
	if e.tracing {
		e.tracef("include %s", target)
	}
	if fail := e.loop("include", target); fail != "" {
		return false, fail
	}
	res, _, _ := e.checkHost(target, false)
	if e.tracing {
		e.tracef("%s: included result %s (only pass matches, §5.2)", t.text, res)
	}
	switch res {
	case Pass:
		return true, ""
	case Fail, Softfail, Neutral:
		return false, ""
	case Temperror:
		return false, Temperror
	case None:
		e.problem, e.cause = "", ""
		return false, e.fail(Permerror, CauseNoRecord, "include of "+target+", which has no SPF record")
	default:
		return false, Permerror
	}
}

// matchAddrs looks up the client's address family for name and compares
// with the CIDR lengths (§5.3). void says whether an empty answer counts as
// a void lookup (the a mechanism itself; not the names an MX points to).
func (e *evaluator) matchAddrs(name string, cidr4, cidr6 int, void bool) (bool, Result) {
	var (
		addrs []netip.Addr
		err   error
		qtype string
		bits  int
	)
	if e.ip.Is4() {
		qtype, bits = "A", cidr4
		addrs, err = e.res.LookupA(e.ctx, name)
	} else {
		qtype, bits = "AAAA", cidr6
		addrs, err = e.res.LookupAAAA(e.ctx, name)
	}
	if void {
		if _, fail := e.classify(qtype, name, len(addrs), err); fail != "" {
			return false, fail
		}
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return false, e.dnsFailure(qtype, name, err)
	}
	net, perr := e.ip.Prefix(bits)
	if perr != nil {
		return false, ""
	}
	for _, a := range addrs {
		if net.Contains(a.Unmap()) {
			return true, ""
		}
	}
	return false, ""
}

// mx implements §5.4 with the MX-name limit of §4.6.4.
func (e *evaluator) mx(t *term, target string) (bool, Result) {
	names, err := e.res.LookupMX(e.ctx, target)
	if _, fail := e.classify("MX", target, len(names), err); fail != "" {
		return false, fail
	}
	if len(names) > MaxMXNames {
		return false, e.fail(Permerror, CauseLookupLimit, t.text+": "+target+" has more than "+strconv.Itoa(MaxMXNames)+" MX names")
	}
	for _, n := range names {
		n = trimDot(n)
		if n == "" {
			// Null MX (RFC 7505): nothing to look up.
			continue
		}
		n = lowerASCII(n)
		if match, fail := e.matchAddrs(n, t.cidr4, t.cidr6, false); match || fail != "" {
			return match, fail
		}
	}
	return false, ""
}

// ptr implements §5.5: validate at most MaxPTRNames names of the client's
// reverse entry and match one equal to or under target. DNS errors make the
// mechanism not match rather than temperror.
func (e *evaluator) ptr(target string) (bool, Result) {
	names, err := e.res.LookupPTR(e.ctx, e.ip)
	if err != nil && !errors.Is(err, ErrNotFound) {
		if e.tracing {
			e.tracef("ptr: PTR lookup failed, no match: %v", err)
		}
		return false, ""
	}
	if len(names) == 0 {
		return false, e.countVoid("PTR", e.ip.String())
	}
	if len(names) > MaxPTRNames {
		names = names[:MaxPTRNames]
	}
	for _, n := range names {
		if isSubdomain(n, target) && e.validates(n) {
			return true, ""
		}
	}
	return false, ""
}

// validates reports whether name has an address equal to the client's
// (forward confirmation, §5.5). Lookup errors mean "not validated".
func (e *evaluator) validates(name string) bool {
	name = lowerASCII(trimDot(name))
	if !validQueryName(name) {
		return false
	}
	var addrs []netip.Addr
	if e.ip.Is4() {
		addrs, _ = e.res.LookupA(e.ctx, name)
	} else {
		addrs, _ = e.res.LookupAAAA(e.ctx, name)
	}
	for _, a := range addrs {
		if a.Unmap() == e.ip {
			return true
		}
	}
	return false
}

// validatedName is %{p} (§7.3): a validated name of the client equal to
// domain, else one under domain, else any, else "unknown". The PTR answer is
// looked up once per check and at most MaxPTRNames names are validated
// (§4.6.4). It adds no DNS term of its own: the limit counts mechanisms and
// modifiers, the one carrying the macro is already counted, and %{p} in exp
// text must not be able to turn a fail into permerror. Lookup errors give
// "unknown" (§5.5 treats them as "not validated").
func (e *evaluator) validatedName(domain string) string {
	if !e.ptrDone {
		e.ptrDone = true
		names, _ := e.res.LookupPTR(e.ctx, e.ip)
		if len(names) > MaxPTRNames {
			names = names[:MaxPTRNames]
		}
		for _, n := range names {
			if e.validates(n) {
				e.ptrNames = append(e.ptrNames, lowerASCII(trimDot(n)))
			}
		}
	}
	best := ""
	for _, n := range e.ptrNames {
		if n == domain {
			return n
		}
		if best == "" && isSubdomain(n, domain) {
			best = n
		}
	}
	if best != "" {
		return best
	}
	if len(e.ptrNames) > 0 {
		return e.ptrNames[0]
	}
	return "unknown"
}

// explain fetches and expands the exp= explanation (§6.2). Any problem
// (invalid name, DNS error, no or several records, non-ASCII text, macro
// error) drops it silently, leaving the default.
func (e *evaluator) explain(rec *record, domain string) string {
	target, ok := e.expandDomain(&rec.exp, domain)
	if !ok {
		return ""
	}
	// §4.6.4: the exp= lookup does not count against the limits.
	if e.budget != nil {
		e.budget.left.Add(1)
	}
	txts, err := e.res.LookupTXT(e.ctx, target)
	if err != nil || len(txts) != 1 {
		if e.tracing {
			e.tracef("exp=%s unusable: %d records, err %v", target, len(txts), err)
		}
		return ""
	}
	text := txts[0]
	if len(text) > MaxRecordLen {
		// Longer than any record: not worth parsing for 512 bytes.
		return ""
	}
	for i := 0; i < len(text); i++ {
		if text[i] < 0x20 || text[i] > 0x7e {
			return ""
		}
	}
	m, err := parseMacroString(text, true)
	if err != nil {
		return ""
	}
	exp := e.expandExplain(&m, domain)
	// §6.2: the explanation is printable ASCII, and a macro (a local part,
	// a HELO name) can bring in other octets: drop it for the default.
	for i := 0; i < len(exp); i++ {
		if exp[i] < 0x20 || exp[i] > 0x7e {
			if e.tracing {
				e.tracef("exp=%s unusable: expands to text that is not printable ASCII", target)
			}
			return ""
		}
	}
	return exp
}

// macroValue is the value of a macro letter (§7.2).
func (e *evaluator) macroValue(letter byte, domain string) string {
	switch letter {
	case 's':
		return e.sender
	case 'l':
		return e.local
	case 'o':
		return e.sdomain
	case 'd':
		return domain
	case 'i':
		if e.iMacro == "" {
			if e.ip.Is4() {
				e.iMacro = e.ip.String()
			} else {
				e.iMacro = string(appendNibbles(nil, e.ip.As16()))
			}
		}
		return e.iMacro
	case 'p':
		return e.validatedName(domain)
	case 'v':
		if e.ip.Is4() {
			return "in-addr"
		}
		return "ip6"
	case 'h':
		return e.helo
	case 'c':
		return e.ip.String()
	case 'r':
		if e.receiver == "" {
			return "unknown"
		}
		return e.receiver
	case 't':
		return strconv.FormatInt(e.now.Unix(), 10)
	}
	return ""
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}
