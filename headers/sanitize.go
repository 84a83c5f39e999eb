package headers

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length caps, in octets, for values taken from the SMTP session or DNS. They
// keep every folded line far below 998 octets (RFC 5322 §2.1.1) even when
// every character needs a quoted-pair.
const (
	// maxDomain is the longest domain name (RFC 5321 §4.5.3.1.2).
	maxDomain = 255
	// maxMailbox is the longest reverse-path, brackets included (RFC 5321
	// §4.5.3.1.3).
	maxMailbox = 256
	// maxText caps free text: mechanism, problem, explanation.
	maxText = 200
)

// truncated marks a value cut at its cap.
const truncated = "..."

// clean makes untrusted text safe for a header field: every control
// character (C0 including CR, LF, NUL and TAB, DEL, C1), line and paragraph
// separators, bidirectional overrides and every byte that is not part of
// valid UTF-8 becomes '?'. The result is at most max octets; a cut value ends
// in "..." and is never split inside a character.
func clean(s string, max int) string {
	var b strings.Builder
	cut := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		out := r
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			out = '?'
		}
		if b.Len()+utf8.RuneLen(out) > max {
			cut = true
			break
		}
		b.WriteRune(out)
	}
	if !cut {
		return b.String()
	}
	// Make room for the marker, backing off to a character boundary. What
	// was kept may already be shorter than that room (the character that did
	// not fit was wide).
	v := b.String()
	end := min(max-len(truncated), len(v))
	if end < 0 {
		end = 0
	}
	for end > 0 && end < len(v) && !utf8.RuneStart(v[end]) {
		end--
	}
	return v[:end] + truncated
}

// unsafeRune reports runes that must never reach a header: they break lines,
// end strings early in some software, or reorder what a reader sees.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028', r == '\u2029': // line and paragraph separator
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069': // bidi embeddings, overrides, isolates
		return true
	case r == '\ufeff':
		return true
	}
	return false
}

// isAtext reports RFC 5322 §3.2.3 atext, extended by RFC 6532 §3.2 to
// non-ASCII characters. Callers pass cleaned text only.
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r >= utf8.RuneSelf:
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// isDotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom-text.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if r != '.' && !isAtext(r) {
			return false
		}
	}
	return true
}

// quoteString returns s as an RFC 5322 §3.2.4 quoted-string; '"' and '\'
// become quoted-pairs. s must be cleaned.
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// atomOrQuoted is the value form of a Received-SPF key-value-pair (RFC 7208
// §9.1: dot-atom / quoted-string).
func atomOrQuoted(s string) string {
	if isDotAtom(s) {
		return s
	}
	return quoteString(s)
}

// commentText escapes s for use inside an RFC 5322 §3.2.2 comment: '(', ')'
// and '\' become quoted-pairs. s must be cleaned.
func commentText(s string) string {
	if !strings.ContainsAny(s, `()\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == '(' || r == ')' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
