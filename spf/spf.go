// Package spf evaluates the Sender Policy Framework (RFC 7208): check_host()
// for the HELO and MAIL FROM identities, with the RFC's processing limits,
// macro expansion and explanations.
//
// The evaluator talks to DNS only through the narrow Resolver interface; the
// real client lives in spf/resolver and an in-memory fake in spf/spftest.
package spf

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Result is an SPF result token (RFC 7208 §2.6). The value is the RFC word and
// goes straight into headers.
type Result string

// The results of check_host() (RFC 7208 §2.6).
const (
	None      Result = "none"
	Neutral   Result = "neutral"
	Pass      Result = "pass"
	Fail      Result = "fail"
	Softfail  Result = "softfail"
	Temperror Result = "temperror"
	Permerror Result = "permerror"
)

// Identity names the identity being checked (RFC 7208 §2.3, §2.4); the value is
// the token used in Received-SPF's identity key.
type Identity string

// The identities spfmilter checks.
const (
	IdentityHELO     Identity = "helo"
	IdentityMailFrom Identity = "mailfrom"
)

// ErrNotFound is returned (possibly wrapped) by a Resolver when the name does
// not exist (NXDOMAIN). An empty answer with a nil error means "no data". Both
// are void lookups (RFC 7208 §4.6.4). Any other error is a DNS failure and
// leads to temperror (RFC 7208 §5).
var ErrNotFound = errors.New("spf: domain not found")

// Resolver is everything the evaluator needs from DNS. Names are fully
// qualified, lower-case A-labels without a trailing dot. Returned host names
// (MX exchanges, PTR targets) may carry a trailing dot. Implementations follow
// CNAME chains. Returned slices are read-only for the caller: implementations
// may hand out shared cached slices.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupA(ctx context.Context, name string) ([]netip.Addr, error)
	LookupAAAA(ctx context.Context, name string) ([]netip.Addr, error)
	// LookupMX returns the exchange names (any order; the evaluator does not
	// depend on preference).
	LookupMX(ctx context.Context, name string) ([]string, error)
	// LookupPTR returns the names of addr's reverse zone entry.
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error)
}

// Outcome is what one check returns. A matched mechanism is reported here,
// never through an error.
type Outcome struct {
	Result   Result
	Identity Identity
	// Domain is the domain that was checked (normalized), "" when none could be
	// derived (for example an IP-literal HELO).
	Domain string
	// Sender is the full identity checked, "local@domain" ("postmaster@helo" for
	// the null sender and the HELO identity).
	Sender string
	// Mechanism is the text of the mechanism that matched (e.g. "ip4:192.0.2.0/24",
	// "-all"), or "default" when nothing matched and the default neutral applied.
	// After a redirect it is the target record's mechanism. For permerror and
	// temperror it is the term being evaluated when the check stopped, if any
	// (e.g. "redirect=example.net"); for none it is empty.
	Mechanism   string
	Explanation string // only for fail: the expanded exp= text, else DefaultExplanation
	Problem     string // why for permerror / temperror / none
	DNSLookups  int    // DNS-causing terms evaluated (RFC 7208 §4.6.4)
	VoidLookups int
	Duration    time.Duration
	Trace       []string // step by step, only when asked for
}
