package lint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/spf"
)

// FlattenOptions configure Flatten.
type FlattenOptions struct {
	Resolver Resolver // required
	// ExpandA and ExpandMX replace the a and mx mechanisms of the domain's
	// own record (and of the records it redirects to) by the addresses
	// they resolve to now. Those of included records are always replaced:
	// an include can only be flattened whole.
	ExpandA, ExpandMX bool
	// MaxLookups is the most DNS-causing terms the flattened record may
	// make receivers evaluate; 0 means 10 (RFC 7208 §4.6.4).
	MaxLookups int
	// ChunkName names the records the ranges are split into when they do
	// not fit in one 255-byte string: a format with one %d, numbered from
	// 1; "" means "_spf%d.DOMAIN".
	ChunkName string
	// Timeout bounds the whole run; 0 means one minute.
	Timeout time.Duration
}

// Flattened is the outcome of Flatten: records to publish in place of the
// domain's record tree.
type Flattened struct {
	Domain string
	Record string  // the domain's new record
	Chunks []Chunk // the records it includes, if it had to be split
	// TTL is the smallest TTL of the answers the result was built from: it
	// may be out of date after that many seconds.
	TTL uint32
	// Kept are the terms that could not be flattened and are published as
	// they were (exists, ptr, domain-specs with macros, and includes of
	// records holding them); each has a warning.
	Kept     []string
	Warnings []string
}

// Chunk is one record the flattened record includes.
type Chunk struct{ Name, Record string }

// ErrCannotFlatten wraps the reasons a record tree cannot be flattened.
var ErrCannotFlatten = errors.New("cannot flatten")

// errOpaque marks a record holding terms that cannot be flattened.
var errOpaque = errors.New("not flattenable")

// rule is one step of a record's evaluation: a set of addresses and the
// result they get, or a term kept as written (set nil).
type rule struct {
	set  *addrSet
	q    spf.Result
	all  bool   // the all mechanism: every address
	text string // a kept term
	dns  int    // DNS-causing terms a kept term costs, worst case
}

type flattener struct {
	ctx    context.Context
	res    Resolver
	opts   FlattenOptions
	domain string
	ttl    uint32
	out    *Flattened
	steps  int
}

// Flatten rewrites domain's record tree into ip4/ip6 ranges that authorise
// exactly the addresses the tree authorises now, as a client that reaches
// no lookup limit sees it. Results other than pass (fail, softfail,
// neutral) keep their ranges too, so every address gets the same result.
func Flatten(ctx context.Context, domain string, opts FlattenOptions) (*Flattened, error) {
	if opts.Resolver == nil {
		return nil, errors.New("lint: no resolver")
	}
	d, err := normalize(domain)
	if err != nil {
		return nil, err
	}
	if opts.MaxLookups == 0 {
		opts.MaxLookups = spf.MaxDNSTerms
	}
	if opts.MaxLookups < 0 {
		return nil, fmt.Errorf("lint: max lookups %d: must not be negative", opts.MaxLookups)
	}
	if opts.ChunkName == "" {
		opts.ChunkName = "_spf%d." + d
	}
	if strings.Count(opts.ChunkName, "%d") != 1 || strings.Count(opts.ChunkName, "%") != 1 {
		return nil, fmt.Errorf("lint: chunk name %q: want exactly one %%d", opts.ChunkName)
	}
	if _, err := normalize(fmt.Sprintf(opts.ChunkName, 99)); err != nil {
		return nil, fmt.Errorf("lint: chunk name %q: not a domain name", opts.ChunkName)
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(opts.Timeout, timeout))
	defer cancel()
	f := &flattener{ctx: ctx, res: opts.Resolver, opts: opts, domain: d, ttl: 1<<32 - 1, out: &Flattened{Domain: d}}

	// What receivers see of the tree now: beyond the limits they return
	// permerror, which no flattened record reproduces.
	w := newWalker(ctx, opts.Resolver, d)
	w.walk(d, []string{d}, roleTop, map[string]bool{})
	if w.terms > spf.MaxDNSTerms || w.voids[0] > spf.MaxVoidLookups || w.voids[1] > spf.MaxVoidLookups {
		f.warn("the record tree needs %d DNS-causing terms and %d/%d void lookups (IPv4/IPv6 clients) for a client it does not list, over the limits of RFC 7208 §4.6.4, so receivers now return permerror for some clients; the flattened record gives them the result the tree would give without the limits",
			w.terms, w.voids[0], w.voids[1])
	}

	rules, exp, err := f.record(d, true, map[string]bool{})
	if err != nil {
		return nil, err
	}
	if err := f.layout(rules, exp); err != nil {
		return nil, err
	}
	f.out.TTL = f.ttl
	f.warn("a flattened record goes stale when the providers behind the includes change their ranges: flatten again within %d s (the smallest TTL met) and whenever they announce changes", f.ttl)
	return f.out, nil
}

func (f *flattener) warn(format string, args ...any) {
	f.out.Warnings = append(f.out.Warnings, fmt.Sprintf(format, args...))
}

// noteTTL asks for name once more, as a whole answer, for its TTL.
func (f *flattener) noteTTL(name string, qtype uint16) {
	m, err := f.res.Exchange(f.ctx, name, qtype)
	if err != nil {
		return
	}
	for _, rr := range m.Answer {
		f.ttl = min(f.ttl, rr.Header().Ttl)
	}
	if len(m.Answer) == 0 {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				f.ttl = min(f.ttl, soa.Hdr.Ttl, soa.Minttl) // RFC 2308 §5
			}
		}
	}
}

// record turns name's record into rules. top is set for the domain's own
// record and its redirect chain, where terms that cannot be flattened are
// kept; in an included record they make the whole include errOpaque.
func (f *flattener) record(name string, top bool, stack map[string]bool) ([]rule, string, error) {
	if f.steps++; f.steps > maxRecords {
		return nil, "", fmt.Errorf("%w: more than %d records in the tree", ErrCannotFlatten, maxRecords)
	}
	if stack[name] {
		return nil, "", fmt.Errorf("%w: %s includes or redirects to itself (run spfmilter lint)", ErrCannotFlatten, name)
	}
	stack[name] = true
	defer delete(stack, name)
	txts, err := f.res.LookupTXT(f.ctx, name)
	if err != nil {
		return nil, "", fmt.Errorf("%w: TXT %s: %v", ErrCannotFlatten, name, err)
	}
	f.noteTTL(name, dns.TypeTXT)
	var recs []string
	for _, t := range txts {
		if spf.IsRecord(t) {
			recs = append(recs, t)
		}
	}
	if len(recs) != 1 {
		return nil, "", fmt.Errorf("%w: %s has %d SPF records (run spfmilter lint)", ErrCannotFlatten, name, len(recs))
	}
	rec, err := spf.ParseRecord(recs[0])
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %v (run spfmilter lint)", ErrCannotFlatten, name, err)
	}
	exp := ""
	if top && rec.Exp != nil {
		exp = "exp=" + rec.Exp.Raw
		if name != f.domain {
			f.warn("exp=%s of %s is dropped: only the domain's own explanation is kept", rec.Exp.Raw, name)
			exp = ""
		}
	}
	var rules []rule
	for i := range rec.Terms {
		t := &rec.Terms[i]
		if t.Mechanism == "all" {
			return append(rules, rule{all: true, q: t.Qualifier}), exp, nil
		}
		r, err := f.term(name, t, top, stack)
		if err != nil {
			return nil, "", err
		}
		rules = append(rules, r...)
	}
	if rec.Redirect == nil {
		return rules, exp, nil
	}
	d := rec.Redirect
	if d.Macros != "" || !d.Valid {
		if !top {
			return nil, "", errOpaque
		}
		if err := f.movable(name, d); err != nil {
			return nil, "", err
		}
		return append(rules, f.keep(name, "redirect="+d.Raw, 1, "its target depends on macros")), exp, nil
	}
	// §6.1: the target's result is the record's result, so its rules
	// simply follow ours.
	more, mexp, err := f.record(d.Name, top, stack)
	if err != nil {
		return nil, "", err
	}
	return append(rules, more...), cmp.Or(exp, mexp), nil
}

// movable reports whether a term of where's record that is kept as
// written means the same in the domain's record: %{d} is the domain of the
// record being evaluated (RFC 7208 §7.3), which changes when a redirect
// target's term moves up.
func (f *flattener) movable(where string, d *spf.DomainSpec) error {
	if where != f.domain && d != nil && strings.ContainsRune(d.Macros, 'd') {
		return fmt.Errorf("%w: %s (of %s, reached by redirect) uses %%{d}, which would name %s once moved", ErrCannotFlatten, d.Raw, where, f.domain)
	}
	return nil
}

// keep returns a rule that publishes text as it is.
func (f *flattener) keep(where, text string, cost int, why string) rule {
	f.out.Kept = append(f.out.Kept, text)
	f.warn("%s (in %s) is kept as written: %s", text, where, why)
	return rule{text: text, dns: cost}
}

// qualifier is the prefix that writes q.
func qualifier(q spf.Result) string {
	switch q {
	case spf.Fail:
		return "-"
	case spf.Softfail:
		return "~"
	case spf.Neutral:
		return "?"
	}
	return ""
}

// term turns one mechanism of name's record into rules.
func (f *flattener) term(name string, t *spf.Term, top bool, stack map[string]bool) ([]rule, error) {
	switch t.Mechanism {
	case "ip4", "ip6":
		return []rule{{set: setOf(t.Prefix), q: t.Qualifier}}, nil
	}
	target := name
	if t.Domain != nil {
		if t.Domain.Macros != "" {
			if !top {
				return nil, errOpaque
			}
			if err := f.movable(name, t.Domain); err != nil {
				return nil, err
			}
			return []rule{f.keep(name, t.Text, 1, "its domain-spec depends on macros")}, nil
		}
		if !t.Domain.Valid {
			if t.Mechanism == "include" {
				return nil, fmt.Errorf("%w: %s: %q is not a valid domain name", ErrCannotFlatten, name, t.Domain.Name)
			}
			return nil, nil // a name that cannot exist matches nothing
		}
		target = t.Domain.Name
	}
	// Kept terms of a redirect target name it explicitly: in the new record
	// <domain> would be the domain.
	explicit := qualifier(t.Qualifier) + t.Mechanism + ":" + target + cidrSuffix(t)
	switch t.Mechanism {
	case "include":
		sub, _, err := f.record(target, false, stack)
		if errors.Is(err, errOpaque) {
			if !top {
				return nil, errOpaque
			}
			w := newWalker(f.ctx, f.res, target)
			w.walk(target, []string{target}, roleInclude, map[string]bool{})
			return []rule{f.keep(name, t.Text, 1+w.terms, "the included record holds terms that cannot be flattened (exists, ptr or macros)")}, nil
		}
		if err != nil {
			return nil, err
		}
		// §5.2: include matches exactly when the included record passes.
		return []rule{{set: passSet(sub), q: t.Qualifier}}, nil
	case "a":
		if top && !f.opts.ExpandA {
			return []rule{{text: cmp.Or(sameDomain(name, f.domain, t.Text), explicit), dns: 1}}, nil
		}
		s, err := f.hostSet(target, t)
		if err != nil {
			return nil, err
		}
		return []rule{{set: s, q: t.Qualifier}}, nil
	case "mx":
		if top && !f.opts.ExpandMX {
			return []rule{{text: cmp.Or(sameDomain(name, f.domain, t.Text), explicit), dns: 1}}, nil
		}
		names, err := f.res.LookupMX(f.ctx, target)
		if err != nil && !errors.Is(err, spf.ErrNotFound) {
			return nil, fmt.Errorf("%w: MX %s: %v", ErrCannotFlatten, target, err)
		}
		f.noteTTL(target, dns.TypeMX)
		if len(names) > spf.MaxMXNames {
			return nil, fmt.Errorf("%w: %s has %d MX names, a permerror (RFC 7208 §4.6.4)", ErrCannotFlatten, target, len(names))
		}
		s := &addrSet{}
		for _, n := range names {
			if n = strings.TrimSuffix(n, "."); n == "" {
				continue
			}
			hs, err := f.hostSet(n, t)
			if err != nil {
				return nil, err
			}
			s = union(s, hs)
		}
		return []rule{{set: s, q: t.Qualifier}}, nil
	case "ptr":
		if !top {
			return nil, errOpaque
		}
		return []rule{f.keep(name, cmp.Or(sameDomain(name, f.domain, t.Text), explicit), 1, "ptr depends on the client's reverse DNS")}, nil
	default: // exists
		if !top {
			return nil, errOpaque
		}
		return []rule{f.keep(name, t.Text, 1, "exists depends on the client")}, nil
	}
}

// sameDomain returns text when the term's record is the domain's own, where
// it means the same once moved; "" otherwise.
func sameDomain(name, domain, text string) string {
	if name == domain {
		return text
	}
	return ""
}

func cidrSuffix(t *spf.Term) string {
	s := ""
	if t.Mechanism == "a" || t.Mechanism == "mx" {
		if t.CIDR4 != 32 {
			s += "/" + strconv.Itoa(t.CIDR4)
		}
		if t.CIDR6 != 128 {
			s += "//" + strconv.Itoa(t.CIDR6)
		}
	}
	return s
}

// hostSet is the networks an a mechanism (or one MX name) matches: each
// IPv4 address with the IPv4 prefix length, each IPv6 address with the IPv6
// one (RFC 7208 §5.3).
func (f *flattener) hostSet(name string, t *spf.Term) (*addrSet, error) {
	a4, err := f.res.LookupA(f.ctx, name)
	if err != nil && !errors.Is(err, spf.ErrNotFound) {
		return nil, fmt.Errorf("%w: A %s: %v", ErrCannotFlatten, name, err)
	}
	a6, err := f.res.LookupAAAA(f.ctx, name)
	if err != nil && !errors.Is(err, spf.ErrNotFound) {
		return nil, fmt.Errorf("%w: AAAA %s: %v", ErrCannotFlatten, name, err)
	}
	f.noteTTL(name, dns.TypeA)
	f.noteTTL(name, dns.TypeAAAA)
	var ps []netip.Prefix
	for _, a := range a4 {
		if p, err := a.Unmap().Prefix(t.CIDR4); err == nil {
			ps = append(ps, p)
		}
	}
	for _, a := range a6 {
		if a.Is4In6() {
			continue // the engine compares IPv6 clients only
		}
		if p, err := a.Prefix(t.CIDR6); err == nil {
			ps = append(ps, p)
		}
	}
	return setOf(ps...), nil
}

// passSet is the addresses a record of flattenable rules passes.
func passSet(rules []rule) *addrSet {
	decided, pass := &addrSet{}, &addrSet{}
	for _, r := range rules {
		s := r.set
		if r.all {
			s = fullSet()
		}
		if r.q == spf.Pass {
			pass = union(pass, minus(s, decided))
		}
		decided = union(decided, s)
		if r.all {
			break
		}
	}
	return pass
}
