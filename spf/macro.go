package spf

import (
	"errors"
	"strings"
)

// maxMacroDigits caps the DIGIT transformer; any larger value keeps all the
// parts anyway (RFC 7208 §7.3), the cap only avoids integer overflow.
const maxMacroDigits = 1 << 10

var (
	errMacroSyntax = errors.New("invalid macro")
	errMacroLetter = errors.New("macro letter only allowed in exp text")
	errMacroZero   = errors.New("macro DIGIT transformer must be nonzero")
	errDomainEnd   = errors.New("domain-spec does not end in a macro or a valid top label")
)

// macroPart is a literal or one %{...} expansion of a macro-string
// (RFC 7208 §7.1).
type macroPart struct {
	lit     string // literal text, when letter is 0
	letter  byte   // lower-case macro letter
	digits  int    // keep this many right-hand parts; 0 keeps all
	reverse bool
	escape  bool   // upper-case letter: URL-escape the result (§7.3)
	delims  string // split characters; "" means "."
}

// macroString is a parsed macro-string. When static is true it contains no
// macro letters and value is its (already normalized, for domain-specs)
// expansion, so evaluation needs no work at all.
type macroString struct {
	raw    string
	parts  []macroPart
	static bool
	value  string
	valid  bool // static and value is a queryable name
	// tail is the raw text after the last macro-expand; endsExpand is
	// set when the string ends in one. Both decide domain-end (§7.1).
	tail       string
	endsExpand bool
}

// parseMacroString parses s per RFC 7208 §7.1. explain allows SP and the
// exp-only letters c, r and t (explain-string, §6.2).
func parseMacroString(s string, explain bool) (macroString, error) {
	m := macroString{raw: s, static: true, tail: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			m.parts = append(m.parts, macroPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			// macro-literal = %x21-24 / %x26-7E, plus SP in explain-string.
			if (c < 0x21 || c > 0x7e) && !(explain && c == ' ') {
				return m, errMacroSyntax
			}
			lit.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			return m, errMacroSyntax
		}
		switch s[i] {
		case '%':
			lit.WriteByte('%')
			m.tail, m.endsExpand = s[i+1:], i == len(s)-1
			continue
		case '_':
			lit.WriteByte(' ')
			m.tail, m.endsExpand = s[i+1:], i == len(s)-1
			continue
		case '-':
			lit.WriteString("%20")
			m.tail, m.endsExpand = s[i+1:], i == len(s)-1
			continue
		case '{':
		default:
			return m, errMacroSyntax
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return m, errMacroSyntax
		}
		p, err := parseMacroExpand(s[i+1:i+end], explain)
		if err != nil {
			return m, err
		}
		i += end
		m.tail, m.endsExpand = s[i+1:], i == len(s)-1
		flush()
		m.parts = append(m.parts, p)
		m.static = false
	}
	flush()
	if m.static {
		for _, p := range m.parts {
			m.value += p.lit
		}
	}
	return m, nil
}

// parseMacroExpand parses the inside of "%{...}": macro-letter transformers
// *delimiter.
func parseMacroExpand(s string, explain bool) (macroPart, error) {
	var p macroPart
	if s == "" {
		return p, errMacroSyntax
	}
	l := s[0]
	if 'A' <= l && l <= 'Z' {
		p.escape = true
		l += 'a' - 'A'
	}
	switch l {
	case 's', 'l', 'o', 'd', 'i', 'p', 'h', 'v':
	case 'c', 'r', 't':
		// §7.1: "c", "r" and "t" are only allowed in exp text.
		if !explain {
			return p, errMacroLetter
		}
	default:
		return p, errMacroSyntax
	}
	p.letter = l
	i := 1
	digits := false
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		digits = true
		if p.digits < maxMacroDigits {
			p.digits = p.digits*10 + int(s[i]-'0')
		}
		i++
	}
	if digits && p.digits == 0 {
		return p, errMacroZero
	}
	if i < len(s) && (s[i] == 'r' || s[i] == 'R') {
		p.reverse = true
		i++
	}
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '.', '-', '+', ',', '/', '_', '=':
		default:
			return p, errMacroSyntax
		}
	}
	p.delims = s[i:]
	return p, nil
}

// parseDomainSpec parses a domain-spec (RFC 7208 §7.1): a macro-string that
// ends in a macro-expand or in "." toplabel ["."]. A static domain-spec is
// normalized here once: lower-case, trailing dot removed.
func parseDomainSpec(s string) (macroString, error) {
	m, err := parseMacroString(s, false)
	if err != nil {
		return m, err
	}
	if s == "" {
		return m, errDomainEnd
	}
	if !m.endsExpand && !validDomainEnd(m.tail) {
		return m, errDomainEnd
	}
	if m.static {
		m.value = lowerASCII(strings.TrimSuffix(m.value, "."))
		m.valid = validQueryName(m.value)
	}
	return m, nil
}

// validDomainEnd reports whether s ends in "." toplabel ["."] (RFC 7208 §7.1).
func validDomainEnd(s string) bool {
	s = strings.TrimSuffix(s, ".")
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 {
		return false
	}
	return validTopLabel(s[dot+1:])
}

// validTopLabel: toplabel = ( *alphanum ALPHA *alphanum ) /
// ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) (RFC 7208 §7.1).
func validTopLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	alpha, hyphen := false, false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			alpha = true
		case '0' <= c && c <= '9':
		case c == '-':
			hyphen = true
		default:
			return false
		}
	}
	return alpha || hyphen
}

// MaxExplanationLen caps an expanded exp= explanation, in bytes. Headers
// and SMTP replies use at most a few hundred bytes of it (an SMTP reply line
// is 512 octets, RFC 5321 §4.5.3.1.5), and expansion stops at the cap: an
// outsider's exp text of 15,000 macros and a 2,000-byte HELO would otherwise
// expand to 90 MB.
const MaxExplanationLen = 512

// domainWindow is how much of an expanded domain-spec expandDomain keeps
// while expanding: the name is truncated from the left to 253 octets
// (RFC 7208 §7.3), so its last 253 octets, a trailing dot and the dot before
// them decide it.
const domainWindow = maxDomainLen + 2

// expandExplain expands m for the current domain, stopping at
// MaxExplanationLen bytes.
func (e *evaluator) expandExplain(m *macroString, domain string) string {
	var buf []byte
	for i := range m.parts {
		if len(buf) >= MaxExplanationLen {
			break
		}
		p := &m.parts[i]
		if p.letter == 0 {
			buf = append(buf, p.lit...)
		} else {
			buf = appendTransformed(buf, e.macroValue(p.letter, domain), p, MaxExplanationLen)
		}
		if len(buf) > MaxExplanationLen {
			buf = buf[:MaxExplanationLen]
		}
	}
	return string(buf)
}

// expandDomainSpec expands a domain-spec into e.buf and truncates it as
// §7.3 says. Only the last domainWindow bytes are kept while expanding, so
// that a long expansion (a record full of %{h} with a long HELO) costs no
// more than a short one.
func (e *evaluator) expandDomainSpec(m *macroString, domain string) string {
	buf := e.buf[:0]
	cut := false
	for i := range m.parts {
		p := &m.parts[i]
		if p.letter == 0 {
			buf = append(buf, p.lit...)
		} else {
			buf = appendTransformed(buf, e.macroValue(p.letter, domain), p, -1)
		}
		if len(buf) > 2*domainWindow {
			buf = append(buf[:0], buf[len(buf)-domainWindow:]...)
			cut = true
		}
	}
	return truncateDomain(buf, cut)
}

// appendTransformed applies a macro's transformers to v (RFC 7208 §7.3):
// split on the delimiters, optionally reverse, keep the right-most DIGIT
// parts, join with ".", and URL-escape for upper-case letters. With limit
// ≥ 0 it stops once buf is that long (the caller cuts the excess).
func appendTransformed(buf []byte, v string, p *macroPart, limit int) []byte {
	if p.digits == 0 && !p.reverse && (p.delims == "" || p.delims == ".") && !p.escape {
		return append(buf, v...)
	}
	delims := p.delims
	if delims == "" {
		delims = "."
	}
	var stack [32]string
	parts := stack[:0]
	start := 0
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(delims, v[i]) >= 0 {
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	parts = append(parts, v[start:])
	if p.reverse {
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	if p.digits > 0 && p.digits < len(parts) {
		parts = parts[len(parts)-p.digits:]
	}
	for i, part := range parts {
		if limit >= 0 && len(buf) >= limit {
			break
		}
		if i > 0 {
			buf = append(buf, '.')
		}
		if p.escape {
			buf = appendURLEscaped(buf, part)
		} else {
			buf = append(buf, part...)
		}
	}
	return buf
}

// appendURLEscaped escapes every octet outside RFC 3986 "unreserved"
// (RFC 7208 §7.3).
func appendURLEscaped(buf []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			buf = append(buf, c)
			continue
		}
		buf = append(buf, '%', hex[c>>4], hex[c&15])
	}
	return buf
}

// truncateDomain removes labels from the left until name can be a DNS name
// (RFC 7208 §7.3): first up to and including the right-most label longer
// than 63 octets, then one by one until the name fits in 253 octets. It
// then lower-cases it and drops a trailing dot. §7.3 speaks of the total
// length; a label too long for any query is dropped the same way, since
// only the left side of a name is the macro's to lose. cut says that name
// is the tail of a longer expansion, so its first label is a fragment and
// goes too.
func truncateDomain(name []byte, cut bool) string {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	labelLen := 0
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			labelLen = 0
			continue
		}
		labelLen++
		if labelLen > maxLabelLen {
			// Drop this label and everything left of it, the fragment
			// of a cut expansion included.
			j := i
			for j < len(name) && name[j] != '.' {
				j++
			}
			if j == len(name) {
				name = name[:0]
			} else {
				name = name[j+1:]
			}
			cut = false
			break
		}
	}
	for cut || len(name) > maxDomainLen {
		cut = false
		i := 0
		for i < len(name) && name[i] != '.' {
			i++
		}
		if i == len(name) {
			name = name[:0]
			break
		}
		name = name[i+1:]
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			name[i] = c + 'a' - 'A'
		}
	}
	return string(name)
}

// appendNibbles writes an IPv6 address as dot-separated nibbles (RFC 7208 §7.3).
func appendNibbles(buf []byte, a [16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, b := range a {
		if i > 0 {
			buf = append(buf, '.')
		}
		buf = append(buf, hex[b>>4], '.', hex[b&15])
	}
	return buf
}
