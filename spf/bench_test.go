package spf_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// Warm-cache benchmarks: the fake resolver answers from maps without
// recording queries, and the parsed-record cache is hot after the first
// iteration, so these measure the evaluator itself.

func benchCheck(b *testing.B, w *spftest.Resolver, args spf.Args, want spf.Result) {
	b.Helper()
	w.NoRecord = true
	c := &spf.Checker{Resolver: w}
	ctx := context.Background()
	if o := c.CheckMailFrom(ctx, args); o.Result != want {
		b.Fatalf("result %s (%s), want %s", o.Result, o.Problem, want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.CheckMailFrom(ctx, args)
	}
}

func BenchmarkCheckIP4(b *testing.B) {
	w := &spftest.Resolver{TXT: map[string][]string{
		"example.com": {"v=spf1 ip4:192.0.2.0/24 -all"},
	}}
	benchCheck(b, w, spf.Args{IP: netip.MustParseAddr("192.0.2.10"), Sender: "user@example.com", HELO: "mail.example.com"}, spf.Pass)
}

// includeTree is shaped like a large mail provider's policy: the domain
// includes a hub, which includes three netblock records with dozens of
// IPv4 and IPv6 ranges between them.
func includeTree() *spftest.Resolver {
	var nb1, nb2, nb3 []string
	for i := range 24 {
		nb1 = append(nb1, fmt.Sprintf("ip4:%d.%d.0.0/16", 20+i, i*3))
		nb2 = append(nb2, fmt.Sprintf("ip6:2001:db8:%x::/48", 0x100+i))
		nb3 = append(nb3, fmt.Sprintf("ip4:198.%d.%d.0/24", 18+i%2, i*7))
	}
	return &spftest.Resolver{TXT: map[string][]string{
		"example.com":             {"google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789", "v=spf1 include:_spf.example.com ~all"},
		"_spf.example.com":        {"v=spf1 include:_netblocks.example.com include:_netblocks2.example.com include:_netblocks3.example.com ~all"},
		"_netblocks.example.com":  {"v=spf1 " + strings.Join(nb1, " ") + " ~all"},
		"_netblocks2.example.com": {"v=spf1 " + strings.Join(nb2, " ") + " ~all"},
		"_netblocks3.example.com": {"v=spf1 " + strings.Join(nb3, " ") + " ~all"},
	}}
}

func BenchmarkCheckIncludeTree(b *testing.B) {
	// 198.19.161.5 is in the 23rd range of the third netblock record: every
	// record of the tree is fetched and scanned.
	benchCheck(b, includeTree(), spf.Args{IP: netip.MustParseAddr("198.19.161.5"), Sender: "someone@example.com", HELO: "mail.example.org"}, spf.Pass)
}

func BenchmarkCheckMXExists(b *testing.B) {
	w := &spftest.Resolver{
		TXT: map[string][]string{
			"example.com": {"v=spf1 mx exists:%{ir}.%{l1r+-}._spf.%{d} -all"},
		},
		MX: map[string][]string{"example.com": {"mx1.example.com.", "mx2.example.com."}},
		A: map[string][]netip.Addr{
			"mx1.example.com":                    {netip.MustParseAddr("192.0.2.1")},
			"mx2.example.com":                    {netip.MustParseAddr("192.0.2.2")},
			"7.2.0.192.someone._spf.example.com": {netip.MustParseAddr("127.0.0.2")},
		},
	}
	benchCheck(b, w, spf.Args{IP: netip.MustParseAddr("192.0.2.7"), Sender: "someone@example.com", HELO: "mail.example.org"}, spf.Pass)
}
