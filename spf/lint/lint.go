// Package lint checks a domain's SPF records the way a domain owner needs:
// it walks the whole record tree (includes and redirects), reports what
// makes receivers return permerror or temperror and what works against the
// advice of RFC 7208, each with the path that leads to it, and it rewrites a
// record tree into plain ip4/ip6 ranges (Flatten).
//
// It parses records with the parser check_host() uses (spf.ParseRecord),
// asks DNS through the same client the milter uses, and also runs the
// engine itself (spf.Checker) for an IPv4 and an IPv6 client that nothing
// in the tree matches: the worst case for the processing limits.
//
// The walk follows the evaluation order of a client that matches no term,
// which evaluates every DNS-causing term before the first all: that is the
// worst case of RFC 7208 §4.6.4 for every path through the tree, since a
// match only ever stops evaluation earlier. Void lookups are counted per
// address family: an a mechanism asks A for IPv4 clients and AAAA for IPv6
// clients, so a name with only A records is a void lookup for IPv6 senders
// alone. Terms whose outcome depends on the client (ptr, domain-specs with
// macros) are counted as void, which is what most clients get.
package lint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/spfmilter/spfmilter/spf"
)

// Resolver is what lint and flatten need from DNS: the lookups the engine
// makes, and whole answers for what the lookups do not show (TTLs, the
// character-strings of a TXT record, the size of an answer, type SPF
// records). *resolver.Client is one.
type Resolver interface {
	spf.Resolver
	Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// Bounds of one walk. A receiver stops at 10 DNS-causing terms, so a tree
// needing more records than maxRecords is far beyond any limit already.
const (
	maxRecords = 64               // records fetched in one walk
	maxPTRHost = 16               // addresses whose PTR names are checked
	udpLimit   = dns.MinMsgSize   // 512 bytes: a reply without EDNS0 (RFC 1035 §2.3.4)
	maxString  = 255              // bytes in one TXT character-string (RFC 1035 §3.3)
	timeout    = 60 * time.Second // default bound of a whole lint or flatten
)

// Options configure Lint.
type Options struct {
	Resolver Resolver // required
	// NoMail are names that never send mail: each should publish a record
	// that authorises no host ("v=spf1 -all").
	NoMail []string
	// Clients are the addresses the engine evaluates the domain for; empty
	// means one IPv4 and one IPv6 address that no term of the tree lists.
	Clients []netip.Addr
	// Sender and HELO are the MAIL FROM and HELO of those evaluations; ""
	// means postmaster@domain and domain.
	Sender, HELO string
	// Timeout bounds the whole lint; 0 means one minute.
	Timeout time.Duration
	// Record, when set, is checked as the domain's SPF record in place of
	// the published one: a record about to be published.
	Record string
}

// Finding is one problem or remark.
type Finding struct {
	Severity Severity `json:"severity"`
	ID       string   `json:"id"`
	// Path leads from the domain to the term concerned: the domain, then
	// the include and redirect terms followed, then the term itself.
	Path []string `json:"path"`
	// Client is "ipv4" or "ipv6" when only clients of that family are
	// concerned.
	Client  string `json:"client,omitempty"`
	Message string `json:"message"`
	Advice  string `json:"advice"`
}

// Evaluation is the engine's verdict for one client.
type Evaluation struct {
	Client      string     `json:"client"`
	Result      spf.Result `json:"result"`
	Mechanism   string     `json:"mechanism"`
	Problem     string     `json:"problem"`
	DNSLookups  int        `json:"dns_lookups"`
	VoidLookups int        `json:"void_lookups"`
}

// Report is the outcome of Lint.
type Report struct {
	Domain string `json:"domain"`
	Record string `json:"record"` // the domain's SPF record, "" when none
	// DNSTerms is the most DNS-causing terms any client makes receivers
	// evaluate (a client that matches no term); VoidIPv4 and VoidIPv6 the
	// void lookups such a client causes, by address family.
	DNSTerms    int          `json:"dns_terms"`
	VoidIPv4    int          `json:"void_lookups_ipv4"`
	VoidIPv6    int          `json:"void_lookups_ipv6"`
	Evaluations []Evaluation `json:"evaluations"`
	Findings    []Finding    `json:"findings"`
}

// Errors is the number of findings of severity error.
func (r *Report) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

// Lint checks domain's SPF record tree. The error is only for a domain that
// is not a domain name or for missing options; everything about the records
// is a Finding.
func Lint(ctx context.Context, domain string, opts Options) (*Report, error) {
	if opts.Resolver == nil {
		return nil, errors.New("lint: no resolver")
	}
	d, err := normalize(domain)
	if err != nil {
		return nil, err
	}
	noMail := make([]string, 0, len(opts.NoMail))
	for _, n := range opts.NoMail {
		nn, err := normalize(n)
		if err != nil {
			return nil, err
		}
		noMail = append(noMail, nn)
	}
	if opts.Record != "" {
		if !spf.IsRecord(opts.Record) {
			return nil, fmt.Errorf(`lint: the record to check does not start with "v=spf1 "`)
		}
		opts.Resolver = &proposed{Resolver: opts.Resolver, records: map[string]string{d: opts.Record}}
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(opts.Timeout, timeout))
	defer cancel()
	w := newWalker(ctx, opts.Resolver, d)
	w.walk(d, []string{d}, roleTop, map[string]bool{})
	w.rep.DNSTerms = w.terms
	w.rep.VoidIPv4, w.rep.VoidIPv6 = w.voids[0], w.voids[1]
	w.checkPTRNames(d)
	w.checkNoMail(d, noMail)
	w.evaluate(d, opts)
	return w.rep, nil
}

// normalize checks a domain given by the user.
func normalize(domain string) (string, error) {
	d := strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if strings.ContainsFunc(d, func(r rune) bool { return r >= 0x80 }) {
		// A U-label name becomes its A-labels, as check_host() asks for it.
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", fmt.Errorf("lint: %q is not a domain name", domain)
		}
		d = a
	}
	d = strings.ToLower(d)
	if _, ok := dns.IsDomainName(d); !ok || !strings.Contains(d, ".") || strings.ContainsAny(d, " @/%") {
		return "", fmt.Errorf("lint: %q is not a domain name", domain)
	}
	return d, nil
}

// role is how a record was reached.
type role int

const (
	roleTop role = iota
	roleInclude
	roleRedirect
)

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

// checkRaw looks at the whole TXT answer of name once, and at its type SPF
// records: what the engine's lookups do not show.
func (w *walker) checkRaw(name string, path []string) {
	if w.raw[name] {
		return
	}
	w.raw[name] = true
	if m, err := w.res.Exchange(w.ctx, name, dns.TypeTXT); err == nil {
		// The size of the reply a client without EDNS0 would need
		// (RFC 7208 §3.4).
		plain := m.Copy()
		plain.Extra = slices.DeleteFunc(plain.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
		plain.Compress = true
		if n := plain.Len(); n > udpLimit {
			w.add("udp-size", path, "", "the TXT answer for %s is %d bytes, over the %d a UDP reply without EDNS0 holds; receivers must retry over TCP", name, n, udpLimit)
		}
		for _, rr := range m.Answer {
			t, ok := rr.(*dns.TXT)
			if !ok {
				continue
			}
			joined := unescape(strings.Join(t.Txt, ""))
			if !spf.IsRecord(joined) {
				continue
			}
			w.octets[name] = joined
			w.pieces[name] = len(t.Txt)
			if len(joined) > maxString {
				w.add("long-record", path, "", "the SPF record of %s is %d bytes, published as %d strings", name, len(joined), len(t.Txt))
			}
		}
	}
	if m, err := w.res.Exchange(w.ctx, name, dns.TypeSPF); err == nil {
		for _, rr := range m.Answer {
			if s, ok := rr.(*dns.SPF); ok && spf.IsRecord(strings.Join(s.Txt, "")) {
				w.add("spf-type99", path, "", "%s publishes a type SPF (99) record", name)
				break
			}
		}
	}
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

// checkPTRNames looks at the reverse entries of the hosts the tree names,
// when it uses ptr or %{p}: names beyond the tenth are never validated.
func (w *walker) checkPTRNames(domain string) {
	if !w.usesPTR {
		return
	}
	seen := map[netip.Addr]bool{}
	for _, a := range w.hosts {
		if seen[a] || len(seen) >= maxPTRHost {
			continue
		}
		seen[a] = true
		names, err := w.res.LookupPTR(w.ctx, a)
		if err == nil && len(names) > spf.MaxPTRNames {
			w.add("ptr-names", []string{domain}, "", "%s has %d PTR names", a, len(names))
		}
	}
}

// checkNoMail checks the names that never send mail: those given, and the
// domain itself when its null MX (RFC 7505) says it takes no mail.
func (w *walker) checkNoMail(domain string, names []string) {
	mx, err := w.res.LookupMX(w.ctx, domain)
	if err == nil && len(mx) == 1 && strings.TrimSuffix(mx[0], ".") == "" && w.rep.Record != "" {
		if authorises(w.rep.Record) {
			w.add("nonsending-host", []string{domain}, "", "%s declares with a null MX that it takes no mail, yet its SPF record authorises senders", domain)
		}
	}
	for _, n := range names {
		txts, err := w.res.LookupTXT(w.ctx, n)
		if err != nil && !errors.Is(err, spf.ErrNotFound) {
			w.add("dns-error", []string{n}, "", "TXT %s: %v", n, err)
			continue
		}
		var recs []string
		for _, t := range txts {
			if spf.IsRecord(t) {
				recs = append(recs, t)
			}
		}
		switch {
		case len(recs) == 0:
			w.add("nonsending-host", []string{n}, "", "%s sends no mail but has no SPF record", n)
		case len(recs) > 1:
			w.add("multiple-records", []string{n}, "", "%s has %d SPF records", n, len(recs))
		case authorises(recs[0]):
			w.add("nonsending-host", []string{n}, "", "%s sends no mail but its SPF record %q authorises senders", n, recs[0])
		}
	}
}

// authorises reports whether a record can pass anyone: any mechanism or
// redirect before a non-pass all. A record that does not parse passes no
// one.
func authorises(txt string) bool {
	rec, err := spf.ParseRecord(txt)
	if err != nil {
		return false
	}
	for _, t := range rec.Terms {
		if t.Mechanism == "all" {
			return t.Qualifier == spf.Pass
		}
		if t.Qualifier == spf.Pass {
			return true
		}
	}
	return rec.Redirect != nil
}

// unescape turns the presentation form miekg/dns gives TXT strings in
// (\DDD and \X escapes) back into octets.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0'); n < 256 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

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

// evaluate runs the engine for the probe clients.
func (w *walker) evaluate(domain string, opts Options) {
	clients := opts.Clients
	if len(clients) == 0 {
		clients = probes(w.addrs)
	}
	sender := cmp.Or(opts.Sender, "postmaster@"+domain)
	c := &spf.Checker{Resolver: w.res}
	errs := w.rep.Errors()
	for _, ip := range clients {
		o := c.CheckMailFrom(w.ctx, spf.Args{IP: ip, Sender: sender, HELO: cmp.Or(opts.HELO, domain)})
		w.rep.Evaluations = append(w.rep.Evaluations, Evaluation{
			Client: ip.String(), Result: o.Result, Mechanism: o.Mechanism, Problem: o.Problem,
			DNSLookups: o.DNSLookups, VoidLookups: o.VoidLookups,
		})
		// The walk explains most of these; the engine's word stands for
		// what it did not catch.
		if errs == 0 && (o.Result == spf.Permerror || o.Result == spf.Temperror) {
			w.add(string(o.Result), []string{domain}, familyOf(ip), "the engine returns %s for %s: %s", o.Result, ip, o.Problem)
		}
	}
}

func familyOf(ip netip.Addr) string {
	if ip.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// probes picks one IPv4 and one IPv6 address that no network of the tree
// contains: from the documentation ranges (RFC 5737, RFC 3849) if one is
// free, else from ranges no sender uses (RFC 6598 shared space, the
// reserved 240.0.0.0/4, the discard-only 100::/64 of RFC 6666).
func probes(listed []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, family := range [][]string{
		{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "100.64.0.0/24", "240.0.0.0/24"},
		{"2001:db8::/120", "2001:db8:ffff::/120", "100::/120"},
	} {
		for _, base := range family {
			if a, ok := freeAddr(netip.MustParsePrefix(base), listed); ok {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

func freeAddr(in netip.Prefix, listed []netip.Prefix) (netip.Addr, bool) {
	a := in.Addr().Next()
	for range 256 {
		if !in.Contains(a) {
			break
		}
		if !slices.ContainsFunc(listed, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return a, true
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}
