package lint

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spfmilter/spfmilter/spf"
)

// role is how a record was reached.
type role int

const (
	roleTop role = iota
	roleInclude
	roleRedirect
)

// walker is one walk of a record tree, in the order a client that matches
// no term makes receivers evaluate it.
type walker struct {
	ctx context.Context
	res Resolver
	rep *Report

	records  int
	terms    int    // DNS-causing terms so far, in evaluation order
	voids    [2]int // void lookups so far: IPv4, IPv6 clients
	overDNS  bool
	overVoid [2]bool

	raw      map[string]bool   // names whose raw TXT answer was checked
	octets   map[string]string // the SPF record of a name as sent, octet for octet
	pieces   map[string]int    // the number of strings the SPF record of a name is sent in
	included map[string]string // include targets seen, and the path of the first
	addrs    []netip.Prefix    // every network the tree lists, to pick probe clients
	hosts    []netip.Addr      // addresses of a and mx names, for ptr-names
	usesPTR  bool
}

func newWalker(ctx context.Context, res Resolver, domain string) *walker {
	return &walker{ctx: ctx, res: res, rep: &Report{Domain: domain}, raw: map[string]bool{}, octets: map[string]string{}, pieces: map[string]int{}, included: map[string]string{}}
}

func (w *walker) add(id string, path []string, client, format string, args ...any) {
	c, ok := checks[id]
	if !ok {
		panic("lint: unknown finding " + id)
	}
	w.rep.Findings = append(w.rep.Findings, Finding{
		Severity: c.severity,
		ID:       id,
		Path:     slices.Clone(path),
		Client:   client,
		Message:  fmt.Sprintf(format, args...),
		Advice:   c.advice,
	})
}

func with(path []string, step string) []string {
	return append(slices.Clip(path), step)
}

// fetch returns the SPF records of name as check_host() selects them, or
// records a finding and returns ok=false.
func (w *walker) fetch(name string, path []string, r role) (txt string, ok bool) {
	txts, err := w.res.LookupTXT(w.ctx, name)
	if err != nil && !errors.Is(err, spf.ErrNotFound) {
		w.add("dns-error", path, "", "TXT %s: %v", name, err)
		return "", false
	}
	w.checkRaw(name, path)
	var recs []string
	for _, t := range txts {
		if spf.IsRecord(t) {
			recs = append(recs, t)
		}
	}
	why := "no TXT record starting with \"v=spf1\""
	if errors.Is(err, spf.ErrNotFound) {
		why = "the name does not exist"
	}
	switch {
	case len(recs) == 1:
		return recs[0], true
	case len(recs) > 1:
		w.add("multiple-records", path, "", "%s has %d SPF records", name, len(recs))
	case r == roleTop:
		w.add("no-record", path, "", "%s has no SPF record: %s", name, why)
	case r == roleInclude:
		w.add("include-no-record", path, "", "included %s has no SPF record: %s", name, why)
	default:
		w.add("redirect-no-record", path, "", "redirect target %s has no SPF record: %s", name, why)
	}
	return "", false
}

// walk checks the record of name and follows it, in evaluation order.
// stack holds the names being evaluated, to find loops.
func (w *walker) walk(name string, path []string, r role, stack map[string]bool) {
	if w.records >= maxRecords {
		return
	}
	w.records++
	txt, ok := w.fetch(name, path, r)
	if !ok {
		return
	}
	if r == roleTop {
		w.rep.Record = txt
	}
	rec, err := spf.ParseRecord(txt)
	if err != nil {
		if expOnlyMacro(txt) {
			w.add("exp-only-macro", path, "", "%s: %v", name, err)
		} else if n := w.pieces[name]; n > 1 {
			w.add("syntax", path, "", "%s: %v (the record is sent as %d strings, joined without spaces: RFC 7208 §3.3)", name, err, n)
		} else {
			w.add("syntax", path, "", "%s: %v", name, err)
		}
		return
	}
	if raw := w.octets[name]; raw != "" {
		// §4.6.1: terms are printable ASCII; the engine sees the text as
		// the DNS client hands it over, which may have escaped the others.
		if i := strings.IndexFunc(raw, func(r rune) bool { return r < 0x20 || r > 0x7e }); i >= 0 {
			w.add("syntax", path, "", "%s: the record holds octet 0x%02x, which is not printable ASCII", name, raw[i])
			return
		}
	}
	stack[name] = true
	defer delete(stack, name)

	allAt := -1
	for i := range rec.Terms {
		t := &rec.Terms[i]
		if t.Mechanism == "all" {
			allAt = i
			break
		}
		w.term(name, t, with(path, t.Text), stack)
	}
	if allAt >= 0 {
		t := &rec.Terms[allAt]
		tp := with(path, t.Text)
		switch {
		case t.Qualifier == spf.Pass:
			w.add("pass-all", tp, "", "%s: %q passes every host", name, t.Text)
		case t.Qualifier == spf.Neutral && r != roleInclude:
			w.add("neutral-all", tp, "", "%s ends in %q", name, t.Text)
		}
		if n := len(rec.Terms) - allAt - 1; n > 0 {
			w.add("terms-after-all", tp, "", "%s: %d term(s) after %q are never evaluated", name, n, t.Text)
		}
		if rec.Redirect != nil {
			w.add("redirect-with-all", with(path, "redirect="+rec.Redirect.Raw), "", "%s has both %q and redirect=%s", name, t.Text, rec.Redirect.Raw)
		}
		return
	}
	if rec.Redirect == nil {
		if r != roleInclude {
			w.add("no-all", path, "", "%s has neither all nor redirect=", name)
		}
		return
	}
	// §6.1: redirect applies when no mechanism matched; it counts as a
	// DNS-causing term (§4.6.4).
	rp := with(path, "redirect="+rec.Redirect.Raw)
	w.count(rp)
	w.follow(rec.Redirect, rp, roleRedirect, stack)
}

// follow walks the record of an include or redirect target.
func (w *walker) follow(d *spf.DomainSpec, path []string, r role, stack map[string]bool) {
	switch {
	case d.Macros != "":
		w.macroTarget(d, path)
	case !d.Valid:
		w.add("invalid-target", path, "", "%q is not a valid domain name", d.Name)
	case stack[d.Name]:
		w.add("loop", path, "", "%s is already being evaluated on this path", d.Name)
	default:
		if r == roleInclude {
			if first, dup := w.included[d.Name]; dup {
				w.add("duplicate-include", path, "", "%s is already included (at %s)", d.Name, first)
			} else {
				w.included[d.Name] = strings.Join(path, " > ")
			}
		}
		w.walk(d.Name, path, r, stack)
	}
}

func (w *walker) macroTarget(d *spf.DomainSpec, path []string) {
	w.add("macro-target", path, "", "%q depends on macros %s", d.Raw, macroList(d.Macros))
	if strings.Contains(d.Macros, "p") {
		w.usesPTR = true
		w.add("p-macro", path, "", "%q uses %%{p}", d.Raw)
	}
}

func macroList(letters string) string {
	var b []string
	for _, l := range letters {
		b = append(b, "%{"+string(l)+"}")
	}
	return strings.Join(b, ", ")
}

// count adds one DNS-causing term and reports the first one over the limit.
func (w *walker) count(path []string) {
	w.terms++
	if w.terms > spf.MaxDNSTerms && !w.overDNS {
		w.overDNS = true
		w.add("dns-terms", path, "", "a client that matches no term makes receivers evaluate more than %d DNS-causing terms; this is the %s", spf.MaxDNSTerms, ordinal(w.terms))
	}
}

// void adds a void lookup for the families in fam (0 IPv4, 1 IPv6).
func (w *walker) void(path []string, what string, fam ...int) {
	client := ""
	if len(fam) == 1 {
		client = familyName(fam[0])
	}
	w.add("void-lookup", path, client, "%s", what)
	for _, f := range fam {
		w.voids[f]++
		if w.voids[f] > spf.MaxVoidLookups && !w.overVoid[f] {
			w.overVoid[f] = true
			w.add("void-lookups", path, familyName(f), "%s clients that match no term cause more than %d void lookups; this is the %s", familyLabel(f), spf.MaxVoidLookups, ordinal(w.voids[f]))
		}
	}
}

func familyName(f int) string  { return [2]string{"ipv4", "ipv6"}[f] }
func familyLabel(f int) string { return [2]string{"IPv4", "IPv6"}[f] }

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

// term checks one mechanism before the record's all.
func (w *walker) term(domain string, t *spf.Term, path []string, stack map[string]bool) {
	switch t.Mechanism {
	case "ip4", "ip6":
		w.addrs = append(w.addrs, t.Prefix)
		if t.Qualifier == spf.Pass && (t.Prefix.Addr().Is4() && t.Prefix.Bits() < 8 || t.Prefix.Addr().Is6() && t.Prefix.Bits() < 16) {
			w.add("wide-network", path, "", "%q passes %s", t.Text, t.Prefix)
		}
		return
	}
	w.count(path)
	target := domain
	if t.Domain != nil {
		if t.Domain.Macros != "" {
			w.macroTarget(t.Domain, path)
			switch t.Mechanism {
			case "include":
			default:
				w.void(path, fmt.Sprintf("%q: a name made from macros usually does not exist", t.Text), 0, 1)
			}
			if t.Mechanism == "ptr" {
				w.ptr(path, t)
			}
			return
		}
		if !t.Domain.Valid {
			w.add("invalid-target", path, "", "%q is not a valid domain name", t.Domain.Name)
			if t.Mechanism != "include" {
				w.void(path, fmt.Sprintf("%q: the name cannot exist", t.Text), 0, 1)
			}
			return
		}
		target = t.Domain.Name
	}
	switch t.Mechanism {
	case "include":
		w.follow(&spf.DomainSpec{Raw: target, Name: target, Valid: true}, path, roleInclude, stack)
	case "a":
		a4, err4 := w.res.LookupA(w.ctx, target)
		a6, err6 := w.res.LookupAAAA(w.ctx, target)
		if w.dnsError(path, "A", target, err4) || w.dnsError(path, "AAAA", target, err6) {
			return
		}
		w.hostAddrs(a4, a6, t)
		switch {
		case len(a4) == 0 && len(a6) == 0:
			w.void(path, fmt.Sprintf("%s has no A or AAAA record", target), 0, 1)
		case len(a4) == 0:
			w.void(path, fmt.Sprintf("%s has no A record", target), 0)
		case len(a6) == 0:
			w.void(path, fmt.Sprintf("%s has no AAAA record", target), 1)
		}
	case "mx":
		names, err := w.res.LookupMX(w.ctx, target)
		if w.dnsError(path, "MX", target, err) {
			return
		}
		if len(names) == 0 {
			w.void(path, fmt.Sprintf("%s has no MX record", target), 0, 1)
			return
		}
		if len(names) > spf.MaxMXNames {
			w.add("mx-names", path, "", "%s has %d MX names", target, len(names))
			return
		}
		for _, n := range names {
			n = strings.TrimSuffix(n, ".")
			if n == "" {
				continue // null MX (RFC 7505)
			}
			a4, err4 := w.res.LookupA(w.ctx, n)
			a6, err6 := w.res.LookupAAAA(w.ctx, n)
			if w.dnsError(path, "A", n, err4) || w.dnsError(path, "AAAA", n, err6) {
				return
			}
			w.hostAddrs(a4, a6, t)
		}
	case "ptr":
		w.ptr(path, t)
	case "exists":
		a, err := w.res.LookupA(w.ctx, target)
		if w.dnsError(path, "A", target, err) {
			return
		}
		if len(a) == 0 {
			w.void(path, fmt.Sprintf("%s has no A record", target), 0, 1)
		} else if t.Qualifier == spf.Pass {
			// §5.7: a name without macros exists for every client alike.
			w.add("pass-all", path, "", "%q passes every host: %s has an A record whoever asks", t.Text, target)
		}
	}
}

func (w *walker) ptr(path []string, t *spf.Term) {
	w.usesPTR = true
	w.add("ptr", path, "", "%q asks for the client's reverse DNS", t.Text)
	w.void(path, fmt.Sprintf("%q: clients without reverse DNS make a void lookup", t.Text), 0, 1)
}

// dnsError records a lookup failure (NXDOMAIN is not one).
func (w *walker) dnsError(path []string, qtype, name string, err error) bool {
	if err == nil || errors.Is(err, spf.ErrNotFound) {
		return false
	}
	w.add("dns-error", path, "", "%s %s: %v", qtype, name, err)
	return true
}

func (w *walker) hostAddrs(a4, a6 []netip.Addr, t *spf.Term) {
	for _, a := range a4 {
		if p, err := a.Unmap().Prefix(t.CIDR4); err == nil {
			w.addrs = append(w.addrs, p)
		}
		w.hosts = append(w.hosts, a.Unmap())
	}
	for _, a := range a6 {
		if p, err := a.Prefix(t.CIDR6); err == nil {
			w.addrs = append(w.addrs, p)
		}
		w.hosts = append(w.hosts, a)
	}
}

// expOnlyMacro reports whether a record uses %{c}, %{r} or %{t} outside an
// exp= modifier: the likely cause of its syntax error.
func expOnlyMacro(txt string) bool {
	for f := range strings.FieldsSeq(txt) {
		if strings.HasPrefix(strings.ToLower(f), "exp=") {
			continue
		}
		l := strings.ToLower(f)
		for i := 0; i+2 < len(l); i++ {
			if l[i] == '%' && l[i+1] == '{' && strings.IndexByte("crt", l[i+2]) >= 0 {
				return true
			}
		}
	}
	return false
}
