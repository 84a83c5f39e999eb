// Package dnsname is spfmilter's one notion of a domain name, shared by the
// SPF engine, its DNS client and the header writer.
//
// Two forms of a name meet here. Inside spfmilter a name is raw octets:
// labels joined by ".", no trailing dot, as RFC 7208 macros produce them
// (a local part may put a space, "@" or a quote in a label). The DNS
// library (miekg/dns) takes and gives names and TXT strings in zone-file
// presentation form instead (RFC 1035 §5.1), where "\X" stands for the octet
// X and "\DDD" for the octet of decimal value DDD. Escape and Unescape
// convert names, EscapeTXT and UnescapeTXT character-strings, exactly as
// miekg/dns packs and unpacks them.
package dnsname

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Length limits of a name written without its trailing dot (RFC 1035
// §2.3.4: 63 octets a label, 255 octets on the wire, which is 253 in text).
const (
	MaxLabel = 63
	MaxName  = 253
)

// Normalize returns name as a host name: lower-case, without a trailing
// dot, U-labels converted to A-labels (IDNA 2008 lookup rules), and checked
// with IsHost. ok is false when it is not one. An already normalized name is
// returned without allocating.
func Normalize(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			if !utf8.ValidString(name) {
				return "", false // idna would map the bad bytes to U+FFFD
			}
			a, err := idna.Lookup.ToASCII(name)
			if err != nil {
				return "", false
			}
			name = a
			break
		}
	}
	name = LowerASCII(name)
	if !IsHost(name) {
		return "", false
	}
	return name, true
}

// IsHost reports whether name (no trailing dot) is a host name: labels of 1
// to 63 ASCII letters, digits, hyphens and underscores (SPF names use
// "_spf" and the like), 253 octets at most.
func IsHost(name string) bool {
	if !Queryable(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Labels is the number of labels of a non-empty name without a trailing
// dot.
func Labels(name string) int { return strings.Count(name, ".") + 1 }

// Queryable reports whether the raw name (no trailing dot) can be asked in
// DNS: non-empty labels of at most 63 octets, 253 octets in all. Any octet
// is allowed in a label; Escape makes it travel as itself.
func Queryable(name string) bool {
	if name == "" || len(name) > MaxName {
		return false
	}
	n := 0
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			n++
			if n > MaxLabel {
				return false
			}
			continue
		}
		if n == 0 {
			return false
		}
		n = 0
	}
	return n > 0
}

// LowerASCII lower-cases ASCII letters only (DNS names compare so, RFC
// 4343), allocating only when something changes.
func LowerASCII(s string) string {
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

// labelSpecial are the octets miekg/dns escapes with a backslash in a name
// (isDomainNameLabelSpecial in its types.go); "." never occurs in a raw
// label here.
func labelSpecial(c byte) bool {
	switch c {
	case '.', ' ', '\'', '@', ';', '(', ')', '"', '\\':
		return true
	}
	return false
}

// Escape writes the raw name (labels joined by ".", no trailing dot) in
// presentation form, as miekg/dns writes a name it unpacks: "\X" for the
// special characters, "\DDD" for octets outside printable ASCII. The name
// packed from it carries exactly the raw octets. Plain host names come back
// unchanged, without allocating.
func Escape(name string) string {
	return escape(name, func(c byte) bool { return c != '.' && labelSpecial(c) })
}

// escape writes s in presentation form: "\DDD" for octets outside
// printable ASCII, "\X" for the printable octets special picks. A string
// with neither comes back unchanged, without allocating.
func escape(s string, special func(byte) bool) string {
	i := 0
	for i < len(s) && s[i] >= ' ' && s[i] <= '~' && !special(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		writeEscaped(&b, s[i], special)
	}
	return b.String()
}

// writeEscaped writes one octet as escape does.
func writeEscaped(b *strings.Builder, c byte, special func(byte) bool) {
	switch {
	case c < ' ' || c > '~':
		writeDDD(b, c)
	case special(c):
		b.WriteByte('\\')
		b.WriteByte(c)
	default:
		b.WriteByte(c)
	}
}

func writeDDD(b *strings.Builder, c byte) {
	b.WriteByte('\\')
	b.WriteByte('0' + c/100)
	b.WriteByte('0' + c/10%10)
	b.WriteByte('0' + c%10)
}

// nextOctet decodes the octet at s[i] in presentation form as miekg/dns
// packs it: "\DDD" (DDD taken modulo 256, as miekg/dns does), "\X", or X.
// It returns the octet, how many bytes it took, and whether it was escaped;
// n is 0 for a dangling backslash.
func nextOctet(s string, i int) (c byte, n int, escaped bool) {
	if s[i] != '\\' {
		return s[i], 1, false
	}
	if i+1 == len(s) {
		return 0, 0, true
	}
	if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
		return (s[i+1]-'0')*100 + (s[i+2]-'0')*10 + (s[i+3] - '0'), 4, true
	}
	return s[i+1], 2, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Unescape turns a name in presentation form (as miekg/dns gives it, with or
// without the trailing dot) into raw octets: labels joined by ".", no
// trailing dot, letters as sent. ok is false when the name has a label
// holding a "." octet (it has no raw form here), an empty label or a
// dangling backslash. The root is "".
func Unescape(name string) (string, bool) {
	if name == "." {
		return "", true
	}
	if strings.IndexByte(name, '\\') < 0 {
		name = strings.TrimSuffix(name, ".")
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
			return "", false
		}
		return name, true
	}
	var b strings.Builder
	b.Grow(len(name))
	labelLen := 0
	for i := 0; i < len(name); {
		c, n, esc := nextOctet(name, i)
		if n == 0 {
			return "", false
		}
		i += n
		if c == '.' {
			if esc {
				return "", false
			}
			if labelLen == 0 {
				return "", false
			}
			if i == len(name) {
				break // the trailing dot
			}
			labelLen = 0
			b.WriteByte('.')
			continue
		}
		labelLen++
		b.WriteByte(c)
	}
	if labelLen == 0 {
		return "", false
	}
	return b.String(), true
}

// Canonical is a name in presentation form reduced to one spelling of its
// wire form: octets decoded, ASCII letters lower-cased (RFC 4343), written
// back the way Escape writes them, with a trailing dot. Two names are the
// same DNS name exactly when their Canonical forms are equal, however each
// was escaped. A malformed name yields itself with a trailing dot and a
// "\" in front, which matches no well-formed name.
func Canonical(name string) string {
	if name == "." || name == "" {
		return "."
	}
	if isCanonical(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 1)
	labelLen := 0
	for i := 0; i < len(name); {
		c, n, esc := nextOctet(name, i)
		if n == 0 {
			return "\\" + name + "."
		}
		i += n
		if c == '.' && !esc {
			if labelLen == 0 {
				return "\\" + name + "."
			}
			labelLen = 0
			b.WriteByte('.')
			continue
		}
		labelLen++
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		writeEscaped(&b, c, labelSpecial)
	}
	if labelLen > 0 {
		b.WriteByte('.')
	}
	return b.String()
}

// EscapeTXT writes the octets of one TXT character-string in the
// presentation form miekg/dns gives them (unpackString in its
// msg_helpers.go): "\"" and "\\" for quote and backslash, "\DDD" for octets
// outside printable ASCII. Packing the result sends exactly the octets.
func EscapeTXT(s string) string {
	return escape(s, func(c byte) bool { return c == '"' || c == '\\' })
}

// UnescapeTXT returns the octets of one TXT character-string given in
// miekg/dns presentation form, decoded as miekg/dns packs it
// (packTxtString in its msg.go): "\DDD" is the octet DDD, "\X" is X, and a
// dangling backslash stands for nothing.
func UnescapeTXT(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for i < len(s) {
		c, n, _ := nextOctet(s, i)
		if n == 0 {
			break
		}
		b = append(b, c)
		i += n
	}
	return string(b)
}

// Equal reports whether two names in presentation form are the same DNS
// name: the same octets up to ASCII case (RFC 4343), however escaped, with
// or without the trailing dot.
func Equal(a, b string) bool {
	if strings.IndexByte(a, '\\') < 0 && strings.IndexByte(b, '\\') < 0 {
		a, b = strings.TrimSuffix(a, "."), strings.TrimSuffix(b, ".")
		if len(a) != len(b) {
			return false
		}
		for i := 0; i < len(a); i++ {
			x, y := a[i], b[i]
			if 'A' <= x && x <= 'Z' {
				x += 'a' - 'A'
			}
			if 'A' <= y && y <= 'Z' {
				y += 'a' - 'A'
			}
			if x != y {
				return false
			}
		}
		return true
	}
	return Canonical(a) == Canonical(b)
}

// isCanonical reports whether name is already as Canonical writes it: a
// trailing dot, non-empty labels, and only octets written as themselves
// (no upper case, nothing escaped). It spares the common case an
// allocation.
func isCanonical(name string) bool {
	if name[len(name)-1] != '.' || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if i > 0 && name[i-1] == '.' {
				return false
			}
		case c <= ' ' || c > '~' || 'A' <= c && c <= 'Z' || labelSpecial(c):
			return false
		}
	}
	return true
}
