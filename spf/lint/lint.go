// Package lint checks a domain's SPF records the way a domain owner needs:
// it walks the whole record tree (includes and redirects), reports what
// makes receivers return permerror or temperror and what works against the
// advice of RFC 7208, each with the path that leads to it, and it rewrites a
// record tree into plain ip4/ip6 ranges (Flatten).
//
// It parses records with the parser check_host() uses (spf.ParseRecord),
// asks DNS through the same client the milter uses, and also runs the
// engine itself (spf.Checker) for an IPv4 and an IPv6 client that nothing
// in the tree matches: the worst case for the processing limits.
//
// The walk follows the evaluation order of a client that matches no term,
// which evaluates every DNS-causing term before the first all: that is the
// worst case of RFC 7208 §4.6.4 for every path through the tree, since a
// match only ever stops evaluation earlier. Void lookups are counted per
// address family: an a mechanism asks A for IPv4 clients and AAAA for IPv6
// clients, so a name with only A records is a void lookup for IPv6 senders
// alone. Terms whose outcome depends on the client (ptr, domain-specs with
// macros) are counted as void, which is what most clients get.
package lint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/spfmilter/spfmilter/spf"
)

// Resolver is what lint and flatten need from DNS: the lookups the engine
// makes, and whole answers for what the lookups do not show (TTLs, the
// character-strings of a TXT record, the size of an answer, type SPF
// records). *resolver.Client is one.
type Resolver interface {
	spf.Resolver
	Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// Bounds of one walk. A receiver stops at 10 DNS-causing terms, so a tree
// needing more records than maxRecords is far beyond any limit already.
const (
	maxRecords = 64               // records fetched in one walk
	maxPTRHost = 16               // addresses whose PTR names are checked
	udpLimit   = dns.MinMsgSize   // 512 bytes: a reply without EDNS0 (RFC 1035 §2.3.4)
	maxString  = 255              // bytes in one TXT character-string (RFC 1035 §3.3)
	timeout    = 60 * time.Second // default bound of a whole lint or flatten
)

// Options configure Lint.
type Options struct {
	Resolver Resolver // required
	// NoMail are names that never send mail: each should publish a record
	// that authorises no host ("v=spf1 -all").
	NoMail []string
	// Clients are the addresses the engine evaluates the domain for; empty
	// means one IPv4 and one IPv6 address that no term of the tree lists.
	Clients []netip.Addr
	// Sender and HELO are the MAIL FROM and HELO of those evaluations; ""
	// means postmaster@domain and domain.
	Sender, HELO string
	// Timeout bounds the whole lint; 0 means one minute.
	Timeout time.Duration
	// Record, when set, is checked as the domain's SPF record in place of
	// the published one: a record about to be published.
	Record string
}

// Finding is one problem or remark.
type Finding struct {
	Severity Severity `json:"severity"`
	ID       string   `json:"id"`
	// Path leads from the domain to the term concerned: the domain, then
	// the include and redirect terms followed, then the term itself.
	Path []string `json:"path"`
	// Client is "ipv4" or "ipv6" when only clients of that family are
	// concerned.
	Client  string `json:"client,omitempty"`
	Message string `json:"message"`
	Advice  string `json:"advice"`
}

// Evaluation is the engine's verdict for one client.
type Evaluation struct {
	Client      string     `json:"client"`
	Result      spf.Result `json:"result"`
	Mechanism   string     `json:"mechanism"`
	Problem     string     `json:"problem"`
	DNSLookups  int        `json:"dns_lookups"`
	VoidLookups int        `json:"void_lookups"`
}

// Report is the outcome of Lint.
type Report struct {
	Domain string `json:"domain"`
	Record string `json:"record"` // the domain's SPF record, "" when none
	// DNSTerms is the most DNS-causing terms any client makes receivers
	// evaluate (a client that matches no term); VoidIPv4 and VoidIPv6 the
	// void lookups such a client causes, by address family.
	DNSTerms    int          `json:"dns_terms"`
	VoidIPv4    int          `json:"void_lookups_ipv4"`
	VoidIPv6    int          `json:"void_lookups_ipv6"`
	Evaluations []Evaluation `json:"evaluations"`
	Findings    []Finding    `json:"findings"`
}

// Errors is the number of findings of severity error.
func (r *Report) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

// Lint checks domain's SPF record tree. The error is only for a domain that
// is not a domain name or for missing options; everything about the records
// is a Finding.
func Lint(ctx context.Context, domain string, opts Options) (*Report, error) {
	if opts.Resolver == nil {
		return nil, errors.New("lint: no resolver")
	}
	d, err := normalize(domain)
	if err != nil {
		return nil, err
	}
	noMail := make([]string, 0, len(opts.NoMail))
	for _, n := range opts.NoMail {
		nn, err := normalize(n)
		if err != nil {
			return nil, err
		}
		noMail = append(noMail, nn)
	}
	if opts.Record != "" {
		if !spf.IsRecord(opts.Record) {
			return nil, fmt.Errorf(`lint: the record to check does not start with "v=spf1 "`)
		}
		opts.Resolver = &proposed{Resolver: opts.Resolver, records: map[string]string{d: opts.Record}}
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(opts.Timeout, timeout))
	defer cancel()
	w := newWalker(ctx, opts.Resolver, d)
	w.walk(d, []string{d}, roleTop, map[string]bool{})
	w.rep.DNSTerms = w.terms
	w.rep.VoidIPv4, w.rep.VoidIPv6 = w.voids[0], w.voids[1]
	w.checkPTRNames(d)
	w.checkNoMail(d, noMail)
	w.evaluate(d, opts)
	return w.rep, nil
}

// normalize checks a domain given by the user.
func normalize(domain string) (string, error) {
	d := strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if strings.ContainsFunc(d, func(r rune) bool { return r >= 0x80 }) {
		// A U-label name becomes its A-labels, as check_host() asks for it.
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", fmt.Errorf("lint: %q is not a domain name", domain)
		}
		d = a
	}
	d = strings.ToLower(d)
	if _, ok := dns.IsDomainName(d); !ok || !strings.Contains(d, ".") || strings.ContainsAny(d, " @/%") {
		return "", fmt.Errorf("lint: %q is not a domain name", domain)
	}
	return d, nil
}
