package spf

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// mechKind is one of the eight mechanisms of RFC 7208 §5.
type mechKind uint8

const (
	mechAll mechKind = iota + 1
	mechInclude
	mechA
	mechMX
	mechPTR
	mechIP4
	mechIP6
	mechExists
)

// term is one parsed directive.
type term struct {
	kind   mechKind
	result Result       // from the qualifier (§4.6.2)
	text   string       // as written in the record
	domain *macroString // the domain-spec; nil means <domain>
	prefix netip.Prefix // ip4, ip6
	cidr4  int          // a, mx: IPv4 prefix length
	cidr6  int          // a, mx: IPv6 prefix length
}

// record is a parsed SPF record (RFC 7208 §4.5, §4.6). A record with a syntax
// error anywhere has err set and is never evaluated.
type record struct {
	terms       []term
	hasRedirect bool
	redirect    macroString
	hasExp      bool
	exp         macroString
	err         error
}

// Size limits of a record, beyond which it is a permerror without being
// parsed further. RFC 7208 §3.4 asks publishers to keep the answer within
// 512 octets, and §4.6.4 lets a check evaluate at most 10 DNS-querying
// terms; the rest of a record can only be ip4, ip6 and all, which the
// largest records in use list a few dozen of. The limits are far beyond
// that, and keep what an outsider's record costs to parse and to cache
// (about 100 bytes per term) small whatever the DNS answer holds: a TXT
// answer may carry almost 64 KB, 30,000 terms.
const (
	// MaxRecordLen is the longest record text parsed, in bytes: 16 times
	// the 512 octets of §3.4.
	MaxRecordLen = 8192
	// MaxRecordTerms is the most terms (directives and modifiers) a record
	// may have: 500 networks beside the 10 DNS-querying terms.
	MaxRecordTerms = 512
)

// The shared parse results of every record over the limits.
var (
	tooLong      = &record{err: errors.New("record longer than " + strconv.Itoa(MaxRecordLen) + " bytes")}
	tooManyTerms = &record{err: errors.New("record of more than " + strconv.Itoa(MaxRecordTerms) + " terms")}
)

type syntaxError struct {
	term   string
	reason string
}

func (e *syntaxError) Error() string {
	return "syntax error in " + strings.ToValidUTF8(quoteTerm(e.term), "?") + ": " + e.reason
}

func quoteTerm(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

func synErr(term, reason string) *record {
	return &record{err: &syntaxError{term: term, reason: reason}}
}

// isSPFRecord reports whether a TXT string is an SPF version 1 record:
// "v=spf1" (case-insensitive, ABNF strings are) followed by SP or the end
// (RFC 7208 §4.5).
func isSPFRecord(txt string) bool {
	if len(txt) < 6 || !strings.EqualFold(txt[:6], "v=spf1") {
		return false
	}
	return len(txt) == 6 || txt[6] == ' '
}

// parseRecord parses the whole record before anything is evaluated, so that
// a syntax error anywhere is a permerror even after a match (RFC 7208 §4.6).
// txt must satisfy isSPFRecord.
func parseRecord(txt string) *record {
	if len(txt) > MaxRecordLen {
		return tooLong
	}
	r := &record{}
	rest := txt[6:]
	n := 0
	for rest != "" {
		// terms = *( 1*SP ( directive / modifier ) ); record ends with *SP.
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if n++; n > MaxRecordTerms {
			return tooManyTerms
		}
		t := rest
		if i := strings.IndexByte(rest, ' '); i >= 0 {
			t, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		for i := 0; i < len(t); i++ {
			// Terms are separated by SP only; controls and non-ASCII are
			// errors (§4.6.1, §3.1 and the ABNF).
			if t[i] < 0x21 || t[i] > 0x7e {
				return synErr(t, "invalid character")
			}
		}
		if bad := r.parseTerm(t); bad != nil {
			return bad
		}
	}
	return r
}

// parseTerm parses one directive or modifier into r, or returns a record
// holding the syntax error.
func (r *record) parseTerm(t string) *record {
	s := t
	res := Pass
	switch s[0] {
	case '+':
		res, s = Pass, s[1:]
	case '-':
		res, s = Fail, s[1:]
	case '~':
		res, s = Softfail, s[1:]
	case '?':
		res, s = Neutral, s[1:]
	}
	// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
	n := 0
	for n < len(s) {
		c := s[n]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
			n > 0 && ('0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			n++
			continue
		}
		break
	}
	if n == 0 {
		return synErr(t, "unknown term")
	}
	name, arg := s[:n], s[n:]
	if strings.HasPrefix(arg, "=") {
		if len(s) != len(t) {
			return synErr(t, "modifier with a qualifier")
		}
		return r.parseModifier(t, name, arg[1:])
	}
	m := term{result: res, text: t}
	switch strings.ToLower(name) {
	case "all":
		m.kind = mechAll
		if arg != "" {
			return synErr(t, "all takes no argument")
		}
	case "include", "exists":
		m.kind = mechInclude
		if strings.EqualFold(name, "exists") {
			m.kind = mechExists
		}
		if !strings.HasPrefix(arg, ":") {
			return synErr(t, "missing domain-spec")
		}
		if bad := m.setDomain(t, arg[1:]); bad != nil {
			return bad
		}
	case "a", "mx":
		m.kind = mechA
		if strings.EqualFold(name, "mx") {
			m.kind = mechMX
		}
		var ok bool
		arg, m.cidr4, m.cidr6, ok = splitDualCIDR(arg)
		if !ok {
			return synErr(t, "invalid CIDR length")
		}
		if arg != "" {
			if arg[0] != ':' {
				return synErr(t, "unknown mechanism")
			}
			if bad := m.setDomain(t, arg[1:]); bad != nil {
				return bad
			}
		}
	case "ptr":
		m.kind = mechPTR
		if arg != "" {
			if arg[0] != ':' {
				return synErr(t, "unknown mechanism")
			}
			if bad := m.setDomain(t, arg[1:]); bad != nil {
				return bad
			}
		}
	case "ip4", "ip6":
		m.kind = mechIP4
		if strings.EqualFold(name, "ip6") {
			m.kind = mechIP6
		}
		if !strings.HasPrefix(arg, ":") {
			return synErr(t, "missing address")
		}
		p, ok := parseNetwork(arg[1:], m.kind == mechIP6)
		if !ok {
			return synErr(t, "invalid network")
		}
		m.prefix = p
	default:
		return synErr(t, "unknown mechanism")
	}
	r.terms = append(r.terms, m)
	return nil
}

func (m *term) setDomain(t, spec string) *record {
	d, err := parseDomainSpec(spec)
	if err != nil {
		return synErr(t, err.Error())
	}
	m.domain = &d
	return nil
}

func (r *record) parseModifier(t, name, value string) *record {
	switch strings.ToLower(name) {
	case "redirect", "exp":
		d, err := parseDomainSpec(value)
		if err != nil {
			return synErr(t, err.Error())
		}
		// §6: redirect and exp each appear at most once.
		if strings.EqualFold(name, "redirect") {
			if r.hasRedirect {
				return synErr(t, "more than one redirect")
			}
			r.hasRedirect, r.redirect = true, d
		} else {
			if r.hasExp {
				return synErr(t, "more than one exp")
			}
			r.hasExp, r.exp = true, d
		}
	default:
		// unknown-modifier = name "=" macro-string: ignored, but it must
		// parse (§6).
		if _, err := parseMacroString(value, true); err != nil {
			return synErr(t, err.Error())
		}
	}
	return nil
}

// splitDualCIDR removes a trailing dual-cidr-length (RFC 7208 §5.6) from the
// argument of a or mx. Missing lengths are 32 and 128.
func splitDualCIDR(arg string) (rest string, c4, c6 int, ok bool) {
	c4, c6 = 32, 128
	i := strings.LastIndexByte(arg, '/')
	if i < 0 || !allDigits(arg[i+1:]) {
		return arg, c4, c6, true
	}
	if i > 0 && arg[i-1] == '/' {
		if c6, ok = parseCIDR(arg[i+1:], 128); !ok {
			return "", 0, 0, false
		}
		arg = arg[:i-1]
		i = strings.LastIndexByte(arg, '/')
		if i < 0 || !allDigits(arg[i+1:]) {
			return arg, c4, c6, true
		}
	}
	if c4, ok = parseCIDR(arg[i+1:], 32); !ok {
		return "", 0, 0, false
	}
	return arg[:i], c4, c6, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseCIDR parses a prefix length: "0" or no leading zero, at most max.
func parseCIDR(s string, max int) (int, bool) {
	if s == "" || len(s) > 3 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= max
}

// parseNetwork parses ip4-network [ip4-cidr-length] or ip6-network
// [ip6-cidr-length] (RFC 7208 §5.6).
func parseNetwork(s string, v6 bool) (netip.Prefix, bool) {
	addr, bits := s, -1
	if i := strings.IndexByte(s, '/'); i >= 0 {
		max := 32
		if v6 {
			max = 128
		}
		n, ok := parseCIDR(s[i+1:], max)
		if !ok {
			return netip.Prefix{}, false
		}
		addr, bits = s[:i], n
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Zone() != "" || ip.Is4() == v6 {
		return netip.Prefix{}, false
	}
	if bits < 0 {
		bits = ip.BitLen()
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}
