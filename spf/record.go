package spf

import (
	"net/netip"
	"strings"
)

// Record is a read-only view of a parsed SPF record, for tools that inspect
// records rather than evaluate them (spfmilter lint and flatten). It is
// built by the parser check_host() uses, so it accepts and refuses exactly
// what the evaluator does.
type Record struct {
	Terms    []Term      // the mechanisms, in order
	Redirect *DomainSpec // the redirect= modifier, nil when absent
	Exp      *DomainSpec // the exp= modifier, nil when absent
}

// Term is one mechanism of a Record (RFC 7208 §5).
type Term struct {
	// Mechanism is the lower-case name: "all", "include", "a", "mx", "ptr",
	// "ip4", "ip6" or "exists".
	Mechanism string
	Qualifier Result // Pass, Fail, Softfail or Neutral (§4.6.2)
	Text      string // as written in the record
	// Domain is the domain-spec; nil means the current <domain> (a, mx,
	// ptr without one).
	Domain *DomainSpec
	Prefix netip.Prefix // ip4, ip6
	CIDR4  int          // a, mx: IPv4 prefix length (32 when not given)
	CIDR6  int          // a, mx: IPv6 prefix length (128 when not given)
}

// DNS reports whether the term counts towards MaxDNSTerms (RFC 7208 §4.6.4).
func (t *Term) DNS() bool {
	switch t.Mechanism {
	case "include", "a", "mx", "ptr", "exists":
		return true
	}
	return false
}

// DomainSpec is a domain-spec (RFC 7208 §7.1).
type DomainSpec struct {
	Raw string // as written
	// Macros lists the macro letters used, lower-case, in order ("" for a
	// plain name).
	Macros string
	// Name is the normalized name (lower-case, no trailing dot) of a
	// domain-spec without macros; "" when it has macros.
	Name string
	// Valid says whether Name can be queried (labels of 1..63 octets); a
	// name that cannot is treated as non-existent by check_host().
	Valid bool
}

// IsRecord reports whether a TXT string is an SPF version 1 record, as
// check_host() decides when it selects records (RFC 7208 §4.5).
func IsRecord(txt string) bool { return isSPFRecord(txt) }

// ParseRecord parses an SPF record as check_host() does before evaluating
// it. The error is the syntax error that makes the record a permerror
// (RFC 7208 §4.6), naming the term. txt must satisfy IsRecord.
func ParseRecord(txt string) (*Record, error) {
	if !isSPFRecord(txt) {
		return nil, &syntaxError{term: txt, reason: "not an SPF version 1 record"}
	}
	r := parseRecord(strings.Clone(txt))
	if r.err != nil {
		return nil, r.err
	}
	out := &Record{Terms: make([]Term, 0, len(r.terms))}
	for i := range r.terms {
		t := &r.terms[i]
		v := Term{
			Mechanism: mechNames[t.kind],
			Qualifier: t.result,
			Text:      t.text,
			Prefix:    t.prefix,
			CIDR4:     t.cidr4,
			CIDR6:     t.cidr6,
		}
		if t.domain != nil {
			v.Domain = viewSpec(t.domain)
		}
		out.Terms = append(out.Terms, v)
	}
	if r.hasRedirect {
		out.Redirect = viewSpec(&r.redirect)
	}
	if r.hasExp {
		out.Exp = viewSpec(&r.exp)
	}
	return out, nil
}

var mechNames = map[mechKind]string{
	mechAll: "all", mechInclude: "include", mechA: "a", mechMX: "mx",
	mechPTR: "ptr", mechIP4: "ip4", mechIP6: "ip6", mechExists: "exists",
}

func viewSpec(m *macroString) *DomainSpec {
	d := &DomainSpec{Raw: m.raw}
	if m.static {
		d.Name, d.Valid = m.value, m.valid
		return d
	}
	var b strings.Builder
	for _, p := range m.parts {
		if p.letter != 0 {
			b.WriteByte(p.letter)
		}
	}
	d.Macros = b.String()
	return d
}
