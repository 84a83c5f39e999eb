package spf

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"fmt"
)

// miniResolver is a minimal in-package fake (spftest imports this package,
// so internal tests cannot use it).
type miniResolver struct {
	PTR     map[string][]string
	A       map[string][]netip.Addr
	Fail    bool
	queries []string
}

func (m *miniResolver) LookupTXT(context.Context, string) ([]string, error) { return nil, ErrNotFound }
func (m *miniResolver) LookupAAAA(context.Context, string) ([]netip.Addr, error) {
	return nil, ErrNotFound
}
func (m *miniResolver) LookupMX(context.Context, string) ([]string, error) { return nil, ErrNotFound }

func (m *miniResolver) LookupA(_ context.Context, name string) ([]netip.Addr, error) {
	m.queries = append(m.queries, "A "+name)
	return m.A[name], nil
}

func (m *miniResolver) LookupPTR(_ context.Context, ip netip.Addr) ([]string, error) {
	m.queries = append(m.queries, "PTR "+ip.String())
	if m.Fail {
		return nil, fmt.Errorf("SERVFAIL")
	}
	return m.PTR[ip.String()], nil
}

func testEvaluator(ip string, w *miniResolver) *evaluator {
	if w == nil {
		w = &miniResolver{}
	}
	return &evaluator{
		ctx:     context.Background(),
		res:     w,
		ip:      netip.MustParseAddr(ip).Unmap(),
		sender:  "strong-bad@email.example.com",
		local:   "strong-bad",
		sdomain: "email.example.com",
		helo:    "mx.example.org",
		now:     time.Unix(1700000000, 0),
	}
}

func expandString(t *testing.T, e *evaluator, s string, explain bool) string {
	t.Helper()
	m, err := parseMacroString(s, explain)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return string(expandAll(e, &m, "email.example.com"))
}

// expandAll is the whole expansion of m, without the caps of expandExplain
// and expandDomainSpec.
func expandAll(e *evaluator, m *macroString, domain string) []byte {
	var buf []byte
	for i := range m.parts {
		p := &m.parts[i]
		if p.letter == 0 {
			buf = append(buf, p.lit...)
		} else {
			buf = appendTransformed(buf, e.macroValue(p.letter, domain), p, -1)
		}
	}
	return buf
}

// The examples of RFC 7208 §7.4, plus every letter and the escapes.
func TestMacroExpansion(t *testing.T) {
	e4 := testEvaluator("192.0.2.3", nil)
	e6 := testEvaluator("2001:db8::cb01", nil)
	for _, tc := range []struct {
		e       *evaluator
		in, out string
		explain bool
	}{
		{e4, "%{s}", "strong-bad@email.example.com", false},
		{e4, "%{o}", "email.example.com", false},
		{e4, "%{d}", "email.example.com", false},
		{e4, "%{d4}", "email.example.com", false},
		{e4, "%{d3}", "email.example.com", false},
		{e4, "%{d2}", "example.com", false},
		{e4, "%{d1}", "com", false},
		{e4, "%{dr}", "com.example.email", false},
		{e4, "%{d2r}", "example.email", false},
		{e4, "%{l}", "strong-bad", false},
		{e4, "%{l-}", "strong.bad", false},
		{e4, "%{lr}", "strong-bad", false},
		{e4, "%{lr-}", "bad.strong", false},
		{e4, "%{l1r-}", "strong", false},
		{e4, "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com", false},
		{e4, "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com", false},
		{e4, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com", false},
		{e4, "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com", false},
		{e4, "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net", false},
		{e6, "%{ir}.%{v}._spf.%{d2}", "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com", false},
		{e6, "%{i}", "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1", false},
		{e6, "%{c}", "2001:db8::cb01", true},
		{e4, "%{c}", "192.0.2.3", true},
		{e4, "%{h}", "mx.example.org", false},
		{e4, "%{h1}", "org", false},
		{e4, "%{r}", "unknown", true},
		{e4, "%{t}", "1700000000", true},
		{e4, "%{p}", "unknown", false},
		// Upper-case letters are URL-escaped after transformation (§7.3).
		{e4, "%{S}", "strong-bad%40email.example.com", false},
		{e4, "%{L}", "strong-bad", false},
		{e4, "%{d2R}", "example.email", false},
		{e4, "%%%_%-", "% %20", false},
		// Delimiters: any of them splits, parts are joined with ".".
		{e4, "%{s-.}", "strong.bad@email.example.com", false},
		{e4, "%{s2r-.}", "bad@email.strong", false},
		{e4, "%{l+,/_=}", "strong-bad", false},
		{e4, "%{d99}", "email.example.com", false},
		{e4, "%{d999999999999}", "email.example.com", false},
		{e4, "see %{d} now", "see email.example.com now", true},
	} {
		if got := expandString(t, tc.e, tc.in, tc.explain); got != tc.out {
			t.Errorf("%s: got %q, want %q", tc.in, got, tc.out)
		}
	}
}

func TestMacroSyntax(t *testing.T) {
	for _, tc := range []struct {
		in      string
		explain bool
		err     error
	}{
		{"%", false, errMacroSyntax},
		{"%a", false, errMacroSyntax},
		{"%{", false, errMacroSyntax},
		{"%{}", false, errMacroSyntax},
		{"%{d", false, errMacroSyntax},
		{"%{x}", false, errMacroSyntax},
		{"%{d0}", false, errMacroZero},
		{"%{d2x}", false, errMacroSyntax},
		{"%{s-@}", false, errMacroSyntax}, // "@" is not a delimiter
		{"%{dr2}", false, errMacroSyntax},
		{"%{c}", false, errMacroLetter},
		{"%{r}", false, errMacroLetter},
		{"%{t}", false, errMacroLetter},
		{"a b", false, errMacroSyntax},
		{"a\x7fb", true, errMacroSyntax},
	} {
		if _, err := parseMacroString(tc.in, tc.explain); !errors.Is(err, tc.err) {
			t.Errorf("%q: got %v, want %v", tc.in, err, tc.err)
		}
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"example.com", true},
		{"example.com.", true},
		{"%{d}", true},
		{"foo.%{d}", true},
		{"%{d}.com", true},
		{"%{d}com", false},
		{"foo%%", true},
		{"example", false},
		{"example.", false},
		{"1.2.3.4", false},
		{"a.123-45", true},
		{"a.-com", false},
		{"a.com-", false},
		{"foo:bar/baz.example.com", true},
		{"", false},
	} {
		if _, err := parseDomainSpec(tc.in); (err == nil) != tc.ok {
			t.Errorf("domain-spec %q: err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// %{p}: a validated name equal to <domain>, else under it, else any other
// validated one, else "unknown" (§7.3); at most 10 names are validated.
func TestMacroP(t *testing.T) {
	w := &miniResolver{
		PTR: map[string][]string{"192.0.2.3": {"unvalidated.example.com.", "other.example.net.", "Mail.Email.Example.com."}},
		A: map[string][]netip.Addr{
			"other.example.net":       {netip.MustParseAddr("192.0.2.3")},
			"mail.email.example.com":  {netip.MustParseAddr("192.0.2.3")},
			"unvalidated.example.com": {netip.MustParseAddr("192.0.2.4")},
		},
	}
	e := testEvaluator("192.0.2.3", w)
	if got := e.validatedName("email.example.com"); got != "mail.email.example.com" {
		t.Errorf("under domain: %q", got)
	}
	if got := e.validatedName("other.example.net"); got != "other.example.net" {
		t.Errorf("equal to domain: %q", got)
	}
	if got := e.validatedName("example.org"); got != "other.example.net" {
		t.Errorf("any validated: %q", got)
	}
	if n := len(w.queries); n != 4 {
		t.Errorf("%%{p} looked up %d times, want 4 (cached per check): %v", n, w.queries)
	}
	w.Fail = true
	if got := testEvaluator("192.0.2.3", w).validatedName("email.example.com"); got != "unknown" {
		t.Errorf("DNS error: %q", got)
	}
	many := &miniResolver{PTR: map[string][]string{}, A: map[string][]netip.Addr{}}
	for i := range 11 {
		name := "h" + string(rune('a'+i)) + ".example.com"
		many.PTR["192.0.2.3"] = append(many.PTR["192.0.2.3"], name)
		if i == 10 {
			many.A[name] = []netip.Addr{netip.MustParseAddr("192.0.2.3")}
		}
	}
	if got := testEvaluator("192.0.2.3", many).validatedName("example.com"); got != "unknown" {
		t.Errorf("11th PTR name validated: %q", got)
	}
}

// §7.3: an expansion longer than 253 octets loses labels on the left.
func TestTruncateDomain(t *testing.T) {
	label := strings.Repeat("a", 60)
	long := strings.Repeat(label+".", 5) + "Example.COM."
	got := truncateDomain([]byte(long), false)
	want := strings.Repeat(label+".", 3) + "example.com"
	if got != want || len(got) > maxDomainLen {
		t.Errorf("got %q (%d), want %q", got, len(got), want)
	}
	if got := truncateDomain([]byte(strings.Repeat("x", 300)), false); got != "" {
		t.Errorf("one huge label: %q", got)
	}
	// A label too long for DNS goes, with everything left of it.
	for in, want := range map[string]string{
		"a." + strings.Repeat("b", 64) + ".c.Example.com": "c.example.com",
		strings.Repeat("b", 64) + ".example.com.":         "example.com",
		strings.Repeat("b", 63) + ".example.com":          strings.Repeat("b", 63) + ".example.com",
		"example." + strings.Repeat("b", 64):              "",
	} {
		if got := truncateDomain([]byte(in), false); got != want {
			t.Errorf("truncateDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

// A domain-spec whose expansion is megabytes long is expanded within a small
// window, to the same name the whole expansion truncates to.
func TestExpandDomainWindow(t *testing.T) {
	e := testEvaluator("192.0.2.3", nil)
	e.helo = strings.Repeat("ab.", 666) + "c" // 1,999 bytes
	for _, spec := range []string{
		strings.Repeat("%{h}", 2000) + ".example.com",
		strings.Repeat("%{H}.", 500) + "%{d}",
		"x" + strings.Repeat("%{h2}-%{l}", 700) + ".example.com",
		strings.Repeat("%{hr}", 300),
	} {
		m, err := parseDomainSpec(spec)
		if err != nil {
			t.Fatalf("%.40q: %v", spec, err)
		}
		want := truncateDomain(expandAll(e, &m, "email.example.com"), false)
		got, _ := e.expandDomain(&m, "email.example.com")
		if got != want {
			t.Errorf("%.40q: windowed expansion %q, want %q", spec, got, want)
		}
		if len(got) > maxDomainLen {
			t.Errorf("%.40q: %d octets", spec, len(got))
		}
	}
}

// An explanation stops at MaxExplanationLen while it is expanded.
func TestExpandExplainCap(t *testing.T) {
	e := testEvaluator("192.0.2.3", nil)
	e.helo = strings.Repeat("a.", 999) + "x"
	m, err := parseMacroString(strings.Repeat("%{H} ", 1000), true)
	if err != nil {
		t.Fatal(err)
	}
	got := e.expandExplain(&m, "email.example.com")
	full := expandAll(e, &m, "email.example.com")
	if len(got) != MaxExplanationLen || got != string(full[:MaxExplanationLen]) {
		t.Errorf("explanation of %d bytes, want the first %d of the expansion", len(got), MaxExplanationLen)
	}
}

func TestRecordCacheHitAllocs(t *testing.T) {
	txt := "v=spf1 ip4:192.0.2.0/24 include:_spf.example.com -all"
	r := defaultRecords.get(txt)
	if r.err != nil || len(r.terms) != 3 {
		t.Fatalf("%+v", r)
	}
	if defaultRecords.get(txt) != r {
		t.Fatal("second get parsed again")
	}
	if n := testing.AllocsPerRun(100, func() { defaultRecords.get(txt) }); n != 0 {
		t.Errorf("cache hit allocates %v times", n)
	}
}

func TestParseRecordTerms(t *testing.T) {
	r := parseRecord("v=spf1 -ip4:192.0.2.1 ~a:%{d}.example.com/24//64 ?mx/16 ptr:example.org ip6:2001:DB8::/32 exists:%{i}.x.example.com +include:y.example.com all exp=e.example.com redirect=R.Example.com. foo=bar")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []struct {
		kind   mechKind
		result Result
		text   string
	}{
		{mechIP4, Fail, "-ip4:192.0.2.1"},
		{mechA, Softfail, "~a:%{d}.example.com/24//64"},
		{mechMX, Neutral, "?mx/16"},
		{mechPTR, Pass, "ptr:example.org"},
		{mechIP6, Pass, "ip6:2001:DB8::/32"},
		{mechExists, Pass, "exists:%{i}.x.example.com"},
		{mechInclude, Pass, "+include:y.example.com"},
		{mechAll, Pass, "all"},
	}
	if len(r.terms) != len(want) {
		t.Fatalf("%d terms", len(r.terms))
	}
	for i, w := range want {
		m := r.terms[i]
		if m.kind != w.kind || m.result != w.result || m.text != w.text {
			t.Errorf("term %d: %+v", i, m)
		}
	}
	if a := r.terms[1]; a.cidr4 != 24 || a.cidr6 != 64 || a.domain.static {
		t.Errorf("a: %+v", a)
	}
	if mx := r.terms[2]; mx.cidr4 != 16 || mx.cidr6 != 128 || mx.domain != nil {
		t.Errorf("mx: %+v", mx)
	}
	if p := r.terms[4].prefix; p != netip.MustParsePrefix("2001:db8::/32") {
		t.Errorf("ip6: %v", p)
	}
	if !r.hasRedirect || r.redirect.value != "r.example.com" || !r.hasExp || r.exp.value != "e.example.com" {
		t.Errorf("modifiers: %+v %+v", r.redirect, r.exp)
	}
}
