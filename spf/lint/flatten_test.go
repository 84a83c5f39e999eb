package lint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// flattenWorld is a tree with every kind of term flatten resolves:
// qualifiers other than pass inside and outside includes, overlapping
// ranges, nested includes, redirect, a and mx with prefix lengths, and a
// provider with enough scattered addresses to need chunks.
func flattenWorld(r *rand.Rand) *spftest.Resolver {
	var scattered []string
	for range 60 {
		scattered = append(scattered, fmt.Sprintf("ip4:203.0.%d.%d", 112+r.IntN(4), r.IntN(256)))
	}
	for range 10 {
		scattered = append(scattered, fmt.Sprintf("ip6:2001:db8:5::%x/%d", r.IntN(1<<16), 112+r.IntN(17)))
	}
	return &spftest.Resolver{
		TXT: map[string][]string{
			"flat.example": {"v=spf1 -ip4:192.0.2.128/26 ip4:192.0.2.0/24 include:prov1.example ~include:prov2.example " +
				"a:host.example/28 mx//120 ?ip6:2001:db8:9::/48 include:many.example redirect=rest.example"},
			"prov1.example": {"v=spf1 -ip4:198.51.100.64/26 ip4:198.51.100.0/24 ip6:2001:db8:1::/48 ~all"},
			"prov2.example": {"v=spf1 ip4:192.0.2.192/27 include:prov3.example -all"},
			"prov3.example": {"v=spf1 ?ip4:198.51.101.0/25 ip4:198.51.101.0/24 ip6:2001:db8:2::/64 a:p3host.example"},
			"many.example":  {"v=spf1 " + strings.Join(scattered, " ") + " -all"},
			"rest.example":  {"v=spf1 ip4:198.51.102.0/23 ~ip4:10.0.0.0/8 -all"},
		},
		A: map[string][]netip.Addr{
			"host.example":     addrs("192.0.2.200", "198.51.103.77"),
			"p3host.example":   addrs("198.51.104.1"),
			"mx1.flat.example": addrs("198.51.105.9"),
		},
		AAAA: map[string][]netip.Addr{
			"host.example":     addrs("2001:db8:7::1"),
			"mx1.flat.example": addrs("2001:db8:8::1234"),
		},
		MX: map[string][]string{
			"flat.example": {"mx1.flat.example", "mx2.flat.example"},
		},
	}
}

// networks lists every network of a world's records and addresses, whose
// edges the equivalence test probes.
func networks(w *spftest.Resolver) []netip.Prefix {
	var out []netip.Prefix
	for _, txts := range w.TXT {
		for _, t := range txts {
			rec, err := spf.ParseRecord(t)
			if err != nil {
				continue
			}
			for _, term := range rec.Terms {
				if term.Mechanism == "ip4" || term.Mechanism == "ip6" {
					out = append(out, term.Prefix)
				}
			}
		}
	}
	for _, m := range []map[string][]netip.Addr{w.A, w.AAAA} {
		for _, as := range m {
			for _, a := range as {
				for _, bits := range []int{a.BitLen(), 28, 120} {
					if p, err := a.Prefix(bits); err == nil {
						out = append(out, p)
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), a.Bits()-b.Bits())
	})
	return out
}

// probeAddrs are the edges of every network, just inside and just outside,
// and random addresses near them and anywhere.
func probeAddrs(r *rand.Rand, nets []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, p := range nets {
		lo, hi := p.Masked().Addr(), lastAddr(p)
		out = append(out, lo, hi)
		if a := lo.Prev(); a.IsValid() {
			out = append(out, a)
		}
		if a := hi.Next(); a.IsValid() {
			out = append(out, a)
		}
	}
	for range 1500 {
		p := nets[r.IntN(len(nets))]
		b := p.Masked().Addr().As16()
		// Anywhere in the enclosing /(bits-2), so that both sides are hit.
		bits := max(p.Bits()-2, 0)
		if p.Addr().Is4() {
			bits += 96
		}
		for i := bits; i < 128; i++ {
			if r.IntN(2) == 1 {
				b[i/8] ^= 0x80 >> (i % 8)
			}
		}
		a := netip.AddrFrom16(b)
		if p.Addr().Is4() {
			a = a.Unmap()
		}
		out = append(out, a)
	}
	for range 200 {
		out = append(out, netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}))
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		out = append(out, netip.AddrFrom16(b))
	}
	return out
}

// TestFlattenEquivalent flattens a tree and checks, with the engine, that
// the flattened records (served from a second DNS server) give every probed
// address the same result as the original tree.
func TestFlattenEquivalent(t *testing.T) {
	r := rand.New(rand.NewPCG(7208, 1))
	world := flattenWorld(r)
	orig := serve(t, world)
	out, err := Flatten(context.Background(), "flat.example", FlattenOptions{
		Resolver: orig, ExpandA: true, ExpandMX: true, ChunkName: "_s%d.flat.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("record: %s", out.Record)
	for _, c := range out.Chunks {
		t.Logf("%s: %s", c.Name, c.Record)
	}
	if len(out.Chunks) < 2 {
		t.Errorf("%d chunks, want the ranges split", len(out.Chunks))
	}
	if len(out.Kept) != 0 {
		t.Errorf("kept %q, want everything flattened", out.Kept)
	}
	if out.TTL != spftest.DefaultTTL {
		t.Errorf("TTL %d, want %d", out.TTL, spftest.DefaultTTL)
	}
	if !slices.ContainsFunc(out.Warnings, func(w string) bool { return strings.Contains(w, "stale") }) {
		t.Errorf("no staleness warning in %q", out.Warnings)
	}
	flat := &spftest.Resolver{TXT: map[string][]string{"flat.example": {out.Record}}}
	for _, rec := range append([]Chunk{{"flat.example", out.Record}}, out.Chunks...) {
		if len(rec.Record) > maxString {
			t.Errorf("%s: %d bytes, over one string", rec.Name, len(rec.Record))
		}
		flat.TXT[rec.Name] = []string{rec.Record}
	}
	flatRes := serve(t, flat)

	lint, err := Lint(context.Background(), "flat.example", Options{Resolver: flatRes})
	if err != nil {
		t.Fatal(err)
	}
	if lint.Errors() > 0 || lint.DNSTerms > spf.MaxDNSTerms {
		t.Errorf("the flattened record lints with errors:\n%s", dump(lint))
	}

	before := &spf.Checker{Resolver: orig}
	after := &spf.Checker{Resolver: flatRes}
	counts := map[spf.Result]int{}
	probes := probeAddrs(r, networks(world))
	for _, ip := range probes {
		a := spf.Args{IP: ip, Sender: "user@flat.example", HELO: "client.example"}
		o1 := before.CheckMailFrom(context.Background(), a)
		o2 := after.CheckMailFrom(context.Background(), a)
		counts[o1.Result]++
		if o1.Result != o2.Result {
			t.Errorf("%s: original %s (%s %s), flattened %s (%s %s)", ip, o1.Result, o1.Mechanism, o1.Problem, o2.Result, o2.Mechanism, o2.Problem)
		}
	}
	t.Logf("%d addresses: %v", len(probes), counts)
	for _, res := range []spf.Result{spf.Pass, spf.Fail, spf.Softfail, spf.Neutral} {
		if counts[res] == 0 {
			t.Errorf("no probed address gets %s: the test proves little", res)
		}
	}
}

// Without --expand-a and --expand-mx the domain's own a and mx stay, and
// what cannot be flattened is kept with a warning.
func TestFlattenKeeps(t *testing.T) {
	world := &spftest.Resolver{
		TXT: map[string][]string{
			"keep.example":  {"v=spf1 a mx ptr exists:%{i}.list.example include:dyn.example include:plain.example -all"},
			"dyn.example":   {"v=spf1 ip4:192.0.2.1 exists:%{l}.dyn.example -all"},
			"plain.example": {"v=spf1 ip4:192.0.2.0/25 ip4:192.0.2.128/25 -all"},
		},
	}
	out, err := Flatten(context.Background(), "keep.example", FlattenOptions{Resolver: serve(t, world)})
	if err != nil {
		t.Fatal(err)
	}
	want := "v=spf1 a mx ptr exists:%{i}.list.example include:dyn.example ip4:192.0.2.0/24 -all"
	if out.Record != want {
		t.Errorf("record\n %q, want\n %q", out.Record, want)
	}
	if !slices.Equal(out.Kept, []string{"ptr", "exists:%{i}.list.example", "include:dyn.example"}) {
		t.Errorf("kept %q", out.Kept)
	}
	kept := 0
	for _, w := range out.Warnings {
		if strings.Contains(w, "kept as written") {
			kept++
		}
	}
	if kept != 3 {
		t.Errorf("warnings %q, want one for each kept term", out.Warnings)
	}
}

func TestFlattenRefuses(t *testing.T) {
	world := &spftest.Resolver{
		TXT: map[string][]string{
			"broken.example": {"v=spf1 include:missing.example -all"},
			"loop.example":   {"v=spf1 include:loop.example -all"},
			"heavy.example":  {"v=spf1 include:e1.example include:e2.example -all"},
			"e1.example":     {"v=spf1 exists:%{i}.a.example exists:%{i}.b.example -all"},
			"e2.example":     {"v=spf1 exists:%{i}.c.example -all"},
			"moved.example":  {"v=spf1 ip4:192.0.2.1 redirect=target.example"},
			"target.example": {"v=spf1 exists:%{i}.%{d}.example -all"},
		},
	}
	rc := serve(t, world)
	for _, d := range []string{"broken.example", "loop.example", "missing.example", "moved.example"} {
		if _, err := Flatten(context.Background(), d, FlattenOptions{Resolver: rc}); !errors.Is(err, ErrCannotFlatten) {
			t.Errorf("%s: error %v, want ErrCannotFlatten", d, err)
		}
	}
	// The two kept includes cost 3 + 2 lookups.
	if _, err := Flatten(context.Background(), "heavy.example", FlattenOptions{Resolver: rc, MaxLookups: 4}); !errors.Is(err, ErrCannotFlatten) {
		t.Errorf("heavy.example with 4 lookups: error %v, want ErrCannotFlatten", err)
	}
	if _, err := Flatten(context.Background(), "heavy.example", FlattenOptions{Resolver: rc, MaxLookups: 5}); err != nil {
		t.Errorf("heavy.example with 5 lookups: %v", err)
	}
}

// prefixes covers exactly the set, with no prefix that two smaller ones
// could replace, on random sets checked address by address.
func TestPrefixesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := netip.MustParseAddr("192.0.2.0")
	at := func(i int) netip.Addr {
		b := base.As4()
		b[3] = byte(i)
		return netip.AddrFrom4(b)
	}
	for range 200 {
		var in []netip.Prefix
		var out []netip.Prefix
		for range 1 + r.IntN(6) {
			p, _ := at(r.IntN(256)).Prefix(24 + r.IntN(9))
			in = append(in, p)
		}
		for range r.IntN(3) {
			p, _ := at(r.IntN(256)).Prefix(26 + r.IntN(7))
			out = append(out, p)
		}
		s := minus(setOf(in...), setOf(out...))
		ps := s.prefixes()
		for i := range 256 {
			a := at(i)
			want := slices.ContainsFunc(in, func(p netip.Prefix) bool { return p.Contains(a) }) &&
				!slices.ContainsFunc(out, func(p netip.Prefix) bool { return p.Contains(a) })
			got := slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
			if got != want || s.contains(a) != want {
				t.Fatalf("in %v out %v: %s in prefixes %v: %v, want %v", in, out, a, ps, got, want)
			}
		}
		for i, p := range ps {
			for _, q := range ps[i+1:] {
				if p.Overlaps(q) {
					t.Fatalf("%v: %s overlaps %s", ps, p, q)
				}
				// Two halves of one block must have been joined.
				if p.Bits() == q.Bits() && p.Bits() > 0 {
					pp, _ := p.Addr().Prefix(p.Bits() - 1)
					if pp.Contains(q.Addr()) {
						t.Fatalf("%v: %s and %s make one prefix", ps, p, q)
					}
				}
			}
		}
	}
}

// The ends of the address space: merging and subtracting at the last
// address, and the whole space as one prefix.
func TestRangesEdges(t *testing.T) {
	got := fullSet().prefixes()
	if want := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}; !slices.Equal(got, want) {
		t.Errorf("full set: %v", got)
	}
	s := minus(fullSet(), setOf(netip.MustParsePrefix("255.255.255.255/32"), netip.MustParsePrefix("::/128")))
	ps := s.prefixes()
	if len(ps) != 32+128 || s.contains(netip.MustParseAddr("255.255.255.255")) || s.contains(netip.MustParseAddr("::")) ||
		!s.contains(netip.MustParseAddr("255.255.255.254")) || !s.contains(netip.MustParseAddr("::1")) {
		t.Errorf("full set without its ends: %d prefixes %v", len(ps), ps)
	}
	u := union(setOf(netip.MustParsePrefix("255.255.255.0/25")), setOf(netip.MustParsePrefix("255.255.255.128/25")))
	if got := u.prefixes(); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("255.255.255.0/24")}) {
		t.Errorf("adjacent halves at the top: %v", got)
	}
	if !minus(setOf(netip.MustParsePrefix("192.0.2.0/24")), fullSet()).empty() {
		t.Error("a set minus everything is not empty")
	}
}

// prefixes is exact for IPv6 too.
func TestPrefixesExactIPv6(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	at := func(i int) netip.Addr {
		b := netip.MustParseAddr("2001:db8::").As16()
		b[15] = byte(i)
		return netip.AddrFrom16(b)
	}
	for range 100 {
		var in, out []netip.Prefix
		for range 1 + r.IntN(6) {
			p, _ := at(r.IntN(256)).Prefix(120 + r.IntN(9))
			in = append(in, p)
		}
		for range r.IntN(3) {
			p, _ := at(r.IntN(256)).Prefix(122 + r.IntN(7))
			out = append(out, p)
		}
		ps := minus(setOf(in...), setOf(out...)).prefixes()
		for i := range 256 {
			a := at(i)
			want := slices.ContainsFunc(in, func(p netip.Prefix) bool { return p.Contains(a) }) &&
				!slices.ContainsFunc(out, func(p netip.Prefix) bool { return p.Contains(a) })
			if got := slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) }); got != want {
				t.Fatalf("in %v out %v: %s in %v: %v, want %v", in, out, a, ps, got, want)
			}
		}
	}
}
