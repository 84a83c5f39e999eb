package lint

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/spfmilter/spfmilter/spf"
)

// evaluate runs the engine for the probe clients.
func (w *walker) evaluate(domain string, opts Options) {
	clients := opts.Clients
	if len(clients) == 0 {
		clients = probes(w.addrs)
	}
	sender := cmp.Or(opts.Sender, "postmaster@"+domain)
	c := &spf.Checker{Resolver: w.res}
	errs := w.rep.Errors()
	for _, ip := range clients {
		o := c.CheckMailFrom(w.ctx, spf.Args{IP: ip, Sender: sender, HELO: cmp.Or(opts.HELO, domain)})
		w.rep.Evaluations = append(w.rep.Evaluations, Evaluation{
			Client: ip.String(), Result: o.Result, Mechanism: o.Mechanism, Problem: o.Problem,
			DNSLookups: o.DNSLookups, VoidLookups: o.VoidLookups,
		})
		// The walk explains most of these; the engine's word stands for
		// what it did not catch.
		if errs == 0 && (o.Result == spf.Permerror || o.Result == spf.Temperror) {
			w.add(string(o.Result), []string{domain}, familyOf(ip), "the engine returns %s for %s: %s", o.Result, ip, o.Problem)
		}
	}
}

func familyOf(ip netip.Addr) string {
	if ip.Unmap().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// probes picks one IPv4 and one IPv6 address that no network of the tree
// contains: from the documentation ranges (RFC 5737, RFC 3849) if one is
// free, else from ranges no sender uses (RFC 6598 shared space, the
// reserved 240.0.0.0/4, the discard-only 100::/64 of RFC 6666).
func probes(listed []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, family := range [][]string{
		{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "100.64.0.0/24", "240.0.0.0/24"},
		{"2001:db8::/120", "2001:db8:ffff::/120", "100::/120"},
	} {
		for _, base := range family {
			if a, ok := freeAddr(netip.MustParsePrefix(base), listed); ok {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

func freeAddr(in netip.Prefix, listed []netip.Prefix) (netip.Addr, bool) {
	a := in.Addr().Next()
	for range 256 {
		if !in.Contains(a) {
			break
		}
		if !slices.ContainsFunc(listed, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return a, true
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}
