// Package spf evaluates the Sender Policy Framework (RFC 7208). A domain
// publishes, in a TXT record beginning with "v=spf1", which hosts may send
// mail using its name in the SMTP MAIL FROM or HELO. check_host() fetches
// that record, tries its mechanisms left to right (following include and
// redirect), and ends in one of seven results.
//
// Checker.CheckHELO and Checker.CheckMailFrom run check_host() for the two
// identities and return an Outcome: the result, the mechanism that decided
// it, the explanation, the problem, the DNS work done and, on request, a
// trace. A record is parsed in full before it is evaluated and the parsed
// form is cached by its text. The RFC 7208 §4.6.4 limits are counted here,
// so resolver cache hits count too, and each is checked before the lookup it
// guards.
//
// Where RFC 7208 leaves a choice:
//   - a macro expansion with a label over 63 octets loses labels from the
//     left up to that one, as §7.3 shortens one over 253 octets;
//   - a domain-spec that still cannot be queried (an empty label, or a
//     static name with an over-long label) is treated as NXDOMAIN: a void
//     lookup and no match, or a permerror for include and redirect; names
//     are otherwise octets, asked as the macros made them;
//   - %{p} adds no DNS term; its PTR answer is looked up once per check;
//   - more than 10 MX names is a permerror, PTR names beyond 10 are ignored,
//     and the third void lookup is a permerror;
//   - the explanation of a fail without a usable exp= is DefaultExplanation.
//
// What an outsider's zone can make a check cost is bounded, in bytes and in
// queries:
//   - a record over MaxRecordLen bytes or MaxRecordTerms terms is a permerror
//     (§3.4 asks for records that fit in 512 octets; §2.6.7: the record
//     cannot be interpreted), whatever else it holds, and costs no more than
//     a small one: it is neither copied, nor parsed further, nor cached;
//   - parsed records are cached within a budget in bytes (RecordCache);
//   - an exp= text longer than MaxRecordLen is not used, and an explanation
//     stops expanding at MaxExplanationLen bytes; a domain-spec is expanded
//     keeping only the 253 octets §7.3 can keep;
//   - a check sends at most MaxQueries (111) DNS questions, the bound of
//     §4.6.4, counting the CNAME hops a resolver follows across queries
//     (QueryBudget); a question beyond it is a temperror. The exp= lookup,
//     which §4.6.4 does not count, comes on top.
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

// Results are the results of check_host(), in RFC 7208 §2.6 order.
func Results() []Result {
	return []Result{None, Neutral, Pass, Fail, Softfail, Temperror, Permerror}
}

// Cause says why a check ended in permerror: a stable token for policy,
// logs, headers and metrics. Outcome.Problem holds the details.
type Cause string

// The causes of permerror.
const (
	// CauseSyntax: a record that cannot be interpreted (RFC 7208 §4.6: a
	// syntax error, an unknown mechanism, a record over MaxRecordLen or
	// MaxRecordTerms), or an include or redirect whose domain-spec expands
	// to no usable domain.
	CauseSyntax Cause = "syntax"
	// CauseLookupLimit: more than MaxDNSTerms DNS-causing terms, or more
	// than MaxMXNames MX names for one mx mechanism (§4.6.4).
	CauseLookupLimit Cause = "lookup_limit"
	// CauseVoidLookupLimit: more than MaxVoidLookups void lookups (§4.6.4).
	CauseVoidLookupLimit Cause = "void_lookup_limit"
	// CauseNoRecord: an include or redirect target without an SPF record
	// (§5.2, §6.1).
	CauseNoRecord Cause = "no_record"
	// CauseLoop: an include or redirect back to a domain whose evaluation
	// is under way.
	CauseLoop Cause = "loop"
	// CauseMultipleRecords: more than one SPF record for a domain (§4.5).
	CauseMultipleRecords Cause = "multiple_records"
)

// Causes are the permerror causes, in a fixed order.
func Causes() []Cause {
	return []Cause{CauseSyntax, CauseLookupLimit, CauseVoidLookupLimit, CauseNoRecord, CauseLoop, CauseMultipleRecords}
}

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

// Resolver is everything the evaluator needs from DNS. Everything crossing
// it is raw octets, never a DNS library's presentation form: names are fully
// qualified, without a trailing dot, ASCII lower-case, labels joined by "."
// (a name expanded from macros may hold any octet, a space or "@" included,
// and must be asked as exactly those octets); TXT strings are the record's
// octets; returned host names (MX exchanges, PTR targets) are octets too and
// may carry a trailing dot. Implementations follow CNAME chains. Returned
// slices are read-only for the caller: implementations may hand out shared
// cached slices.
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
	Cause       Cause  // why for permerror, as a token; "" otherwise
	DNSLookups  int    // DNS-causing terms evaluated (RFC 7208 §4.6.4)
	VoidLookups int
	Duration    time.Duration
	Trace       []string // step by step, only when asked for
	// NotChecked is set by CheckHELO when the HELO gives check_host() no
	// domain to check: it is empty, an address literal or not a fully
	// qualified domain name (RFC 7208 §2.3: the check "can only be
	// performed when the HELO identity is a fully qualified domain name").
	// Result is then None and Problem says why, but no check ran and no
	// SPF result exists: report it as not checked and act on nothing.
	NotChecked bool
}
