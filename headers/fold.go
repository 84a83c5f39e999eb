package headers

import "strings"

// Line lengths from RFC 5322 §2.1.1, not counting CRLF.
const (
	foldAt  = 78  // SHOULD
	maxLine = 998 // MUST
)

// foldSep replaces a space where a line is folded (RFC 5322 §2.2.3). Unfolding
// removes the CRLF and leaves the tab, which is white space like the space it
// replaced.
const foldSep = "\r\n\t"

// fold joins groups of words into a field value for the field called name.
// Words within a group are separated by a space, or by a fold where the line
// would pass 78 characters; every group after the first starts a new line.
// Words are never split, so a single very long word makes a long line; the
// caps in sanitize.go keep that below 998 octets. Empty words are skipped.
func fold(name string, groups ...[]string) string {
	var b strings.Builder
	line := len(name) + len(": ")
	first := true
	for _, g := range groups {
		newGroup := true
		for _, w := range g {
			if w == "" {
				continue
			}
			switch {
			case first:
			case newGroup || line+1+len(w) > foldAt:
				b.WriteString(foldSep)
				line = 1
			default:
				b.WriteByte(' ')
				line++
			}
			b.WriteString(w)
			line += len(w)
			first, newGroup = false, false
		}
	}
	return b.String()
}

// words splits s at ASCII spaces, the only white space left in cleaned text.
// Other Unicode spaces are content and stay inside their word.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' })
}
