package dkim

import (
	"bytes"
	"strings"
)

// signatureFields returns one Signature (Domain, Selector, B filled in) per
// DKIM-Signature field of msg's header, top to bottom: the order in which
// go-msgauth verifies them.
func signatureFields(msg []byte) []Signature {
	var sigs []Signature
	for _, f := range headerFields(msg) {
		name, value, ok := strings.Cut(f, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			sigs = append(sigs, signatureTags(value))
		}
	}
	return sigs
}

// headerFields splits msg's header into unfolded fields. The header ends at
// the first empty line, as go-msgauth reads it.
func headerFields(msg []byte) []string {
	var fields []string
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += string(line)
			continue
		}
		fields = append(fields, string(line))
	}
	return fields
}

// signatureTags reads d=, s= and b= from a DKIM-Signature value (RFC 6376
// §3.2 tag-list; folding white space inside values is ignored).
func signatureTags(value string) Signature {
	var s Signature
	for _, spec := range strings.Split(value, ";") {
		tag, val, ok := strings.Cut(spec, "=")
		if !ok {
			continue
		}
		val = stripSpace(val)
		switch strings.TrimSpace(tag) {
		case "d":
			s.Domain = normDomain(val)
		case "s":
			s.Selector = val
		case "b":
			s.B = bPrefix(val)
		}
	}
	return s
}

// bPrefix is the first BPrefix base64 characters of b= (padding and
// anything else dropped), as header.b shows it (RFC 6008 §4).
func bPrefix(b string) string {
	var out []byte
	for i := 0; i < len(b) && len(out) < BPrefix; i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			out = append(out, c)
		}
	}
	return string(out)
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}
