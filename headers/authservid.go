package headers

import "strings"

// isTokenByte reports bytes of an RFC 2045 token (RFC 8601 §2.2 value):
// any CHAR except SPACE, CTLs and tspecials. Bytes of UTF-8 sequences are
// accepted too, for U-label authserv-ids (RFC 8616).
func isTokenByte(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// skipCFWS returns the index after the comments and folding white space that
// start s[i:] (RFC 5322 §3.2.2), tolerating bare CR and LF. ok is false for an
// unterminated comment. Comments nest; the depth is a counter, so the work is
// linear in len(s).
func skipCFWS(s string, i int) (int, bool) {
	depth := 0
	for i < len(s) {
		c := s[i]
		switch {
		case depth > 0 && c == '\\':
			i += 2
			continue
		case c == '(':
			depth++
		case depth > 0 && c == ')':
			depth--
		case depth > 0:
		case c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return i, true
		}
		i++
	}
	return len(s), depth == 0
}

// parseAuthservID returns the authserv-id at the start of an
// Authentication-Results value: RFC 8601 §2.2's [CFWS] authserv-id, where
// authserv-id is a token or a quoted-string, followed by the end of the
// value, white space, a comment or ';'.
func parseAuthservID(v string) (string, bool) {
	i, ok := skipCFWS(v, 0)
	if !ok || i >= len(v) {
		return "", false
	}
	var id string
	if v[i] == '"' {
		var b strings.Builder
		i++
		for {
			if i >= len(v) {
				return "", false
			}
			c := v[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' {
				i++
				if i >= len(v) {
					return "", false
				}
				c = v[i]
			}
			if c != '\r' && c != '\n' { // folding inside the string
				b.WriteByte(c)
			}
			i++
		}
		id = b.String()
	} else {
		start := i
		for i < len(v) && isTokenByte(v[i]) {
			i++
		}
		id = v[start:i]
	}
	if id == "" {
		return "", false
	}
	if i < len(v) && !strings.ContainsRune(" \t\r\n(;", rune(v[i])) {
		return "", false
	}
	return id, true
}

// sameAuthservID compares authserv-ids the way domain names compare: case
// does not matter (RFC 8601 §2.5 recommends a domain name; RFC 4343), nor does
// a trailing dot, and U-labels equal their A-labels (RFC 8616). Ids that
// are not domain names compare case-insensitively.
func sameAuthservID(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	da, db := domainPvalue(a), domainPvalue(b)
	if da != "" || db != "" {
		return da == db
	}
	a, b = strings.TrimSuffix(a, "."), strings.TrimSuffix(b, ".")
	return a != "" && strings.EqualFold(a, b)
}
