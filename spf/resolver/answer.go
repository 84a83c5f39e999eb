package resolver

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// answer is what a response says about one question, records parsed.
type answer struct {
	txt   []string
	addrs []netip.Addr
	names []string
	// nxdomain: the name (or the end of its CNAME chain) does not exist.
	nxdomain bool
	// ttl is the smallest TTL of the records used, or the negative TTL.
	ttl uint32
	// next is the CNAME target to ask for when the response stops at a CNAME
	// without saying anything about it; hops is the CNAMEs followed.
	next string
	hops int
}

// parseAnswer reads a NOERROR or NXDOMAIN response to (qname, qtype). It
// follows the CNAME chain from qname within the answer section, matching
// owner names case-insensitively (RFC 4343), and ignores every record that is
// not on the chain or not of qtype. seen holds the names already visited
// (lower-case, fully qualified) and is updated.
func parseAnswer(m *dns.Msg, qname string, qtype uint16, seen map[string]bool) (answer, error) {
	var a answer
	a.ttl = 1<<32 - 1
	cur := strings.ToLower(qname)
	for {
		found := false
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Rrtype != qtype || h.Class != dns.ClassINET || !strings.EqualFold(h.Name, cur) {
				continue
			}
			found = true
			a.ttl = min(a.ttl, h.Ttl)
			switch rr := rr.(type) {
			case *dns.TXT:
				// RFC 7208 §3.3: the strings of one record are joined
				// without anything between them.
				a.txt = append(a.txt, strings.Join(rr.Txt, ""))
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					a.addrs = append(a.addrs, ip)
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
					a.addrs = append(a.addrs, ip)
				}
			case *dns.MX:
				a.names = append(a.names, hostName(rr.Mx))
			case *dns.PTR:
				a.names = append(a.names, hostName(rr.Ptr))
			}
		}
		if found {
			return a, nil
		}
		target := ""
		for _, rr := range m.Answer {
			if cn, ok := rr.(*dns.CNAME); ok && cn.Hdr.Class == dns.ClassINET && strings.EqualFold(cn.Hdr.Name, cur) {
				target = strings.ToLower(dns.Fqdn(cn.Target))
				a.ttl = min(a.ttl, cn.Hdr.Ttl)
				break
			}
		}
		if target == "" {
			break
		}
		if seen[target] {
			return answer{}, ErrCNAMELoop
		}
		seen[target] = true
		a.hops++
		if a.hops > MaxCNAMEChain {
			return answer{}, ErrCNAMELoop
		}
		cur = target
	}

	// No records of qtype at the end of the chain.
	soaTTL, hasSOA := negativeTTL(m)
	switch {
	case m.Rcode == dns.RcodeNameError:
		a.nxdomain = true
	case a.hops > 0 && !hasSOA:
		// The server stopped at a CNAME without chasing it: ask for the
		// target ourselves.
		a.next = cur
		return a, nil
	}
	// RFC 2308 §5: a negative answer is cached for the SOA's TTL, at most its
	// MINIMUM field; with no SOA it is not cached.
	if !hasSOA {
		soaTTL = 0
	}
	a.ttl = min(a.ttl, soaTTL)
	return a, nil
}

// negativeTTL is the negative-caching TTL from the authority section's SOA.
func negativeTTL(m *dns.Msg) (uint32, bool) {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}

// hostName is a host name from a record, lower-case without the trailing dot
// ("." for the root, as in a null MX, RFC 7505).
func hostName(n string) string {
	if n == "." {
		return n
	}
	return strings.ToLower(strings.TrimSuffix(n, "."))
}
