package spf

import (
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// Domain-name length limits (RFC 1035 §2.3.4; RFC 7208 §4.3 calls names that
// break them malformed).
const (
	maxLabelLen  = 63
	maxDomainLen = 253
)

// NormalizeDomain is the form in which Outcome.Domain names a domain:
// lower-case A-labels without the trailing dot. ok is false when name is not
// a usable multi-label domain name. Settings that name domains use it so
// that they compare equal to outcomes.
func NormalizeDomain(name string) (string, bool) { return normalizeDomain(strings.TrimSpace(name)) }

// normalizeDomain returns name lower-cased, without a trailing dot and with
// U-labels converted to A-labels, or ok=false when it is not a usable
// multi-label domain name (RFC 7208 §4.3: check_host() then returns none).
// An already normalized ASCII name is returned without allocating.
func normalizeDomain(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", false
		}
		name = a
	}
	name = lowerASCII(name)
	if !validHostName(name) {
		return "", false
	}
	return name, true
}

// validHostName reports whether name (lower-case, no trailing dot) is a
// multi-label domain of letters, digits, hyphens and underscores with labels
// of 1..63 octets and at most 253 octets in all (RFC 7208 §4.3).
func validHostName(name string) bool {
	if len(name) == 0 || len(name) > maxDomainLen {
		return false
	}
	labels, labelLen := 1, 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if labelLen == 0 {
				return false
			}
			labels++
			labelLen = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		labelLen++
		if labelLen > maxLabelLen {
			return false
		}
	}
	return labelLen > 0 && labels >= 2
}

// validQueryName reports whether an expanded domain-spec (lower-case, no
// trailing dot) can be queried at all: non-empty labels of at most 63 octets.
// Any other visible character is allowed (RFC 7208 §7.1: "a domain-spec may
// contain any visible char except %" once expanded).
func validQueryName(name string) bool {
	if len(name) == 0 || len(name) > maxDomainLen {
		return false
	}
	labelLen := 0
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if labelLen == 0 {
				return false
			}
			labelLen = 0
			continue
		}
		labelLen++
		if labelLen > maxLabelLen {
			return false
		}
	}
	return labelLen > 0
}

// lowerASCII lower-cases ASCII letters, allocating only when something
// changes.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

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
