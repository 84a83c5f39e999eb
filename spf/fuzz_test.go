package spf

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary TXT strings to the record parser. It must never
// panic, and what it accepts must be internally consistent.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"v=spf1 -all",
		"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com ~all",
		"v=spf1 a:%{d}.example.com/24//64 mx//0 ptr exists:%{ir}.%{v}._spf.%{d2} -all",
		"v=spf1 redirect=_spf.example.com exp=explain._spf.%{d}",
		"v=spf1 foo=%{l1r-}bar a:foo:bar/baz.example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		if !isSPFRecord(txt) {
			return
		}
		r := parseRecord(txt)
		if r.err != nil {
			if len(r.terms) > 0 {
				t.Fatalf("error %v with terms", r.err)
			}
			_ = r.err.Error()
			return
		}
		for _, m := range r.terms {
			if m.text == "" || !strings.Contains(txt, m.text) {
				t.Fatalf("term text %q not in record", m.text)
			}
			if m.kind < mechAll || m.kind > mechExists {
				t.Fatalf("kind %d", m.kind)
			}
			if m.domain != nil && m.domain.static && (lowerASCII(m.domain.value) != m.domain.value || strings.HasSuffix(m.domain.value, ".")) {
				t.Fatalf("static domain %q not normalized", m.domain.value)
			}
			if (m.kind == mechIP4 || m.kind == mechIP6) && !m.prefix.IsValid() {
				t.Fatalf("invalid prefix for %q", m.text)
			}
		}
	})
}

// FuzzMacro parses and expands arbitrary macro-strings, as domain-spec and
// as explanation, for IPv4 and IPv6 clients.
func FuzzMacro(f *testing.F) {
	for _, s := range []string{
		"%{ir}.%{v}._spf.%{d2}", "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "%{S}%{L}%{O}%{D}%{I}%{P}%{V}%{H}",
		"%%%_%-", "%{d999999}", "%{l1r+-.,/_=}", "see %{c} via %{r} at %{t}", "%{p}.example.com",
		// Expansions longer than a domain name or an explanation.
		strings.Repeat("%{s}", 40) + ".example.com", strings.Repeat("%{D}.%{ir}-", 30) + "x.%{v}", strings.Repeat("%{S} ", 60),
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, v6 bool) {
		ip := "192.0.2.3"
		if v6 {
			ip = "2001:db8::cb01"
		}
		w := &miniResolver{PTR: map[string][]string{"192.0.2.3": {"mail.example.com"}}}
		e := testEvaluator(ip, w)
		if m, err := parseMacroString(s, true); err == nil {
			full := expandAll(e, &m, "email.example.com")
			got := e.expandExplain(&m, "email.example.com")
			if want := full[:min(len(full), MaxExplanationLen)]; got != string(want) {
				t.Fatalf("explanation %q, want the first %d bytes of %q", got, MaxExplanationLen, full)
			}
		}
		if m, err := parseDomainSpec(s); err == nil {
			name, ok := e.expandDomain(&m, "email.example.com")
			if !m.static {
				if want := truncateDomain(expandAll(e, &m, "email.example.com"), false); name != want {
					t.Fatalf("windowed expansion %q, want %q", name, want)
				}
			}
			if ok && len(name) > maxDomainLen || !m.static && len(name) > maxDomainLen {
				t.Fatalf("expanded name of %d octets", len(name))
			}
			if name != lowerASCII(name) {
				t.Fatalf("expanded name %q not lower-case", name)
			}
		}
	})
}
