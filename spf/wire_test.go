package spf_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// wireChecker checks against w served by a real DNS server on loopback,
// through the real client.
func wireChecker(t *testing.T, w *spftest.Resolver) *spf.Checker {
	t.Helper()
	srv := spftest.NewServer(t, w)
	rc, err := resolver.New(resolver.Options{Servers: []string{srv.Addr()}, Timeout: time.Second, Attempts: 1, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	return &spf.Checker{Resolver: rc}
}

// Names that macros make from a sender or HELO hold whatever those hold;
// over the wire they are asked as those octets and answered (RFC 7208 §7.3),
// never a temperror because the library escapes them.
func TestMacroNamesOverTheWire(t *testing.T) {
	for _, tc := range []struct {
		record, sender, helo, name string
	}{
		{"exists:%{l}.l.example.com", "o'hara@example.com", "", "o'hara.l.example.com"},
		{"exists:%{l}.l.example.com", "a(b@example.com", "", "a(b.l.example.com"},
		{"exists:%{l}.l.example.com", `"a b;c\d"@example.com`, "", `"a b;c\d".l.example.com`},
		{"exists:%{s}.s.example.com", "user@example.com", "", "user@example.com.s.example.com"},
		{"exists:x%_y.example.com", "user@example.com", "", "x y.example.com"},
		{"exists:%{h}.h.example.com", "user@example.com", "JUMPIN' JUPITER", "jumpin' jupiter.h.example.com"},
		{"exists:%{l}.l.example.com", "Caf\xe9@example.com", "", "caf\xe9.l.example.com"},
	} {
		w := &spftest.Resolver{
			TXT: map[string][]string{"example.com": {"v=spf1 " + tc.record + " -all"}},
			A:   map[string][]netip.Addr{tc.name: addrs("127.0.0.2")},
		}
		c := wireChecker(t, w)
		o := c.CheckMailFrom(context.Background(), spf.Args{IP: ip4, Sender: tc.sender, HELO: tc.helo, Trace: true})
		if o.Result != spf.Pass {
			t.Errorf("%s for %q: %s (%s), want pass\n  %s", tc.record, tc.sender, o.Result, o.Problem, strings.Join(o.Trace, "\n  "))
		}
	}
}

// A record holding an octet outside the ABNF is a permerror however the
// octet travels (§4.6, §7.1); an explanation that is not printable ASCII is
// dropped for the default (§6.2).
func TestRecordOctetsOverTheWire(t *testing.T) {
	for _, rec := range []string{"v=spf1 caf\xe9 -all", "v=spf1 a\t-all", "v=spf1 -all\x00", `v=spf1 a:\065.example.com -all`} {
		w := &spftest.Resolver{TXT: map[string][]string{"example.com": {rec}}}
		o := wireChecker(t, w).CheckMailFrom(context.Background(), spf.Args{IP: ip4, Sender: "u@example.com"})
		want := spf.Permerror
		if strings.Contains(rec, `\065`) {
			want = spf.Fail // a backslash is a visible character; the name is asked as written
		}
		if o.Result != want {
			t.Errorf("record %q: %s (%s), want %s", rec, o.Result, o.Problem, want)
		}
	}
	for text, want := range map[string]string{
		`say "no" \ now`: `say "no" \ now`,
		"caf\xe9":        "",
		"tab\there":      "",
	} {
		w := &spftest.Resolver{TXT: map[string][]string{
			"example.com":     {"v=spf1 -all exp=why.example.com"},
			"why.example.com": {text},
		}}
		o := wireChecker(t, w).CheckMailFrom(context.Background(), spf.Args{IP: ip4, Sender: "u@example.com"})
		if want == "" {
			want = spf.DefaultExplanation("example.com", ip4)
		}
		if o.Result != spf.Fail || o.Explanation != want {
			t.Errorf("exp text %q: %s, explanation %q; want fail, %q", text, o.Result, o.Explanation, want)
		}
	}
}
