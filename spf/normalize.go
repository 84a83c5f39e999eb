package spf

import (
	"net/netip"
	"strings"

	"github.com/spfmilter/spfmilter/internal/dnsname"
)

// Domain-name length limits (RFC 1035 §2.3.4; RFC 7208 §4.3 calls names that
// break them malformed).
const (
	maxLabelLen  = dnsname.MaxLabel
	maxDomainLen = dnsname.MaxName
)

// NormalizeDomain is the form in which Outcome.Domain names a domain:
// lower-case A-labels without the trailing dot. ok is false when name is not
// a usable multi-label domain name. Settings that name domains use it so
// that they compare equal to outcomes.
func NormalizeDomain(name string) (string, bool) { return normalizeDomain(strings.TrimSpace(name)) }

// normalizeDomain returns name lower-cased, without a trailing dot and with
// U-labels converted to A-labels, or ok=false when it is not a usable
// multi-label domain name (RFC 7208 §4.3: check_host() then returns none).
// The headers and the resolver use the same notion (internal/dnsname). An
// already normalized ASCII name is returned without allocating.
func normalizeDomain(name string) (string, bool) {
	d, ok := dnsname.Normalize(name)
	if !ok || dnsname.Labels(d) < 2 {
		return "", false
	}
	return d, true
}

// validQueryName reports whether an expanded domain-spec (lower-case, no
// trailing dot) can be queried at all: non-empty labels of at most 63 octets.
// Any other octet is allowed (RFC 7208 §7.1: "a domain-spec may contain any
// visible char except %" once expanded, and a macro may bring in more); the
// resolver sends it as it is.
func validQueryName(name string) bool { return dnsname.Queryable(name) }

// lowerASCII lower-cases ASCII letters, allocating only when something
// changes.
func lowerASCII(s string) string { return dnsname.LowerASCII(s) }

// isSubdomain reports whether name equals domain or is a subdomain of it,
// ignoring ASCII case and a trailing dot on name.
func isSubdomain(name, domain string) bool {
	name = strings.TrimSuffix(name, ".")
	if len(name) == len(domain) {
		return strings.EqualFold(name, domain)
	}
	if len(name) > len(domain) && name[len(name)-len(domain)-1] == '.' {
		return strings.EqualFold(name[len(name)-len(domain):], domain)
	}
	return false
}

// splitSender splits a MAIL FROM address at its last "@". A missing
// local-part becomes "postmaster" (RFC 7208 §4.3).
func splitSender(sender string) (local, domain string) {
	at := strings.LastIndexByte(sender, '@')
	if at < 0 {
		return "postmaster", sender
	}
	local, domain = sender[:at], sender[at+1:]
	if local == "" {
		local = "postmaster"
	}
	return local, domain
}

// isIPLiteral reports whether a HELO argument is an address literal
// ("[192.0.2.1]", "[IPv6:2001:db8::1]") or a bare address.
func isIPLiteral(helo string) bool {
	if strings.HasPrefix(helo, "[") {
		return true
	}
	_, err := netip.ParseAddr(helo)
	return err == nil
}
