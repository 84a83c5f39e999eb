package resolver

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// BenchmarkCacheHit is one TXT lookup answered from the cache.
func BenchmarkCacheHit(b *testing.B) {
	s := spftest.NewServer(b, &spftest.Resolver{TXT: map[string][]string{
		"example.com": {"v=spf1 ip4:192.0.2.0/24 -all"},
	}})
	c, err := New(Options{Servers: []string{s.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.LookupTXT(ctx, "example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.LookupTXT(ctx, "example.com"); err != nil {
			b.Fatal(err)
		}
	}
	if n := s.QueryCount(); n != 1 {
		b.Fatalf("server saw %d queries, want 1", n)
	}
}

// BenchmarkCheckWarmCache is a whole MAIL FROM check through this client,
// every answer cached, on a three-level include tree shaped like a large mail
// provider's policy: the domain includes a hub, which includes three netblock
// records with dozens of IPv4 and IPv6 ranges.
func BenchmarkCheckWarmCache(b *testing.B) {
	var nb1, nb2, nb3 []string
	for i := range 24 {
		nb1 = append(nb1, fmt.Sprintf("ip4:%d.%d.0.0/16", 20+i, i*3))
		nb2 = append(nb2, fmt.Sprintf("ip6:2001:db8:%x::/48", 0x100+i))
		nb3 = append(nb3, fmt.Sprintf("ip4:198.%d.%d.0/24", 18+i%2, i*7))
	}
	s := spftest.NewServer(b, &spftest.Resolver{TXT: map[string][]string{
		"example.com":             {"google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789", "v=spf1 include:_spf.example.com ~all"},
		"_spf.example.com":        {"v=spf1 include:_netblocks.example.com include:_netblocks2.example.com include:_netblocks3.example.com ~all"},
		"_netblocks.example.com":  {"v=spf1 " + strings.Join(nb1, " ") + " ~all"},
		"_netblocks2.example.com": {"v=spf1 " + strings.Join(nb2, " ") + " ~all"},
		"_netblocks3.example.com": {"v=spf1 " + strings.Join(nb3, " ") + " ~all"},
	}})
	c, err := New(Options{Servers: []string{s.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	chk := &spf.Checker{Resolver: c}
	// 198.19.161.5 is in the 23rd range of the third netblock record: every
	// record of the tree is fetched and scanned.
	args := spf.Args{IP: netip.MustParseAddr("198.19.161.5"), Sender: "someone@example.com", HELO: "mail.example.org"}
	ctx := context.Background()
	if o := chk.CheckMailFrom(ctx, args); o.Result != spf.Pass {
		b.Fatalf("result %s (%s), want pass", o.Result, o.Problem)
	}
	warm := s.QueryCount()
	b.ReportAllocs()
	for b.Loop() {
		chk.CheckMailFrom(ctx, args)
	}
	if n := s.QueryCount(); n != warm {
		b.Fatalf("server saw %d queries after warming, want none", n-warm)
	}
}

// BenchmarkCacheHitParallel is BenchmarkCacheHit from every core at once.
func BenchmarkCacheHitParallel(b *testing.B) {
	s := spftest.NewServer(b, &spftest.Resolver{TXT: map[string][]string{
		"example.com": {"v=spf1 ip4:192.0.2.0/24 -all"},
	}})
	c, err := New(Options{Servers: []string{s.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.LookupTXT(context.Background(), "example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := c.LookupTXT(ctx, "example.com"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
