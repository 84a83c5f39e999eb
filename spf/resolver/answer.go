package resolver

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/internal/dnsname"
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
// owner names as octets up to ASCII case (RFC 4343; dnsname.Canonical), and
// ignores every record that is not on the chain or not of qtype. seen holds
// the names already visited (dnsname.Canonical) and is updated.
//
// miekg/dns gives names and TXT strings in presentation form; what is
// returned is raw octets.
func parseAnswer(m *dns.Msg, qname string, qtype uint16, seen map[string]bool) (answer, error) {
	var a answer
	a.ttl = 1<<32 - 1
	cur := dnsname.Canonical(qname)
	for {
		found := false
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Rrtype != qtype || h.Class != dns.ClassINET || !dnsname.Equal(h.Name, cur) {
				continue
			}
			found = true
			a.ttl = min(a.ttl, h.Ttl)
			switch rr := rr.(type) {
			case *dns.TXT:
				a.txt = append(a.txt, joinTXT(rr.Txt))
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
			if cn, ok := rr.(*dns.CNAME); ok && cn.Hdr.Class == dns.ClassINET && dnsname.Equal(cn.Hdr.Name, cur) {
				target = dnsname.Canonical(cn.Target)
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

// joinTXT is the text of one TXT record: its character-strings decoded from
// miekg/dns's presentation form ("\"", "\\", "\DDD") to the octets sent,
// and joined without anything between them (RFC 7208 §3.3).
func joinTXT(strs []string) string {
	if len(strs) == 1 {
		return dnsname.UnescapeTXT(strs[0])
	}
	var b strings.Builder
	for _, s := range strs {
		b.WriteString(dnsname.UnescapeTXT(s))
	}
	return b.String()
}

// hostName is a host name from a record as raw octets, ASCII lower-case,
// without the trailing dot ("." for the root, as in a null MX, RFC 7505).
// A name with a "." octet inside a label has no raw form and gives "", which
// no lookup can find.
func hostName(n string) string {
	if n == "." {
		return n
	}
	raw, ok := dnsname.Unescape(n)
	if !ok {
		return ""
	}
	return dnsname.LowerASCII(raw)
}
