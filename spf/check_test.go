package spf_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

var (
	ip4    = netip.MustParseAddr("192.0.2.10")
	ip6    = netip.MustParseAddr("2001:db8::10")
	mapped = netip.MustParseAddr("::ffff:192.0.2.10")
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func mailFrom(t *testing.T, w *spftest.Resolver, ip netip.Addr, sender string) spf.Outcome {
	t.Helper()
	c := &spf.Checker{Resolver: w}
	return c.CheckMailFrom(context.Background(), spf.Args{IP: ip, Sender: sender, HELO: "mail.example.org", Trace: true})
}

func expect(t *testing.T, o spf.Outcome, res spf.Result, mech string) {
	t.Helper()
	if o.Result != res || o.Mechanism != mech {
		t.Fatalf("got %s via %q (problem %q), want %s via %q\ntrace:\n  %s",
			o.Result, o.Mechanism, o.Problem, res, mech, strings.Join(o.Trace, "\n  "))
	}
}

func queried(w *spftest.Resolver, q string) bool {
	return slices.Contains(w.Queries(), q)
}

// aTerms returns n "a:hN.example.com" terms and gives each hN an address
// that never matches, so each costs one DNS term and no void lookup.
func aTerms(w *spftest.Resolver, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("h%d.example.com", i)
		w.A[name] = addrs("198.51.100.1")
		out = append(out, "a:"+name)
	}
	return out
}

func TestDNSTermLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		misses  int // non-matching DNS terms before the matching one
		want    spf.Result
		lookups int
	}{
		{"tenth term matches", 9, spf.Pass, 10},
		{"eleventh term is never looked up", 10, spf.Permerror, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &spftest.Resolver{TXT: map[string][]string{}, A: map[string][]netip.Addr{
				"match.example.com": {ip4},
			}}
			rec := "v=spf1 " + strings.Join(aTerms(w, tc.misses), " ") + " a:match.example.com -all"
			w.TXT["example.com"] = []string{rec}
			o := mailFrom(t, w, ip4, "u@example.com")
			if o.Result != tc.want || o.DNSLookups != tc.lookups {
				t.Fatalf("got %s with %d lookups (%s), want %s with %d", o.Result, o.DNSLookups, o.Problem, tc.want, tc.lookups)
			}
			if tc.want == spf.Permerror {
				if queried(w, "A match.example.com") {
					t.Errorf("the 11th term was looked up: %v", w.Queries())
				}
				if o.Mechanism != "a:match.example.com" {
					t.Errorf("mechanism %q, want the term over the limit", o.Mechanism)
				}
			}
		})
	}
}

func TestDNSTermLimitAcrossIncludeAndRedirect(t *testing.T) {
	w := &spftest.Resolver{TXT: map[string][]string{}, A: map[string][]netip.Addr{"match.example.com": {ip4}}}
	ts := aTerms(w, 8)
	// example.com: include (1) + 4 a terms (5) + redirect (6); inc: 4 a terms (10).
	w.TXT["example.com"] = []string{"v=spf1 include:inc.example.com " + strings.Join(ts[:4], " ") + " redirect=r.example.com"}
	w.TXT["inc.example.com"] = []string{"v=spf1 " + strings.Join(ts[4:], " ") + " -all"}
	w.TXT["r.example.com"] = []string{"v=spf1 a:match.example.com -all"}
	o := mailFrom(t, w, ip4, "u@example.com")
	expect(t, o, spf.Permerror, "a:match.example.com")
	if o.DNSLookups != 10 || queried(w, "A match.example.com") {
		t.Fatalf("lookups %d, queries %v", o.DNSLookups, w.Queries())
	}
	// One term fewer in the include: the redirect target's a is the 10th.
	w.TXT["inc.example.com"] = []string{"v=spf1 " + strings.Join(ts[4:7], " ") + " -all"}
	expect(t, mailFrom(t, w, ip4, "u@example.com"), spf.Pass, "a:match.example.com")
}

func TestVoidLookupLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs map[string]string
		want spf.Result
	}{
		{"two voids are fine", map[string]string{
			"example.com": "v=spf1 a:nx1.example.com mx:nx2.example.com ip4:192.0.2.0/24 -all",
		}, spf.Pass},
		{"third void is a permerror", map[string]string{
			"example.com": "v=spf1 a:nx1.example.com mx:nx2.example.com exists:nx3.example.com ip4:192.0.2.0/24 -all",
		}, spf.Permerror},
		{"voids count across include", map[string]string{
			"example.com":     "v=spf1 a:nx1.example.com include:inc.example.com exists:nx3.example.com ip4:192.0.2.0/24 -all",
			"inc.example.com": "v=spf1 a:nx2.example.com -all",
		}, spf.Permerror},
		{"no-data answers are void too", map[string]string{
			"example.com": "v=spf1 a:nodata.example.com mx:nodata.example.com exists:nodata.example.com ip4:192.0.2.0/24 -all",
		}, spf.Permerror},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &spftest.Resolver{TXT: map[string][]string{"nodata.example.com": {"not spf"}}}
			for d, r := range tc.recs {
				w.TXT[d] = []string{r}
			}
			o := mailFrom(t, w, ip4, "u@example.com")
			if o.Result != tc.want {
				t.Fatalf("got %s (%s), want %s", o.Result, o.Problem, tc.want)
			}
			wantVoids := 2
			if o.VoidLookups != wantVoids {
				t.Errorf("void lookups %d, want %d", o.VoidLookups, wantVoids)
			}
		})
	}
}

func TestMXNameLimit(t *testing.T) {
	for _, n := range []int{10, 11} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			w := &spftest.Resolver{
				TXT: map[string][]string{"example.com": {"v=spf1 mx -all"}},
				MX:  map[string][]string{},
				A:   map[string][]netip.Addr{},
			}
			for i := 1; i <= n; i++ {
				name := fmt.Sprintf("mx%d.example.com", i)
				w.MX["example.com"] = append(w.MX["example.com"], name+".")
				w.A[name] = addrs("198.51.100.1")
			}
			w.A[fmt.Sprintf("mx%d.example.com", n)] = []netip.Addr{ip4}
			o := mailFrom(t, w, ip4, "u@example.com")
			if n == 10 {
				expect(t, o, spf.Pass, "mx")
				return
			}
			expect(t, o, spf.Permerror, "mx")
			for _, q := range w.Queries() {
				if strings.HasPrefix(q, "A ") {
					t.Errorf("looked up %q despite more than 10 MX names", q)
				}
			}
		})
	}
}

func TestPTRNameLimit(t *testing.T) {
	for _, n := range []int{10, 11} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			w := &spftest.Resolver{
				TXT: map[string][]string{"example.com": {"v=spf1 ptr -all"}},
				PTR: map[string][]string{},
				A:   map[string][]netip.Addr{},
			}
			for i := 1; i < n; i++ {
				name := fmt.Sprintf("h%d.example.net", i)
				w.PTR[ip4.String()] = append(w.PTR[ip4.String()], name)
				w.A[name] = []netip.Addr{ip4}
			}
			// Only the last name is under example.com and validates.
			w.PTR[ip4.String()] = append(w.PTR[ip4.String()], "mail.example.com.")
			w.A["mail.example.com"] = []netip.Addr{ip4}
			o := mailFrom(t, w, ip4, "u@example.com")
			if n == 10 {
				expect(t, o, spf.Pass, "ptr")
				return
			}
			// §4.6.4: names beyond the 10th are ignored, not an error.
			expect(t, o, spf.Fail, "-all")
			if queried(w, "A mail.example.com") {
				t.Errorf("the 11th PTR name was looked up")
			}
		})
	}
}

// A loop is caught at the first include or redirect back to a domain
// under evaluation, before the §4.6.4 limits would stop it, and reported
// as its own cause.
func TestLoops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		recs  map[string]string
		terms int
	}{
		{"include self", map[string]string{"example.com": "v=spf1 include:example.com -all"}, 1},
		{"redirect self", map[string]string{"example.com": "v=spf1 redirect=example.com"}, 1},
		{"mutual include", map[string]string{
			"example.com":   "v=spf1 include:b.example.com -all",
			"b.example.com": "v=spf1 include:example.com -all",
		}, 2},
		{"include and redirect", map[string]string{
			"example.com":   "v=spf1 redirect=b.example.com",
			"b.example.com": "v=spf1 include:example.com ~all",
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &spftest.Resolver{TXT: map[string][]string{}}
			for d, r := range tc.recs {
				w.TXT[d] = []string{r}
			}
			o := mailFrom(t, w, ip4, "u@example.com")
			if o.Result != spf.Permerror || o.Cause != spf.CauseLoop || o.DNSLookups != tc.terms {
				t.Fatalf("got %s (%s) after %d lookups (%s), want permerror (loop) after %d", o.Result, o.Cause, o.DNSLookups, o.Problem, tc.terms)
			}
		})
	}
}

// The same domain reached twice, but not from inside its own evaluation,
// is no loop.
func TestNotALoop(t *testing.T) {
	w := &spftest.Resolver{TXT: map[string][]string{
		"example.com":   {"v=spf1 include:b.example.com include:c.example.com include:d.example.com -all"},
		"b.example.com": {"v=spf1 include:d.example.com -all"},
		"c.example.com": {"v=spf1 include:d.example.com -all"},
		"d.example.com": {"v=spf1 ip4:192.0.2.99 -all"},
	}}
	o := mailFrom(t, w, ip4, "u@example.com")
	if o.Result != spf.Fail || o.Cause != "" {
		t.Fatalf("got %s (%s, %s), want fail", o.Result, o.Cause, o.Problem)
	}
}

// Each permerror names its cause, from records as published.
func TestPermerrorCauses(t *testing.T) {
	many := "v=spf1"
	for i := range spf.MaxDNSTerms + 1 {
		many += " a:h" + strconv.Itoa(i) + ".example.com"
	}
	addrs := map[string][]netip.Addr{}
	for i := range spf.MaxDNSTerms + 1 {
		addrs["h"+strconv.Itoa(i)+".example.com"] = []netip.Addr{netip.MustParseAddr("192.0.2.99")}
	}
	for _, tc := range []struct {
		name string
		txt  map[string][]string
		want spf.Cause
	}{
		{"syntax", map[string][]string{"example.com": {"v=spf1 ip4:192.0.2.300 -all"}}, spf.CauseSyntax},
		{"unknown mechanism", map[string][]string{"example.com": {"v=spf1 foo:bar -all"}}, spf.CauseSyntax},
		{"included syntax error", map[string][]string{
			"example.com":   {"v=spf1 include:b.example.com -all"},
			"b.example.com": {"v=spf1 a:"},
		}, spf.CauseSyntax},
		{"lookup limit", map[string][]string{"example.com": {many + " -all"}}, spf.CauseLookupLimit},
		{"void lookup limit", map[string][]string{"example.com": {"v=spf1 a:v1.example.com a:v2.example.com a:v3.example.com -all"}}, spf.CauseVoidLookupLimit},
		{"include without record", map[string][]string{"example.com": {"v=spf1 include:nothing.example.com -all"}}, spf.CauseNoRecord},
		{"redirect without record", map[string][]string{"example.com": {"v=spf1 redirect=nothing.example.com"}}, spf.CauseNoRecord},
		{"loop", map[string][]string{"example.com": {"v=spf1 include:example.com -all"}}, spf.CauseLoop},
		{"two records", map[string][]string{"example.com": {"v=spf1 -all", "v=spf1 +all"}}, spf.CauseMultipleRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := mailFrom(t, &spftest.Resolver{TXT: tc.txt, A: addrs}, ip4, "u@example.com")
			if o.Result != spf.Permerror || o.Cause != tc.want {
				t.Fatalf("got %s (%q: %s), want permerror (%s)", o.Result, o.Cause, o.Problem, tc.want)
			}
		})
	}
	// Only permerror has a cause.
	o := mailFrom(t, &spftest.Resolver{TXT: map[string][]string{"example.com": {"v=spf1 -all"}}}, ip4, "u@example.com")
	if o.Result != spf.Fail || o.Cause != "" {
		t.Errorf("fail: cause %q", o.Cause)
	}
}

func TestIncludeAndRedirect(t *testing.T) {
	w := &spftest.Resolver{
		TXT: map[string][]string{
			"pass.example.com":    {"v=spf1 +all"},
			"fail.example.com":    {"v=spf1 -all"},
			"soft.example.com":    {"v=spf1 ~all"},
			"neutral.example.com": {"v=spf1 ?all"},
			"perm.example.com":    {"v=spf1 bogus"},
			"norec.example.com":   {"just text"},
			"err.example.com":     {"v=spf1 a:down.example.com"},
		},
		Fail: map[string]error{"A down.example.com": spftest.ErrServFail},
	}
	for _, tc := range []struct {
		rec  string
		res  spf.Result
		mech string
	}{
		{"v=spf1 include:pass.example.com -all", spf.Pass, "include:pass.example.com"},
		{"v=spf1 -include:pass.example.com +all", spf.Fail, "-include:pass.example.com"},
		{"v=spf1 include:fail.example.com ~all", spf.Softfail, "~all"},
		{"v=spf1 include:soft.example.com -all", spf.Fail, "-all"},
		{"v=spf1 include:neutral.example.com -all", spf.Fail, "-all"},
		{"v=spf1 include:perm.example.com +all", spf.Permerror, "include:perm.example.com"},
		{"v=spf1 include:norec.example.com +all", spf.Permerror, "include:norec.example.com"},
		{"v=spf1 include:nxdomain.example.com +all", spf.Permerror, "include:nxdomain.example.com"},
		{"v=spf1 include:err.example.com +all", spf.Temperror, "include:err.example.com"},
		{"v=spf1 redirect=fail.example.com", spf.Fail, "-all"},
		{"v=spf1 ?all redirect=fail.example.com", spf.Neutral, "?all"},
		{"v=spf1 redirect=norec.example.com", spf.Permerror, "redirect=norec.example.com"},
		{"v=spf1 ip4:198.51.100.0/24", spf.Neutral, "default"},
	} {
		t.Run(tc.rec, func(t *testing.T) {
			w.TXT["example.com"] = []string{tc.rec}
			expect(t, mailFrom(t, w, ip4, "u@example.com"), tc.res, tc.mech)
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	for _, rec := range []string{
		"v=spf1 +all foo:bar", // after a match
		"v=spf1 +all redirect=a.example.com redirect=b.example.com",
		"v=spf1 -all exp=a.example.com exp=b.example.com",
		"v=spf1 ip4:192.0.2.0/33 +all",
		"v=spf1 ip4:192.0.2.010 +all",
		"v=spf1 ip6:192.0.2.1 +all",
		"v=spf1 a/24/24 +all",
		"v=spf1 a:example +all",               // no toplabel
		"v=spf1 a:1.2.3.4 +all",               // numeric toplabel
		"v=spf1 a:%{x}.com +all",              // unknown macro letter
		"v=spf1 a:%{d0} +all",                 // zero DIGIT
		"v=spf1 exists:%{c}.example.com +all", // c only in exp text
		"v=spf1 +all -redirect=example.com",
		"v=spf1 +all 1foo=bar",
		"v=spf1 +all x=%{q}", // unknown modifiers are syntax-checked
		"v=spf1 +all\t-all",
	} {
		t.Run(rec, func(t *testing.T) {
			w := &spftest.Resolver{TXT: map[string][]string{"example.com": {rec}}}
			o := mailFrom(t, w, ip4, "u@example.com")
			if o.Result != spf.Permerror || o.Problem == "" {
				t.Fatalf("got %s (%q), want permerror with a problem", o.Result, o.Problem)
			}
			if len(w.Queries()) != 1 {
				t.Errorf("evaluated despite the syntax error: %v", w.Queries())
			}
		})
	}
	// Accepted oddities: unknown modifiers, case, spacing, dual CIDR.
	for _, rec := range []string{
		"V=SPF1 IP4:192.0.2.0/24 -ALL",
		"v=spf1  ip4:192.0.2.0/24   -all  ",
		"v=spf1 foo=bar.%{d} ip4:192.0.2.0/24 -all",
		"v=spf1 a:a.example.com/24//64 -all",
		"v=spf1 a//64 ip4:192.0.2.10 -all",
	} {
		t.Run(rec, func(t *testing.T) {
			w := &spftest.Resolver{
				TXT: map[string][]string{"example.com": {rec}},
				A:   map[string][]netip.Addr{"a.example.com": addrs("192.0.2.200")},
			}
			if o := mailFrom(t, w, ip4, "u@example.com"); o.Result != spf.Pass {
				t.Fatalf("got %s (%s), want pass", o.Result, o.Problem)
			}
		})
	}
}

func TestRecordSelection(t *testing.T) {
	for _, tc := range []struct {
		txts []string
		want spf.Result
	}{
		{[]string{"v=spf10 +all"}, spf.None},
		{[]string{"v=spf1\t+all"}, spf.None},
		{[]string{"v=spf1"}, spf.Neutral},
		{[]string{"v=spf1 +all", "v=spf1 -all"}, spf.Permerror},
		{[]string{"something else", "v=spf1 +all"}, spf.Pass},
		{nil, spf.None},
	} {
		w := &spftest.Resolver{TXT: map[string][]string{"example.com": tc.txts}}
		if o := mailFrom(t, w, ip4, "u@example.com"); o.Result != tc.want || (tc.want == spf.None && o.Problem == "") {
			t.Errorf("%q: got %s (%q), want %s", tc.txts, o.Result, o.Problem, tc.want)
		}
	}
}

func TestClients(t *testing.T) {
	w := &spftest.Resolver{
		TXT: map[string][]string{
			"example.com":    {"v=spf1 ip6:2001:db8::/64 ip4:192.0.2.0/24 -all"},
			"a.example.com":  {"v=spf1 a//64 -all"},
			"mx.example.com": {"v=spf1 mx/24 -all"},
		},
		A:    map[string][]netip.Addr{"a.example.com": addrs("192.0.2.10"), "mail.example.com": addrs("192.0.2.99")},
		AAAA: map[string][]netip.Addr{"a.example.com": addrs("2001:db8::ffff")},
		MX:   map[string][]string{"mx.example.com": {"mail.example.com"}},
	}
	expect(t, mailFrom(t, w, ip4, "u@example.com"), spf.Pass, "ip4:192.0.2.0/24")
	expect(t, mailFrom(t, w, mapped, "u@example.com"), spf.Pass, "ip4:192.0.2.0/24")
	expect(t, mailFrom(t, w, ip6, "u@example.com"), spf.Pass, "ip6:2001:db8::/64")
	expect(t, mailFrom(t, w, netip.MustParseAddr("2001:db8:1::1"), "u@example.com"), spf.Fail, "-all")
	// a//64: IPv4 clients need an exact A match, IPv6 clients a /64 one.
	expect(t, mailFrom(t, w, ip6, "u@a.example.com"), spf.Pass, "a//64")
	expect(t, mailFrom(t, w, netip.MustParseAddr("192.0.2.11"), "u@a.example.com"), spf.Fail, "-all")
	expect(t, mailFrom(t, w, mapped, "u@mx.example.com"), spf.Pass, "mx/24")
}

func TestIdentities(t *testing.T) {
	w := &spftest.Resolver{TXT: map[string][]string{
		"mail.example.org":      {"v=spf1 ip4:192.0.2.0/24 -all"},
		"example.com":           {"v=spf1 -all"},
		"xn--bcher-kva.example": {"v=spf1 ip4:192.0.2.10 -all"},
	}}
	c := &spf.Checker{Resolver: w}
	ctx := context.Background()
	for _, tc := range []struct {
		helo    string
		res     spf.Result
		domain  string
		problem bool
	}{
		{"mail.example.org", spf.Pass, "mail.example.org", false},
		{"MAIL.Example.ORG.", spf.Pass, "mail.example.org", false},
		{"bücher.example", spf.Pass, "xn--bcher-kva.example", false},
		{"192.0.2.10", spf.None, "", true},
		{"[192.0.2.10]", spf.None, "", true},
		{"[IPv6:2001:db8::1]", spf.None, "", true},
		{"localhost", spf.None, "", true},
		{"JUMPIN' JUPITER", spf.None, "", true},
		{"", spf.None, "", true},
	} {
		o := c.CheckHELO(ctx, spf.Args{IP: ip4, HELO: tc.helo})
		if o.Result != tc.res || o.Domain != tc.domain || (o.Problem != "") != tc.problem || o.Identity != spf.IdentityHELO {
			t.Errorf("HELO %q: %+v", tc.helo, o)
		}
		if tc.domain != "" && o.Sender != "postmaster@"+tc.domain {
			t.Errorf("HELO %q: sender %q", tc.helo, o.Sender)
		}
		// A HELO without a domain is not checked (§2.3): no SPF result.
		if o.NotChecked != (tc.domain == "") {
			t.Errorf("HELO %q: NotChecked %v", tc.helo, o.NotChecked)
		}
		// The null sender is checked as postmaster@<HELO> (§2.4).
		m := c.CheckMailFrom(ctx, spf.Args{IP: ip4, HELO: tc.helo})
		if m.Result != tc.res || m.Domain != tc.domain || m.Identity != spf.IdentityMailFrom || m.NotChecked {
			t.Errorf("null sender, HELO %q: %+v", tc.helo, m)
		}
	}
	for _, tc := range []struct {
		sender, wantSender, domain string
		res                        spf.Result
	}{
		{"u@example.com", "u@example.com", "example.com", spf.Fail},
		{"U.Ser@EXAMPLE.com.", "U.Ser@example.com", "example.com", spf.Fail},
		{"@example.com", "postmaster@example.com", "example.com", spf.Fail},
		{"a@b@example.com", "a@b@example.com", "example.com", spf.Fail},
		{"u@bücher.example", "u@xn--bcher-kva.example", "xn--bcher-kva.example", spf.Pass},
		{"u@[192.0.2.1]", "u@[192.0.2.1]", "", spf.None},
		{"u@a..example.com", "u@a..example.com", "", spf.None},
		{"u@" + strings.Repeat("a", 64) + ".example.com", "", "", spf.None},
	} {
		o := c.CheckMailFrom(ctx, spf.Args{IP: ip4, Sender: tc.sender, HELO: "mail.example.org"})
		if o.Result != tc.res || o.Domain != tc.domain || (tc.wantSender != "" && o.Sender != tc.wantSender) {
			t.Errorf("sender %q: %+v", tc.sender, o)
		}
	}
}

// %{h} of a HELO written with the root's trailing dot expands without it,
// for the MAIL FROM and the HELO identity alike: "mx.example.org." names
// mx.example.org, and the dot in the middle of a name would be an empty
// label that no query can carry.
func TestHELOMacroTrailingDot(t *testing.T) {
	w := &spftest.Resolver{
		TXT: map[string][]string{
			"example.com":    {"v=spf1 exists:%{h}.ok.example.com -all"},
			"mx.example.org": {"v=spf1 exists:%{h}.ok.example.com -all"},
		},
		A: map[string][]netip.Addr{"mx.example.org.ok.example.com": addrs("127.0.0.2")},
	}
	c := &spf.Checker{Resolver: w}
	a := spf.Args{IP: ip4, Sender: "user@example.com", HELO: "mx.example.org.", Trace: true}
	expect(t, c.CheckMailFrom(context.Background(), a), spf.Pass, "exists:%{h}.ok.example.com")
	expect(t, c.CheckHELO(context.Background(), a), spf.Pass, "exists:%{h}.ok.example.com")
}

func TestOutcomeFields(t *testing.T) {
	w := &spftest.Resolver{TXT: map[string][]string{
		"example.com":     {"v=spf1 a:nx.example.com include:inc.example.com -all exp=why.example.com"},
		"inc.example.com": {"v=spf1 ip4:198.51.100.0/24 -all"},
		"why.example.com": {"%{i} is not one of %{d}'s, ask %{l} (%{c} via %{r} at %{t})"},
	}}
	c := &spf.Checker{Resolver: w, Receiver: "mx.example.net"}
	before := time.Now().Unix()
	o := c.CheckMailFrom(context.Background(), spf.Args{IP: ip4, Sender: "jo@example.com", HELO: "h.example.org"})
	after := time.Now().Unix()
	if o.Result != spf.Fail || o.Mechanism != "-all" || o.DNSLookups != 2 || o.VoidLookups != 1 ||
		o.Identity != spf.IdentityMailFrom || o.Domain != "example.com" || o.Sender != "jo@example.com" ||
		o.Problem != "" || o.Trace != nil || o.Duration <= 0 {
		t.Fatalf("%+v", o)
	}
	var ts int64
	prefix := "192.0.2.10 is not one of example.com's, ask jo (192.0.2.10 via mx.example.net at "
	rest, ok := strings.CutPrefix(o.Explanation, prefix)
	if _, err := fmt.Sscanf(rest, "%d)", &ts); !ok || err != nil || ts < before || ts > after {
		t.Errorf("explanation %q", o.Explanation)
	}
	// exp is fetched only on fail.
	w.Reset()
	o = c.CheckMailFrom(context.Background(), spf.Args{IP: netip.MustParseAddr("198.51.100.1"), Sender: "jo@example.com", HELO: "h.example.org", Trace: true})
	if o.Result != spf.Pass || o.Explanation != "" || len(o.Trace) == 0 || queried(w, "TXT why.example.com") {
		t.Errorf("%+v, queries %v", o, w.Queries())
	}
}

func TestExplanationFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		exp  []string
		fail map[string]error
	}{
		{"no record", nil, nil},
		{"several records", []string{"one", "two"}, nil},
		{"DNS error", []string{"x"}, map[string]error{"TXT why.example.com": spftest.ErrServFail}},
		{"bad macro", []string{"see %{x}"}, nil},
		{"non-ASCII", []string{"s\xc3\xa9e"}, nil},
		// §6.2: printable ASCII after expansion too.
		{"non-ASCII local part", []string{"%{l} may not send"}, nil},
		{"tab in local part", []string{"%{l} may not send"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &spftest.Resolver{TXT: map[string][]string{
				"example.com":     {"v=spf1 -all exp=why.example.com"},
				"why.example.com": tc.exp,
			}, Fail: tc.fail}
			sender := "u@example.com"
			switch tc.name {
			case "non-ASCII local part":
				sender = "caf\xc3\xa9@example.com"
			case "tab in local part":
				sender = "a\tb@example.com"
			}
			o := mailFrom(t, w, ip4, sender)
			if o.Result != spf.Fail || o.Explanation != spf.DefaultExplanation("example.com", ip4) {
				t.Fatalf("%+v", o)
			}
		})
	}
}

func TestDNSErrors(t *testing.T) {
	for _, tc := range []struct {
		rec  string
		fail map[string]error
		want spf.Result
	}{
		{"v=spf1 -all", map[string]error{"TXT example.com": spftest.ErrServFail}, spf.Temperror},
		{"v=spf1 -all", map[string]error{"TXT example.com": fmt.Errorf("wrapped: %w", spf.ErrNotFound)}, spf.None},
		{"v=spf1 a:x.example.com -all", map[string]error{"A x.example.com": spftest.ErrTimeout}, spf.Temperror},
		{"v=spf1 mx:x.example.com -all", map[string]error{"MX x.example.com": spftest.ErrServFail}, spf.Temperror},
		{"v=spf1 exists:x.example.com -all", map[string]error{"A x.example.com": spftest.ErrServFail}, spf.Temperror},
		// §5.5: a PTR lookup error makes ptr not match.
		{"v=spf1 ptr -all", map[string]error{"PTR 192.0.2.10": spftest.ErrServFail}, spf.Fail},
	} {
		w := &spftest.Resolver{TXT: map[string][]string{"example.com": {tc.rec}}, Fail: tc.fail}
		if o := mailFrom(t, w, ip4, "u@example.com"); o.Result != tc.want {
			t.Errorf("%s with %v: got %s (%s), want %s", tc.rec, tc.fail, o.Result, o.Problem, tc.want)
		}
	}
}

// timeoutError is a resolver error in the shape of a net.Error timeout,
// carrying the internal details a real client's errors carry.
type timeoutError struct{}

func (timeoutError) Error() string {
	return "resolver: TXT example.com via 127.0.0.1:53: read udp 127.0.0.1:40000->127.0.0.1:53: i/o timeout"
}
func (timeoutError) Timeout() bool { return true }

// The problem text goes into headers and SMTP replies: it names the query
// and the kind of failure, never the resolver's servers or sockets, which
// only the trace shows.
func TestDNSErrorProblemText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{timeoutError{}, "DNS timeout for TXT example.com"},
		{fmt.Errorf("resolver: TXT example.com via 127.0.0.1:53: %w", spftest.ErrServFail), "DNS error for TXT example.com"},
	} {
		w := &spftest.Resolver{TXT: map[string][]string{"example.com": {"v=spf1 -all"}},
			Fail: map[string]error{"TXT example.com": tc.err}}
		o := mailFrom(t, w, ip4, "u@example.com")
		if o.Result != spf.Temperror || o.Problem != tc.want {
			t.Errorf("%v: got %s %q, want temperror %q", tc.err, o.Result, o.Problem, tc.want)
		}
		if !strings.Contains(strings.Join(o.Trace, "\n"), "127.0.0.1:53") {
			t.Errorf("%v: the trace lost the resolver's error:\n%s", tc.err, strings.Join(o.Trace, "\n"))
		}
	}
}

// blockingResolver answers nothing until the context ends.
type blockingResolver struct{ *spftest.Resolver }

func (blockingResolver) LookupTXT(ctx context.Context, _ string) ([]string, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestDeadline(t *testing.T) {
	c := &spf.Checker{Resolver: blockingResolver{&spftest.Resolver{}}, Timeout: 50 * time.Millisecond}
	done := make(chan spf.Outcome, 1)
	go func() {
		done <- c.CheckMailFrom(context.Background(), spf.Args{IP: ip4, Sender: "u@example.com", HELO: "h.example.org"})
	}()
	select {
	case o := <-done:
		if o.Result != spf.Temperror || !strings.Contains(o.Problem, "deadline") {
			t.Fatalf("%+v", o)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("check did not end at its deadline")
	}
	// A caller's earlier cancellation ends the check too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Timeout = 0
	if o := c.CheckMailFrom(ctx, spf.Args{IP: ip4, Sender: "u@example.com", HELO: "h.example.org"}); o.Result != spf.Temperror {
		t.Fatalf("%+v", o)
	}
}

// Macro expansions that cannot be DNS names as they stand (RFC 7208 §7.3):
// labels are dropped from the left until the name fits; what still cannot be
// asked is a void lookup, never a DNS error.
func TestExpandedNameTruncation(t *testing.T) {
	long := strings.Repeat("x", 70)
	w := &spftest.Resolver{
		TXT: map[string][]string{"example.com": {"v=spf1 exists:%{l}.ok.example.com exists:%{l}.%{l} -all"}},
		A:   map[string][]netip.Addr{"ok.example.com": addrs("127.0.0.2")},
	}
	o := mailFrom(t, w, ip4, long+"@example.com")
	expect(t, o, spf.Pass, "exists:%{l}.ok.example.com")
	if !queried(w, "A ok.example.com") {
		t.Errorf("queries %q, want A ok.example.com", w.Queries())
	}
	w.A = nil
	w.Reset()
	o = mailFrom(t, w, ip4, long+"@example.com")
	expect(t, o, spf.Fail, "-all")
	if o.VoidLookups != 2 || len(w.Queries()) != 2 { // TXT example.com, A ok.example.com
		t.Errorf("void lookups %d, queries %q; want 2 and no query for the unaskable name", o.VoidLookups, w.Queries())
	}
}

// A local part may hold what presentation format escapes; the name a macro
// makes of it is asked as those octets and can match.
func TestOddLocalPartsInNames(t *testing.T) {
	for _, local := range []string{"o'hara", "a(b", "Macro Error", `"quoted"`, `back\slash`, "semi;colon"} {
		w := &spftest.Resolver{
			TXT: map[string][]string{"example.com": {"v=spf1 exists:%{l}.%{d} -all"}},
			A:   map[string][]netip.Addr{strings.ToLower(local) + ".example.com": addrs("127.0.0.2")},
		}
		expect(t, mailFrom(t, w, ip4, local+"@example.com"), spf.Pass, "exists:%{l}.%{d}")
	}
}
