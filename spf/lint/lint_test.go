package lint

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func repeat(term string, n int) string {
	return strings.TrimSpace(strings.Repeat(term+" ", n))
}

// lintWorld has one domain (or a few) per finding.
func lintWorld() *spftest.Resolver {
	many := make([]string, 11)
	for i := range many {
		many[i] = "mx" + string(rune('a'+i)) + ".example"
	}
	var long []string
	for i := range 20 {
		long = append(long, "ip4:192.0.2."+strings.Repeat("1", 1)+string(rune('0'+i%10))+"0")
	}
	return &spftest.Resolver{
		TXT: map[string][]string{
			"ok.example":  {"v=spf1 ip4:192.0.2.0/25 include:inc.example a:both.example -all", "site-verification=abc"},
			"inc.example": {"v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:1::/48 -all"},

			"two.example":     {"v=spf1 -all", "v=spf1 ip4:192.0.2.1 -all"},
			"syn.example":     {"v=spf1 ip4:192.0.2.0/33 -all"},
			"split.example":   {"v=spf1 " + repeat("ip4:192.0.2.1", 18) + "ip4:192.0.2.2 -all"},
			"octet.example":   {"v=spf1 a:\xefgarbage.example -all"},
			"expmac.example":  {"v=spf1 exists:%{c}.list.example -all"},
			"dnserr.example":  {"v=spf1 include:broken.example -all"},
			"long.example":    {"v=spf1 " + strings.Join(long, " ") + " -all"},
			"big.example":     {"v=spf1 ip4:192.0.2.1 -all", strings.Repeat("a", 200), strings.Repeat("b", 200), strings.Repeat("c", 200)},
			"t99.example":     {"v=spf1 -all"},
			"many.example":    {"v=spf1 " + repeat("a:both.example", 3) + " include:deep.example -all"},
			"deep.example":    {"v=spf1 " + repeat("a:both.example", 8) + " -all"},
			"v6void.example":  {"v=spf1 a:v4a.example a:v4b.example a:v4c.example -all"},
			"mxmany.example":  {"v=spf1 mx -all"},
			"ptr.example":     {"v=spf1 a:host.example ptr -all"},
			"incnone.example": {"v=spf1 include:nothing.example -all"},
			"rednone.example": {"v=spf1 redirect=nothing.example"},
			"invalid.example": {"v=spf1 include:foo..example -all"},
			"loop.example":    {"v=spf1 include:loop2.example -all"},
			"loop2.example":   {"v=spf1 ip4:192.0.2.1 include:loop.example -all"},
			"dup.example":     {"v=spf1 include:inc.example include:inc.example -all"},
			"macro.example":   {"v=spf1 exists:%{i}.list.example -all"},
			"passall.example": {"v=spf1 ip4:192.0.2.1 +all"},
			"exists.example":  {"v=spf1 exists:both.example -all"},
			"neutral.example": {"v=spf1 ip4:192.0.2.1 ?all"},
			"noall.example":   {"v=spf1 ip4:192.0.2.1"},
			"redall.example":  {"v=spf1 ip4:192.0.2.1 -all redirect=inc.example"},
			"after.example":   {"v=spf1 -all ip4:192.0.2.1"},
			"wide.example":    {"v=spf1 ip4:0.0.0.0/1 -all"},
			"pmacro.example":  {"v=spf1 exists:%{p}.list.example -all"},
			"nullmx.example":  {"v=spf1 ip4:192.0.2.1 -all"},
			"local.example":   {"v=spf1 include:%{l}.users.example -all"},
			"tmp.example":     {"v=spf1 exists:%{i}.tmp.example -all"},
			"sends.example":   {"v=spf1 a -all"},
			"quiet.example":   {"v=spf1 -all"},
		},
		SPF: map[string][]string{
			"t99.example": {"v=spf1 -all"},
		},
		A: map[string][]netip.Addr{
			"both.example":  addrs("192.0.2.10"),
			"v4a.example":   addrs("192.0.2.11"),
			"v4b.example":   addrs("192.0.2.12"),
			"v4c.example":   addrs("192.0.2.13"),
			"host.example":  addrs("192.0.2.55"),
			"mxa.example":   addrs("192.0.2.20"),
			"www.example":   addrs("192.0.2.80"),
			"sends.example": addrs("192.0.2.81"),
		},
		AAAA: map[string][]netip.Addr{
			"both.example": addrs("2001:db8::10"),
		},
		MX: map[string][]string{
			"mxmany.example": many,
			"nullmx.example": {"."},
		},
		PTR: map[string][]string{
			"192.0.2.55": {"n1.example", "n2.example", "n3.example", "n4.example", "n5.example", "n6.example",
				"n7.example", "n8.example", "n9.example", "n10.example", "host.example"},
		},
		Fail: map[string]error{
			"TXT broken.example":        spftest.ErrServFail,
			"A 192.0.2.1.tmp.example":   spftest.ErrServFail,
			"A 192.0.2.200.tmp.example": spftest.ErrServFail,
		},
	}
}

// serve starts a loopback DNS server for world and returns the milter's DNS
// client pointed at it.
func serve(t testing.TB, world *spftest.Resolver) *resolver.Client {
	t.Helper()
	srv := spftest.NewServer(t, world)
	rc, err := resolver.New(resolver.Options{Servers: []string{srv.Addr()}, Timeout: 500 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

type want struct {
	id, path, client string
}

// lintCases cover every finding; TestEveryFindingCovered keeps it so.
var lintCases = []struct {
	domain  string
	noMail  []string
	clients []string
	want    []want
}{
	{domain: "nothing.example", want: []want{{"no-record", "nothing.example", ""}}},
	{domain: "two.example", want: []want{{"multiple-records", "two.example", ""}}},
	{domain: "syn.example", want: []want{{"syntax", "syn.example", ""}}},
	{domain: "split.example", want: []want{{"syntax", "split.example", ""}, {"long-record", "split.example", ""}}},
	{domain: "octet.example", want: []want{{"syntax", "octet.example", ""}}},
	{domain: "expmac.example", want: []want{{"exp-only-macro", "expmac.example", ""}}},
	{domain: "dnserr.example", want: []want{{"dns-error", "dnserr.example > include:broken.example", ""}}},
	{domain: "long.example", want: []want{{"long-record", "long.example", ""}}},
	{domain: "big.example", want: []want{{"udp-size", "big.example", ""}}},
	{domain: "t99.example", want: []want{{"spf-type99", "t99.example", ""}}},
	{domain: "many.example", want: []want{
		{"dns-terms", "many.example > include:deep.example > a:both.example", ""},
	}},
	{domain: "v6void.example", want: []want{
		{"void-lookup", "v6void.example > a:v4a.example", "ipv6"},
		{"void-lookups", "v6void.example > a:v4c.example", "ipv6"},
	}},
	{domain: "mxmany.example", want: []want{{"mx-names", "mxmany.example > mx", ""}}},
	{domain: "ptr.example", want: []want{
		{"ptr", "ptr.example > ptr", ""},
		{"ptr-names", "ptr.example", ""},
	}},
	{domain: "incnone.example", want: []want{{"include-no-record", "incnone.example > include:nothing.example", ""}}},
	{domain: "rednone.example", want: []want{{"redirect-no-record", "rednone.example > redirect=nothing.example", ""}}},
	{domain: "invalid.example", want: []want{{"invalid-target", "invalid.example > include:foo..example", ""}}},
	{domain: "loop.example", want: []want{{"loop", "loop.example > include:loop2.example > include:loop.example", ""}}},
	{domain: "dup.example", want: []want{{"duplicate-include", "dup.example > include:inc.example", ""}}},
	{domain: "macro.example", want: []want{
		{"macro-target", "macro.example > exists:%{i}.list.example", ""},
	}},
	{domain: "passall.example", want: []want{{"pass-all", "passall.example > +all", ""}}},
	{domain: "exists.example", want: []want{{"pass-all", "exists.example > exists:both.example", ""}}},
	{domain: "neutral.example", want: []want{{"neutral-all", "neutral.example > ?all", ""}}},
	{domain: "noall.example", want: []want{{"no-all", "noall.example", ""}}},
	{domain: "redall.example", want: []want{{"redirect-with-all", "redall.example > redirect=inc.example", ""}}},
	{domain: "after.example", want: []want{{"terms-after-all", "after.example > -all", ""}}},
	{domain: "wide.example", want: []want{{"wide-network", "wide.example > ip4:0.0.0.0/1", ""}}},
	{domain: "pmacro.example", want: []want{{"p-macro", "pmacro.example > exists:%{p}.list.example", ""}}},
	{domain: "nullmx.example", want: []want{{"nonsending-host", "nullmx.example", ""}}},
	{domain: "ok.example", noMail: []string{"www.example", "sends.example", "quiet.example"}, want: []want{
		{"nonsending-host", "www.example", ""},
		{"nonsending-host", "sends.example", ""},
	}},
	{domain: "local.example", want: []want{{"permerror", "local.example", "ipv4"}}},
	{domain: "tmp.example", clients: []string{"192.0.2.200"}, want: []want{{"temperror", "tmp.example", "ipv4"}}},
}

func TestLintFindings(t *testing.T) {
	rc := serve(t, lintWorld())
	for _, tc := range lintCases {
		t.Run(tc.domain, func(t *testing.T) {
			var clients []netip.Addr
			for _, c := range tc.clients {
				clients = append(clients, netip.MustParseAddr(c))
			}
			rep, err := Lint(context.Background(), tc.domain, Options{Resolver: rc, NoMail: tc.noMail, Clients: clients})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				found := slices.ContainsFunc(rep.Findings, func(f Finding) bool {
					return f.ID == w.id && strings.Join(f.Path, " > ") == w.path && f.Client == w.client
				})
				if !found {
					t.Errorf("no %s at %q (client %q); findings:\n%s", w.id, w.path, w.client, dump(rep))
				}
			}
			for _, f := range rep.Findings {
				if f.Severity != checks[f.ID].severity || f.Advice == "" || f.Message == "" || len(f.Path) == 0 {
					t.Errorf("malformed finding %+v", f)
				}
			}
			wantErr := slices.ContainsFunc(tc.want, func(w want) bool { return checks[w.id].severity == Error })
			if wantErr != (rep.Errors() > 0) {
				t.Errorf("%d errors, want some: %v\n%s", rep.Errors(), wantErr, dump(rep))
			}
		})
	}
}

func dump(rep *Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		b.WriteString("  " + string(f.Severity) + " " + f.ID + " [" + f.Client + "] " + strings.Join(f.Path, " > ") + ": " + f.Message + "\n")
	}
	return b.String()
}

func TestEveryFindingCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range lintCases {
		for _, w := range tc.want {
			covered[w.id] = true
		}
	}
	for _, id := range IDs() {
		if !covered[id] {
			t.Errorf("finding %s has no case in lintCases", id)
		}
	}
}

// A clean record has no finding, and the worst case the walk computes is
// what the engine does for the clients the record does not list.
func TestLintCleanAgreesWithEngine(t *testing.T) {
	rc := serve(t, lintWorld())
	rep, err := Lint(context.Background(), "OK.example.", Options{Resolver: rc})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Errorf("findings for a clean record:\n%s", dump(rep))
	}
	if rep, err := Lint(context.Background(), "bücher.example", Options{Resolver: rc}); err != nil || rep.Domain != "xn--bcher-kva.example" {
		t.Errorf("IDN domain: %+v, %v", rep, err)
	}
	if rep.Domain != "ok.example" || rep.Record != "v=spf1 ip4:192.0.2.0/25 include:inc.example a:both.example -all" {
		t.Errorf("domain %q record %q", rep.Domain, rep.Record)
	}
	if rep.DNSTerms != 2 || rep.VoidIPv4 != 0 || rep.VoidIPv6 != 0 {
		t.Errorf("worst case %d terms, %d/%d voids; want 2, 0/0", rep.DNSTerms, rep.VoidIPv4, rep.VoidIPv6)
	}
	if len(rep.Evaluations) != 2 {
		t.Fatalf("evaluations %+v, want an IPv4 and an IPv6 client", rep.Evaluations)
	}
	for _, e := range rep.Evaluations {
		ip := netip.MustParseAddr(e.Client)
		if netip.MustParsePrefix("192.0.2.0/25").Contains(ip) || netip.MustParsePrefix("2001:db8:1::/48").Contains(ip) {
			t.Errorf("probe client %s is listed by the record", ip)
		}
		if e.Result != spf.Fail || e.DNSLookups != rep.DNSTerms || e.VoidLookups != 0 {
			t.Errorf("engine for %s: %+v, want fail with %d lookups", e.Client, e, rep.DNSTerms)
		}
	}
}

// IPv6 clients alone go over the void limit when a names have only A
// records; the engine agrees.
func TestLintVoidPerFamily(t *testing.T) {
	rc := serve(t, lintWorld())
	rep, err := Lint(context.Background(), "v6void.example", Options{Resolver: rc})
	if err != nil {
		t.Fatal(err)
	}
	if rep.VoidIPv4 != 0 || rep.VoidIPv6 != 3 {
		t.Errorf("void lookups %d/%d, want 0/3", rep.VoidIPv4, rep.VoidIPv6)
	}
	got := map[string]spf.Result{}
	for _, e := range rep.Evaluations {
		got[familyOf(netip.MustParseAddr(e.Client))] = e.Result
	}
	if got["ipv4"] != spf.Fail || got["ipv6"] != spf.Permerror {
		t.Errorf("engine results %v, want fail for IPv4 and permerror for IPv6", got)
	}
	for _, f := range rep.Findings {
		if f.ID == "void-lookups" && f.Client != "ipv6" {
			t.Errorf("void-lookups for %q clients", f.Client)
		}
	}
}

func TestLintBadInput(t *testing.T) {
	rc := serve(t, lintWorld())
	for _, d := range []string{"", "localhost", "a b.example", "user@example.org", strings.Repeat("a", 64) + ".example"} {
		if _, err := Lint(context.Background(), d, Options{Resolver: rc}); err == nil {
			t.Errorf("Lint(%q): no error", d)
		}
	}
	if _, err := Lint(context.Background(), "ok.example", Options{}); err == nil {
		t.Error("Lint without a resolver: no error")
	}
}

func TestProbesAvoidListedNetworks(t *testing.T) {
	listed := []netip.Prefix{
		netip.MustParsePrefix("192.0.0.0/8"), netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"),
	}
	got := probes(listed)
	want := addrs("100.64.0.1", "100::1")
	if !slices.Equal(got, want) {
		t.Errorf("probes %v, want %v", got, want)
	}
	if got := probes([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}); !slices.Equal(got, addrs("2001:db8::1")) {
		t.Errorf("probes with every IPv4 address listed: %v", got)
	}
}

// A syntax error in a record sent as several strings says how receivers
// join them: the usual cause is a space lost at a join.
func TestLintSplitRecordHint(t *testing.T) {
	rep, err := Lint(context.Background(), "split.example", Options{Resolver: serve(t, lintWorld())})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Findings, func(f Finding) bool {
		return f.ID == "syntax" && strings.Contains(f.Message, "sent as 2 strings, joined without spaces")
	}) {
		t.Errorf("no hint about the joined strings:\n%s", dump(rep))
	}
}

// A record not yet published is checked in place of the published one, by
// the walk and by the engine alike, with the other TXT records it will sit
// beside.
func TestLintProposedRecord(t *testing.T) {
	rc := serve(t, lintWorld())
	long := "v=spf1 " + repeat("ip4:192.0.2.1", 20) + " include:inc.example +all"
	rep, err := Lint(context.Background(), "ok.example", Options{Resolver: rc, Record: long})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Record != long {
		t.Errorf("record %q", rep.Record)
	}
	for _, id := range []string{"pass-all", "long-record"} {
		if !slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.ID == id }) {
			t.Errorf("no %s:\n%s", id, dump(rep))
		}
	}
	for _, e := range rep.Evaluations {
		if e.Result != spf.Pass || e.Mechanism != "+all" {
			t.Errorf("engine for %s: %+v, want pass by +all", e.Client, e)
		}
	}
	// The published record and its neighbour stay out of it.
	rep, err = Lint(context.Background(), "nothing.example", Options{Resolver: rc, Record: "v=spf1 -all"})
	if err != nil || len(rep.Findings) != 0 {
		t.Errorf("a clean record for a name without one: %v\n%s", err, dump(rep))
	}
	if _, err := Lint(context.Background(), "ok.example", Options{Resolver: rc, Record: "spf1 -all"}); err == nil {
		t.Error("a record without v=spf1: no error")
	}
}
