package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// A diffWorld is one random but plausible DNS world for the differential
// test: SPF records with every mechanism, modifier and macro form, the
// A/AAAA/MX/PTR data they refer to, names that do not exist, a few syntax
// errors, and the SMTP clients to check against it.
type diffWorld struct {
	Index int
	Zone  *spftest.Resolver
	Cases []diffCase
}

// diffCase is one SMTP client: its address, MAIL FROM and HELO.
type diffCase struct {
	IP     string
	Sender string // "" is the null sender
	HELO   string
	// HELODomain is set when HELO is a domain name that the HELO identity
	// is checked for; address literals and single labels are not.
	HELODomain bool
}

// Dump is the world as zone-file-like text, for reproducing a difference.
func (w *diffWorld) Dump() string {
	var b strings.Builder
	z := w.Zone
	put := func(typ string, m map[string][]string) {
		for _, k := range slices.Sorted(mapsKeys(m)) {
			for _, v := range m[k] {
				fmt.Fprintf(&b, "%-28s %-5s %q\n", k, typ, v)
			}
		}
	}
	putA := func(typ string, m map[string][]netip.Addr) {
		for _, k := range slices.Sorted(mapsKeys(m)) {
			for _, v := range m[k] {
				fmt.Fprintf(&b, "%-28s %-5s %s\n", k, typ, v)
			}
		}
	}
	put("TXT", z.TXT)
	putA("A", z.A)
	putA("AAAA", z.AAAA)
	put("MX", z.MX)
	put("PTR", z.PTR)
	for _, k := range slices.Sorted(mapsKeys(z.CNAME)) {
		fmt.Fprintf(&b, "%-28s %-5s %s\n", k, "CNAME", z.CNAME[k])
	}
	for _, k := range slices.Sorted(mapsKeys(z.Fail)) {
		fmt.Fprintf(&b, "%-34s %v\n", k, z.Fail[k])
	}
	return b.String()
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The names a world is made of. Every world uses the same names with
// different data, so that a difference is easy to read.
var (
	diffRoots = []string{"example.com", "example.org", "example.net", "corp.example", "sub.example.com"}
	diffOther = []string{"inc1.example", "inc2.example", "inc3.example", "spf.example.net", "_spf.example.org",
		"red.example", "red2.example"}
	diffHosts = []string{"h1.example.com", "h2.example.org", "mx1.example.net", "mx2.example.net",
		"mail.corp.example", "relay.example"}
	diffVoid = []string{"void.example", "nx.example.com", "gone.example.org"}
	// diffBroken answers SERVFAIL to every question.
	diffBroken = "broken.example"
	diffExp    = []string{"exp.example", "why.example.com", "explain.example.org"}

	diffLocals = []string{"user", "Postmaster", "first.last", "a+tag", "UPPER", "x-y_z", "o'hara",
		"a.b.c.d", "user=x", "\"Macro Error\""}
)

// diffGen builds one world from its own random stream.
type diffGen struct {
	rnd     *rand.Rand
	z       *spftest.Resolver
	records map[string]bool // owners given an SPF decision already
	pending []string        // owners still to decide
	clients []netip.Addr    // the world's client addresses (unmapped)
	cases   []diffCase
	exists  []existsName // macro domain-specs of exists terms, filled in later
}

type existsName struct {
	spec, owner string
}

func (g *diffGen) n(k int) int           { return g.rnd.IntN(k) }
func (g *diffGen) p(f float64) bool      { return g.rnd.Float64() < f }
func pick[T any](g *diffGen, s []T) T    { return s[g.rnd.IntN(len(s))] }
func (g *diffGen) addTXT(name, t string) { g.z.TXT[name] = append(g.z.TXT[name], t) }

// newDiffWorld builds world number i of the run with the given seed; the
// same (seed, i) always gives the same world.
func newDiffWorld(seed uint64, i int) *diffWorld {
	g := &diffGen{
		rnd: rand.New(rand.NewPCG(seed, uint64(i))),
		z: &spftest.Resolver{
			TXT:   map[string][]string{},
			A:     map[string][]netip.Addr{},
			AAAA:  map[string][]netip.Addr{},
			MX:    map[string][]string{},
			PTR:   map[string][]string{},
			CNAME: map[string]string{},
			Fail:  map[string]error{"* " + diffBroken: spftest.ErrServFail},
		},
		records: map[string]bool{},
	}
	g.clients = []netip.Addr{
		netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + g.n(250))}),
		netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + g.n(250))}),
		netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(g.n(3)), 14: byte(g.n(256)), 15: byte(1 + g.n(250))}),
	}
	g.hostData()
	for _, r := range diffRoots {
		g.want(r)
	}
	for _, h := range diffHosts {
		// HELO names: often the usual "a -all", sometimes a full record.
		switch x := g.n(10); {
		case x < 3:
			g.addTXT(h, pick(g, []string{"v=spf1 a -all", "v=spf1 a mx ~all", "v=spf1 a/24 ?all", "v=spf1 -all", "v=spf1 ptr -all"}))
		case x < 5:
			g.want(h)
		}
	}
	for len(g.pending) > 0 {
		name := g.pending[0]
		g.pending = g.pending[1:]
		g.publish(name)
	}
	g.makeCases()
	g.existsData()
	g.ptrData()
	return &diffWorld{Index: i, Zone: g.z, Cases: g.cases}
}

// want marks name as needing an SPF decision (a record, none, or two).
func (g *diffGen) want(name string) {
	if !g.records[name] {
		g.records[name] = true
		g.pending = append(g.pending, name)
	}
}

// addr is an address that a client matches sometimes: a client itself, a
// neighbour in its /24 or /64, or an unrelated one.
func (g *diffGen) addr(v6 bool) netip.Addr {
	var pool []netip.Addr
	for _, c := range g.clients {
		if c.Is6() == v6 {
			pool = append(pool, c)
		}
	}
	c := pick(g, pool)
	switch g.n(4) {
	case 0, 1:
		return c
	case 2:
		b := c.AsSlice()
		b[len(b)-1] ^= byte(1 + g.n(200))
		a, _ := netip.AddrFromSlice(b)
		return a
	default:
		if v6 {
			return netip.MustParseAddr("2001:db8:ffff::" + fmt.Sprint(1+g.n(9)))
		}
		return netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + g.n(250))})
	}
}

// hostData gives hosts and roots A, AAAA and MX data.
func (g *diffGen) hostData() {
	names := append(append(append([]string{}, diffHosts...), diffRoots...), diffOther...)
	for _, h := range names {
		if g.p(0.6) {
			for range 1 + g.n(2) {
				g.z.A[h] = append(g.z.A[h], g.addr(false))
			}
		}
		if g.p(0.4) {
			g.z.AAAA[h] = append(g.z.AAAA[h], g.addr(true))
		}
	}
	for _, r := range append(append([]string{}, diffRoots...), diffOther...) {
		if !g.p(0.6) {
			continue
		}
		n := 1 + g.n(3)
		if g.p(0.05) {
			n = 11 + g.n(2) // over the §4.6.4 limit of 10 MX names
		}
		for j := range n {
			switch {
			case j >= len(diffHosts) || g.p(0.15):
				g.z.MX[r] = append(g.z.MX[r], fmt.Sprintf("mx%d.%s", j, pick(g, diffVoid)))
			default:
				g.z.MX[r] = append(g.z.MX[r], pick(g, diffHosts))
			}
		}
	}
	if g.p(0.2) {
		// A name reached through a CNAME.
		g.z.CNAME["alias.example"] = pick(g, diffHosts)
	}
}

// publish decides name's SPF data: usually one record, sometimes none, two,
// or one next to unrelated TXT records.
func (g *diffGen) publish(name string) {
	if g.p(0.15) {
		g.addTXT(name, "site-verification=abc123")
	}
	switch x := g.n(100); {
	case x < 6:
		return // no SPF record: none, or permerror through include
	case x < 9:
		g.addTXT(name, g.record(name, 0))
		g.addTXT(name, g.record(name, 0))
		return
	case x < 11:
		g.addTXT(name, pick(g, []string{"v=spf1", "v=spf1 ", "v=spf10 -all", "spf1 -all", "v=spf1-all", "V=SPF1 -all"}))
		return
	case x < 12:
		// Octets outside the record's ABNF (RFC 7208 §4.6, §7.1).
		g.addTXT(name, pick(g, []string{"v=spf1 a:caf\xe9.example -all", "v=spf1 exists:caf\xc3\xa9.example ~all",
			"v=spf1 ip4:192.0.2.1\t-all", "v=spf1 -all \"quoted\""}))
		return
	}
	g.addTXT(name, g.record(name, 0))
}

func (g *diffGen) qual() string {
	return pick(g, []string{"", "", "", "+", "-", "-", "~", "?"})
}

func (g *diffGen) cidr() string {
	var s string
	if g.p(0.3) {
		s += "/" + fmt.Sprint(pick(g, []int{8, 16, 24, 24, 28, 30, 32}))
	}
	if g.p(0.2) {
		s += "//" + fmt.Sprint(pick(g, []int{0, 32, 48, 64, 64, 96, 128}))
	}
	return s
}

// target is a domain-spec that names another part of the world: a name
// that gets a record of its own, a host, a void name or a macro.
func (g *diffGen) target(spfWanted bool) string {
	switch x := g.n(100); {
	case x < 2:
		return diffBroken
	case x < 8:
		return pick(g, diffVoid)
	case x < 16:
		return g.macroDomain()
	case x < 20:
		return strings.ToUpper(pick(g, diffOther))
	case x < 23:
		return pick(g, diffOther) + "."
	case x < 26 && !spfWanted:
		if len(g.z.CNAME) > 0 {
			return "alias.example"
		}
	}
	if spfWanted {
		t := pick(g, append(append([]string{}, diffOther...), diffRoots...))
		g.want(t)
		return t
	}
	return pick(g, append(append([]string{}, diffHosts...), diffRoots...))
}

// macroDomain is a domain-spec with macros whose expansion usually
// exists in the world.
func (g *diffGen) macroDomain() string {
	return pick(g, []string{
		"%{d}", "%{o}", "%{h}", "%{d2}", "%{d1r}.example",
		"%{l}.users.example", "%{l-}.users.example", "%{ir}.%{v}.rev.example",
		"%{i}.list.example", "%{i2r}.list.example", "%{o}._spf.example",
		"%{d}.%{h}.ok.example", "%{l1r+-}.users.example", "%{p}.ptr.example", "%{l2r.=+}.users.example",
		"%{d3r}.rev.example", "%{i}._%{v}.list.example",
	})
}

// record builds an SPF record for owner; depth bounds the include and
// redirect nesting so that most trees stay near the 10-term limit rather
// than far over it.
func (g *diffGen) record(owner string, depth int) string {
	terms := []string{"v=spf1"}
	n := g.n(5)
	if g.p(0.12) {
		n = 8 + g.n(5) // near the 10-term limit
	}
	for range n {
		terms = append(terms, g.term(owner))
	}
	if g.p(0.08) {
		terms = append(terms, g.syntaxError())
	}
	if g.p(0.3) {
		terms = append(terms, "exp="+pick(g, append(diffExp, diffVoid[0])))
		g.explanation()
	}
	switch {
	case g.p(0.2):
		terms = append(terms, "redirect="+g.target(true))
	case g.p(0.65):
		terms = append(terms, g.qual()+"all")
	}
	if g.p(0.06) {
		terms = append(terms, pick(g, []string{"foo=bar", "x-ext=%{d}", "moo.cow-far_out=man:dog/cat"}))
	}
	if g.p(0.1) {
		slices.Reverse(terms[1:])
	}
	if g.p(0.08) {
		// Mechanism and modifier names are case-insensitive (RFC 7208 §4.6.1,
		// ABNF strings are, RFC 5234 §2.3).
		for i := 1; i < len(terms); i++ {
			if name, rest, ok := cutName(terms[i]); ok && g.p(0.5) {
				terms[i] = strings.ToUpper(name) + rest
			}
		}
	}
	sep := " "
	if g.p(0.05) {
		sep = "  "
	}
	return strings.Join(terms, sep)
}

func (g *diffGen) term(owner string) string {
	q := g.qual()
	switch g.n(16) {
	case 0, 1:
		return q + "include:" + g.target(true)
	case 2, 3:
		if g.p(0.4) {
			return q + "a" + g.cidr()
		}
		return q + "a:" + g.target(false) + g.cidr()
	case 4, 5:
		if g.p(0.4) {
			return q + "mx" + g.cidr()
		}
		return q + "mx:" + g.target(false) + g.cidr()
	case 6:
		if g.p(0.5) {
			return q + "ptr"
		}
		return q + "ptr:" + pick(g, append(append([]string{}, diffRoots...), "example", "example.net"))
	case 7, 8, 9:
		a := g.addr(false)
		s := q + "ip4:" + a.String()
		if g.p(0.5) {
			s += "/" + fmt.Sprint(pick(g, []int{0, 8, 16, 24, 25, 31, 32}))
		}
		return s
	case 10, 11:
		a := g.addr(true)
		s := q + "ip6:" + a.String()
		if g.p(0.5) {
			s += "/" + fmt.Sprint(pick(g, []int{0, 32, 48, 64, 112, 127, 128}))
		}
		return s
	case 12, 13:
		spec := g.macroDomain()
		if g.p(0.3) {
			spec = pick(g, append(append([]string{}, diffHosts...), diffVoid...))
		}
		g.exists = append(g.exists, existsName{spec, owner})
		return q + "exists:" + spec
	case 14:
		return q + "all"
	default:
		return pick(g, []string{"ip4:" + g.clients[0].String(), "a:" + pick(g, diffHosts), "mx:" + pick(g, diffRoots)})
	}
}

// cutName splits a term into its qualifier and name, and the rest.
func cutName(term string) (name, rest string, ok bool) {
	i := strings.IndexAny(term, ":=/")
	if i < 0 {
		i = len(term)
	}
	return term[:i], term[i:], i > 0
}

// syntaxError is a term that makes the record a permerror (or, for some
// implementations, a debated case).
func (g *diffGen) syntaxError() string {
	return pick(g, []string{
		"moo", "a:", "ip4:192.0.2.300", "ip4:192.0.2.1/33", "ip6:2001:db8::/129", "include:",
		"redirect=", "exists:", "a:%{x}.example", "a:%", "a:%{d", "-exp=exp.example", "ip4:192.0.2.1/024",
		"a:foo.example..", "mx:example.123", "=all", "all:foo", "a//129", "a/24/64", "ptr/24",
		"redirect=red.example redirect=red2.example", "exp=exp.example exp=why.example.com",
		"include:%{d3}", "a:%{l0}.example", "exists:%{ir}.%{v}._spf.%{d}", "ip4:::1", "ip6:192.0.2.1",
		"a:%{c}.example", "exists:%{r}.example", "foo=%{x}", "foo=%", "ip4:192.0.2.01", "a:example.com/0",
		"ip6:::ffff:" + g.clients[0].String(), "ip6:::ffff:0:0/96", "exp=%{d}.exp.example",
	})
}

// explanation gives the exp= names their TXT data (sometimes none, two,
// or text with a macro error).
func (g *diffGen) explanation() {
	for _, e := range diffExp {
		if _, ok := g.z.TXT[e]; ok || g.p(0.1) {
			continue
		}
		switch x := g.n(100); {
		case x < 5:
			g.addTXT(e, "first")
			g.addTXT(e, "second")
		case x < 9:
			g.addTXT(e, "bad macro %{x} here")
		default:
			var parts []string
			for range 1 + g.n(4) {
				parts = append(parts, pick(g, []string{
					"Sender %{s} is not allowed", "from %{i}", "see %{ir}.%{v}.example", "for %{d}",
					"helo %{h}", "local %{l} at %{o}", "%{l-}", "%{L}", "%{S}", "%{c}", "%{r}", "%{d2}",
					"%{o1r}", "%{i2r}", "%%", "%_", "%-", "%{l1r+-}", "%{p}", "v=spf1 text",
					"https://www.example.com/why?s=%{S}&ip=%{I}",
					"say \"no\"", "back\\slash", "tab\there", "caf\xc3\xa9", "caf\xe9",
				}))
			}
			g.addTXT(e, strings.Join(parts, " "))
		}
	}
}

// makeCases picks the clients: addresses (IPv4, IPv6, IPv4-mapped),
// senders (odd local parts, upper case, trailing dot, null) and HELO names
// (domains, address literals, single labels).
func (g *diffGen) makeCases() {
	for range 4 {
		var c diffCase
		ip := pick(g, g.clients)
		c.IP = ip.String()
		if ip.Is4() && g.p(0.15) {
			c.IP = netip.AddrFrom16(ip.As16()).String() // ::ffff:a.b.c.d
		}
		helo := pick(g, append(append(append([]string{}, diffHosts...), diffRoots...), diffVoid...))
		c.HELODomain = true
		switch x := g.n(100); {
		case x < 8:
			helo = strings.ToUpper(helo)
		case x < 12:
			helo += "."
		case x < 16:
			helo = "[" + ip.String() + "]"
			c.HELODomain = false
		case x < 18:
			helo = "localhost"
			c.HELODomain = false
		}
		c.HELO = helo
		dom := pick(g, diffRoots)
		if g.p(0.1) {
			dom = pick(g, append(diffOther, diffVoid...))
		}
		switch x := g.n(100); {
		case x < 8:
			dom = strings.ToUpper(dom)
		case x < 12:
			dom = strings.ToUpper(dom[:1]) + dom[1:]
		case x < 15:
			dom += "."
		}
		local := "user"
		if g.p(0.5) {
			local = pick(g, diffLocals)
		}
		c.Sender = local + "@" + dom
		if g.p(0.1) && c.HELODomain {
			c.Sender = ""
		}
		g.cases = append(g.cases, c)
	}
}

// existsData gives most expansions of the exists terms an A record, so
// that a macro expanded right matches and one expanded wrong does not.
func (g *diffGen) existsData() {
	for _, e := range g.exists {
		for _, c := range g.cases {
			name, ok := expandForWorld(e.spec, c, e.owner)
			if ok && g.p(0.6) {
				g.z.A[name] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
			}
		}
	}
}

// ptrData gives the clients reverse names: some that confirm (their A or
// AAAA data holds the client), some that do not, some under the roots.
func (g *diffGen) ptrData() {
	for _, c := range g.clients {
		if g.p(0.3) {
			continue
		}
		for range 1 + g.n(3) {
			name := pick(g, append(append([]string{}, diffHosts...), diffRoots...))
			if g.p(0.3) {
				name = fmt.Sprintf("host%d.%s", g.n(9), pick(g, diffRoots))
			}
			g.z.PTR[c.String()] = append(g.z.PTR[c.String()], name)
			if g.p(0.6) {
				if c.Is4() {
					g.z.A[name] = append(g.z.A[name], c)
				} else {
					g.z.AAAA[name] = append(g.z.AAAA[name], c)
				}
			}
		}
	}
}

// expandForWorld expands the simple macro forms macroDomain uses, for the
// case c and the record published at owner, so that the world can hold the
// names a correct evaluator will ask for. It is not the engine's expander
// and only needs to be right for those forms: a wrong name here only
// costs a match, for every implementation alike.
func expandForWorld(spec string, c diffCase, owner string) (string, bool) {
	sender := c.Sender
	if sender == "" {
		sender = "postmaster@" + c.HELO
	}
	at := strings.LastIndexByte(sender, '@')
	if at < 0 {
		return "", false
	}
	local, dom := sender[:at], strings.TrimSuffix(sender[at+1:], ".")
	ip, err := netip.ParseAddr(c.IP)
	if err != nil {
		return "", false
	}
	ip = ip.Unmap()
	iv, v := ip.String(), "in-addr"
	if ip.Is6() {
		v = "ip6"
		var nib []string
		for _, b := range ip.As16() {
			nib = append(nib, fmt.Sprintf("%x", b>>4), fmt.Sprintf("%x", b&15))
		}
		iv = strings.Join(nib, ".")
	}
	vals := map[byte]string{'s': sender, 'l': local, 'o': dom, 'd': strings.TrimSuffix(owner, "."),
		'i': iv, 'v': v, 'h': strings.TrimSuffix(c.HELO, ".")}
	var b strings.Builder
	for i := 0; i < len(spec); i++ {
		if spec[i] != '%' {
			b.WriteByte(spec[i])
			continue
		}
		end := strings.IndexByte(spec[i:], '}')
		if i+1 >= len(spec) || spec[i+1] != '{' || end < 0 {
			return "", false
		}
		m := spec[i+2 : i+end]
		i += end
		val, ok := vals[m[0]]
		if !ok {
			return "", false
		}
		m = m[1:]
		n := 0
		for len(m) > 0 && m[0] >= '0' && m[0] <= '9' {
			n = n*10 + int(m[0]-'0')
			m = m[1:]
		}
		rev := strings.HasPrefix(m, "r")
		m = strings.TrimPrefix(m, "r")
		delims := m
		if delims == "" {
			delims = "."
		}
		parts := strings.FieldsFunc(val, func(r rune) bool { return strings.ContainsRune(delims, r) })
		if rev {
			slices.Reverse(parts)
		}
		if n > 0 && n < len(parts) {
			parts = parts[len(parts)-n:]
		}
		b.WriteString(strings.Join(parts, "."))
	}
	return strings.ToLower(b.String()), true
}
