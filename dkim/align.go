package dkim

import (
	"golang.org/x/net/publicsuffix"

	"github.com/spfmilter/spfmilter/internal/dnsname"
)

// OrganizationalDomain is d's organizational domain (RFC 7489 §3.2): the
// public suffix of d plus one label, from the public suffix list compiled
// into golang.org/x/net/publicsuffix. A name that is itself a public suffix
// (or that the list cannot place) is its own organizational domain. d is
// compared as a lower-case A-label name (internal/dnsname, as the SPF
// engine and the headers read names).
func OrganizationalDomain(d string) string {
	d = normDomain(d)
	if a, ok := dnsname.Normalize(d); ok {
		d = a
	}
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// Aligned reports relaxed alignment (RFC 7489 §3.1.1) of a signing domain
// with an identifier's domain: the two have the same organizational domain.
// Empty domains are never aligned.
func Aligned(sdid, domain string) bool {
	sdid, domain = normDomain(sdid), normDomain(domain)
	if sdid == "" || domain == "" {
		return false
	}
	if sdid == domain {
		return true
	}
	return OrganizationalDomain(sdid) == OrganizationalDomain(domain)
}
