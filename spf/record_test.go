package spf_test

import (
	"net/netip"
	"testing"

	"github.com/spfmilter/spfmilter/spf"
)

func TestParseRecordView(t *testing.T) {
	rec, err := spf.ParseRecord("v=spf1 -ip4:192.0.2.0/24 ~a:Mail.Example.org/28//64 mx include:%{d2}._spf.example.net ?exists:%{ir}.%{v}.x.example ptr redirect=_spf.example.net exp=exp.%{d}")
	if err != nil {
		t.Fatal(err)
	}
	want := []spf.Term{
		{Mechanism: "ip4", Qualifier: spf.Fail, Text: "-ip4:192.0.2.0/24", Prefix: netip.MustParsePrefix("192.0.2.0/24")},
		{Mechanism: "a", Qualifier: spf.Softfail, Text: "~a:Mail.Example.org/28//64",
			Domain: &spf.DomainSpec{Raw: "Mail.Example.org", Name: "mail.example.org", Valid: true}, CIDR4: 28, CIDR6: 64},
		{Mechanism: "mx", Qualifier: spf.Pass, Text: "mx", CIDR4: 32, CIDR6: 128},
		{Mechanism: "include", Qualifier: spf.Pass, Text: "include:%{d2}._spf.example.net",
			Domain: &spf.DomainSpec{Raw: "%{d2}._spf.example.net", Macros: "d"}},
		{Mechanism: "exists", Qualifier: spf.Neutral, Text: "?exists:%{ir}.%{v}.x.example",
			Domain: &spf.DomainSpec{Raw: "%{ir}.%{v}.x.example", Macros: "iv"}},
		{Mechanism: "ptr", Qualifier: spf.Pass, Text: "ptr"},
	}
	if len(rec.Terms) != len(want) {
		t.Fatalf("%d terms, want %d", len(rec.Terms), len(want))
	}
	for i, w := range want {
		g := rec.Terms[i]
		if g.Mechanism != w.Mechanism || g.Qualifier != w.Qualifier || g.Text != w.Text || g.Prefix != w.Prefix ||
			(w.CIDR4 != 0 && (g.CIDR4 != w.CIDR4 || g.CIDR6 != w.CIDR6)) || (g.Domain == nil) != (w.Domain == nil) ||
			g.Domain != nil && *g.Domain != *w.Domain {
			t.Errorf("term %d: %+v (domain %+v), want %+v (domain %+v)", i, g, g.Domain, w, w.Domain)
		}
		if g.DNS() != (w.Mechanism != "ip4" && w.Mechanism != "ip6" && w.Mechanism != "all") {
			t.Errorf("term %d: DNS() = %v", i, g.DNS())
		}
	}
	if rec.Redirect == nil || *rec.Redirect != (spf.DomainSpec{Raw: "_spf.example.net", Name: "_spf.example.net", Valid: true}) {
		t.Errorf("redirect %+v", rec.Redirect)
	}
	if rec.Exp == nil || rec.Exp.Macros != "d" {
		t.Errorf("exp %+v", rec.Exp)
	}
	if r, err := spf.ParseRecord("v=spf1 a:foo..example -all"); err != nil || r.Terms[0].Domain.Valid {
		t.Errorf("a:foo..example: %+v, %v; want a parsed, unqueryable name", r, err)
	}
}

func TestParseRecordErrors(t *testing.T) {
	for _, txt := range []string{"v=spf1 ip4:192.0.2.0/33", "v=spf1 a:%{c}.example", "v=spf2 -all", "v=spf1 -all redirect=a.example redirect=b.example"} {
		if _, err := spf.ParseRecord(txt); err == nil {
			t.Errorf("%q: no error", txt)
		}
	}
	if spf.IsRecord("v=spf10") || !spf.IsRecord("V=SPF1 -all") {
		t.Error("IsRecord")
	}
}
