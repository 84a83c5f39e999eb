package milter

import (
	"net"
	"net/netip"
	"strings"
)

// clientAddr finds the SMTP client's address. The connect packet's address
// comes first; when it is missing — Sendmail sends IPv6 clients as
// "IPv6:0:0:0:0:0:0:0:1", which the library cannot parse, and `sendmail -bs`
// sends no address at all — the {client_addr} macro, then the address in
// brackets of the "_" macro ("host [addr]") are used. The result is invalid
// when none of them holds an address.
func clientAddr(packet net.IP, macros map[string]string) netip.Addr {
	if a, ok := netip.AddrFromSlice(packet); ok {
		return a.Unmap()
	}
	if a, ok := parseMacroAddr(macros["{client_addr}"]); ok {
		return a
	}
	v := macros["_"]
	if i := strings.LastIndexByte(v, '['); i >= 0 {
		if j := strings.IndexByte(v[i:], ']'); j > 0 {
			if a, ok := parseMacroAddr(v[i+1 : i+j]); ok {
				return a
			}
		}
	}
	return netip.Addr{}
}

// parseMacroAddr parses an address as MTAs write it in macros: possibly
// prefixed "IPv6:" in any case (the RFC 5321 §4.1.3 address-literal tag),
// possibly in brackets.
func parseMacroAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if len(s) >= 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}
