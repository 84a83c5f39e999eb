package lint

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// fuzzWorld is the DNS the fuzzed records refer to.
func fuzzWorld() *spftest.Resolver {
	return &spftest.Resolver{
		TXT: map[string][]string{
			"p1.example": {"v=spf1 ip4:192.0.2.0/26 -ip4:192.0.2.16/28 ip6:2001:db8:1::/64 ~all"},
			"p2.example": {"v=spf1 ?ip4:192.0.2.32/27 include:p1.example a:h.example -all"},
			"p3.example": {"v=spf1 exists:%{i}.x.example -all"},
			"r.example":  {"v=spf1 ip4:198.51.100.0/24 ~all"},
		},
		A:    map[string][]netip.Addr{"h.example": addrs("192.0.2.200", "198.51.100.9")},
		AAAA: map[string][]netip.Addr{"h.example": addrs("2001:db8:2::1")},
		MX:   map[string][]string{"fuzz.example": {"h.example"}, "m.example": {"h.example", "none.example"}},
	}
}

// FuzzLintFlatten checks any record (the text after "v=spf1 ") at
// fuzz.example: lint reports every record the parser refuses as an error,
// and a record flatten rewrites whole gives the same result as the
// original to a set of addresses around its networks.
func FuzzLintFlatten(f *testing.F) {
	for _, s := range []string{
		"ip4:192.0.2.0/24 -all",
		"include:p1.example include:p2.example mx a:h.example/24//48 -all",
		"-include:p2.example ip4:192.0.2.0/25 ?all",
		"~ip4:192.0.2.128/25 redirect=r.example",
		"include:p3.example ptr exists:%{l}.x.example -all",
		"ip4:192.0.2.0/33 -all",
		"a:%{c}.example -all",
		"mx:m.example//0 ip6:2001:db8::/32 +all",
	} {
		f.Add(s)
	}
	rc := serve(f, fuzzWorld())
	probes := addrs("192.0.2.0", "192.0.2.15", "192.0.2.16", "192.0.2.31", "192.0.2.32", "192.0.2.63", "192.0.2.64",
		"192.0.2.127", "192.0.2.128", "192.0.2.200", "192.0.2.255", "198.51.100.9", "198.51.100.255", "203.0.113.1",
		"2001:db8:1::1", "2001:db8:2::1", "2001:db8:2::2", "2001:db8::1", "2001:db9::1")
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > 450 {
			return
		}
		record := "v=spf1 " + body
		ctx := context.Background()
		rep, err := Lint(ctx, "fuzz.example", Options{Resolver: rc, Record: record})
		if err != nil {
			t.Fatal(err)
		}
		if _, perr := spf.ParseRecord(record); perr != nil && rep.Errors() == 0 {
			t.Fatalf("%q: the parser refuses it (%v) but lint finds no error:\n%s", record, perr, dump(rep))
		}
		// The walk's worst case bounds what the engine does for any
		// client, unless targets built from macros lead where the walk
		// does not follow.
		if !slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.ID == "macro-target" }) {
			for _, e := range rep.Evaluations {
				void := rep.VoidIPv4
				if netip.MustParseAddr(e.Client).Is6() {
					void = rep.VoidIPv6
				}
				if e.DNSLookups > rep.DNSTerms || e.VoidLookups > void {
					t.Fatalf("%q: the engine makes %d DNS-causing terms and %d void lookups for %s, over the worst case %d and %d:\n%s",
						record, e.DNSLookups, e.VoidLookups, e.Client, rep.DNSTerms, void, dump(rep))
				}
			}
		}
		orig := &proposed{Resolver: rc, records: map[string]string{"fuzz.example": record}}
		out, err := Flatten(ctx, "fuzz.example", FlattenOptions{Resolver: orig, ExpandA: true, ExpandMX: true})
		if err != nil || len(out.Kept) > 0 {
			return
		}
		flat := &proposed{Resolver: rc, records: map[string]string{"fuzz.example": out.Record}}
		for _, c := range out.Chunks {
			flat.records[c.Name] = c.Record
		}
		before, after := &spf.Checker{Resolver: orig}, &spf.Checker{Resolver: flat}
		for _, ip := range probes {
			a := spf.Args{IP: ip, Sender: "user@fuzz.example", HELO: "fuzz.example"}
			o1 := before.CheckMailFrom(ctx, a)
			if o1.Result == spf.Permerror || o1.Result == spf.Temperror {
				continue // beyond the limits, or broken: flatten says so
			}
			if o2 := after.CheckMailFrom(ctx, a); o2.Result != o1.Result {
				t.Fatalf("%q flattened to %q %v: %s gets %s (%s), flattened %s (%s)",
					record, out.Record, out.Chunks, ip, o1.Result, o1.Mechanism, o2.Result, o2.Mechanism)
			}
		}
	})
}
