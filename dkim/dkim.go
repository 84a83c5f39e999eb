// Package dkim verifies the DKIM signatures (RFC 6376) of one message and
// tells whether one of them vouches for a domain: a valid signature whose
// d= is that domain or shares its organizational domain (relaxed alignment,
// RFC 7489 §3.1.1).
//
// Verification is done by github.com/emersion/go-msgauth/dkim; this package
// routes its key lookups through the caller's resolver under the caller's
// deadline, bounds what an outsider controls (signatures verified, bytes
// hashed), and reports one result per signature with the RFC 8601 §2.7.1
// result tokens, for Authentication-Results.
package dkim

import (
	"strings"

	"github.com/spfmilter/spfmilter/internal/dnsname"
)

// Result is a DKIM verification result, an RFC 8601 §2.7.1 token.
type Result string

// The results (RFC 8601 §2.7.1).
const (
	// Pass: the signature verified.
	Pass Result = "pass"
	// Fail: the signature failed to verify (body hash or signature).
	Fail Result = "fail"
	// Policy: the signature verified or might have, but is not acceptable
	// here: it carries l= (RFC 6376 §8.2: unsigned text may follow).
	Policy Result = "policy"
	// Neutral: the signature was not processed (too many signatures, the
	// message too large).
	Neutral Result = "neutral"
	// Temperror: the key could not be fetched for a reason that may go away
	// (DNS timeout, SERVFAIL).
	Temperror Result = "temperror"
	// Permerror: the signature or its key is unusable (malformed, missing
	// or revoked key, unsupported algorithm, expired).
	Permerror Result = "permerror"
)

// Signature is the verification of one DKIM-Signature field.
type Signature struct {
	Result Result
	// Domain is the signing domain, d= (lower-case, no trailing dot).
	Domain string
	// Selector is s=.
	Selector string
	// B is the start of the signature, b=, without white space: the first
	// BPrefix characters (RFC 6008 §4 asks for at least eight).
	B string
	// Problem says why the result is not pass, in words; "" for pass.
	Problem string
}

// BPrefix is the number of b= characters kept in Signature.B and written as
// header.b (RFC 6008 §4: at least 8, enough to tell signatures apart).
const BPrefix = 12

// Outcome is the verification of one message.
type Outcome struct {
	// Signatures are the message's DKIM-Signature fields, top to bottom,
	// at most Verifier.MaxSignatures of them verified; the ones beyond are
	// reported Neutral.
	Signatures []Signature
	// Oversized is set when the message was larger than Verifier.MaxBytes:
	// no signature was verified (all are Neutral).
	Oversized bool
}

// Vouch is the answer to "does a signature speak for one of these domains?".
type Vouch struct {
	// OK is set when a passing signature is aligned with one of the domains.
	OK bool
	// Signature is the passing aligned signature when OK; otherwise the
	// aligned signature with a temporary error, if any (see Temporary).
	Signature *Signature
	// Temporary is set when no aligned signature passed but one could not
	// be verified for a temporary reason: asking again later may succeed.
	Temporary bool
}

// Vouches reports whether a passing signature of o is aligned with one of
// domains (relaxed alignment, RFC 7489 §3.1.1). Empty domains are ignored.
func (o Outcome) Vouches(domains ...string) Vouch {
	var v Vouch
	for i := range o.Signatures {
		s := &o.Signatures[i]
		aligned := false
		for _, d := range domains {
			if d != "" && Aligned(s.Domain, d) {
				aligned = true
				break
			}
		}
		if !aligned {
			continue
		}
		switch s.Result {
		case Pass:
			return Vouch{OK: true, Signature: s}
		case Temperror:
			if !v.Temporary {
				v = Vouch{Signature: s, Temporary: true}
			}
		}
	}
	return v
}

// normDomain lower-cases the ASCII letters of d (DNS folds no others, RFC
// 4343) and drops one trailing dot.
func normDomain(d string) string {
	return dnsname.LowerASCII(strings.TrimSuffix(strings.TrimSpace(d), "."))
}
