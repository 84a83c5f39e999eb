package spf_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

func ExampleChecker_CheckMailFrom() {
	world := &spftest.Resolver{TXT: map[string][]string{
		"example.com":      {"v=spf1 include:_spf.example.com -all"},
		"_spf.example.com": {"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all"},
	}}
	c := &spf.Checker{Resolver: world}
	for _, ip := range []string{"192.0.2.25", "198.51.100.7"} {
		o := c.CheckMailFrom(context.Background(), spf.Args{
			IP:     netip.MustParseAddr(ip),
			Sender: "alice@example.com",
			HELO:   "mail.example.com",
		})
		fmt.Printf("%s: %s via %s, %d DNS terms\n", ip, o.Result, o.Mechanism, o.DNSLookups)
		if o.Explanation != "" {
			fmt.Println(o.Explanation)
		}
	}
	// Output:
	// 192.0.2.25: pass via include:_spf.example.com, 1 DNS terms
	// 198.51.100.7: fail via -all, 1 DNS terms
	// example.com does not designate 198.51.100.7 as permitted sender
}
