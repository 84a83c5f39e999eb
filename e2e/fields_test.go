package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// A header field as delivered, unfolded.
type headerField struct {
	Name  string
	Value string
}

// parseHeader splits a message's header section into fields, unfolding
// continuation lines (RFC 5322 §2.2.3) and trimming the value.
func parseHeader(text string) []headerField {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if i := strings.Index(text, "\n\n"); i >= 0 {
		text = text[:i]
	}
	var out []headerField
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].Value += line
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		out = append(out, headerField{Name: name, Value: value})
	}
	for i := range out {
		out[i].Value = strings.TrimSpace(out[i].Value)
	}
	return out
}

// tvToken is one token of a structured header value: an atom (word), a
// quoted string (already unquoted), or one of the specials '=', ';', '/'.
type tvToken struct {
	text    string
	quoted  bool
	special byte
}

// tokenizeValue splits a structured value (Received-SPF, Authentication-
// Results) into tokens, dropping comments (nested, with quoted pairs) and
// whitespace. It is written from RFC 5322 §3.2 independently of the milter's
// code so that it can check it.
func tokenizeValue(v string) ([]tvToken, []string, error) {
	var toks []tvToken
	var comments []string
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			depth, start := 0, i
			for ; i < len(v); i++ {
				if v[i] == '\\' {
					i++
					continue
				}
				if v[i] == '(' {
					depth++
				}
				if v[i] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if i >= len(v) {
				return nil, nil, fmt.Errorf("unterminated comment in %q", v)
			}
			comments = append(comments, v[start+1:i])
			i++
		case c == '"':
			var b strings.Builder
			i++
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			if i >= len(v) {
				return nil, nil, fmt.Errorf("unterminated quoted string in %q", v)
			}
			i++
			toks = append(toks, tvToken{text: b.String(), quoted: true})
		case c == '=' || c == ';' || c == '/':
			toks = append(toks, tvToken{special: c, text: string(c)})
			i++
		default:
			start := i
			for i < len(v) && !strings.ContainsRune(" \t\r\n()\";=/", rune(v[i])) {
				i++
			}
			toks = append(toks, tvToken{text: v[start:i]})
		}
	}
	return toks, comments, nil
}

// receivedSPF is a parsed Received-SPF value (RFC 7208 §9.1):
// result [comment] *(key=value ;).
type receivedSPF struct {
	Result  string
	Comment string
	Params  map[string]string
}

func parseReceivedSPF(v string) (receivedSPF, error) {
	toks, comments, err := tokenizeValue(v)
	if err != nil {
		return receivedSPF{}, err
	}
	if len(toks) == 0 || toks[0].special != 0 || toks[0].quoted {
		return receivedSPF{}, fmt.Errorf("no result token in %q", v)
	}
	r := receivedSPF{Result: toks[0].text, Params: map[string]string{}}
	if len(comments) > 0 {
		r.Comment = comments[0]
	}
	for i := 1; i < len(toks); {
		if toks[i].special == ';' {
			i++
			continue
		}
		key := toks[i]
		if key.special != 0 || key.quoted || i+2 >= len(toks) || toks[i+1].special != '=' || toks[i+2].special != 0 {
			return r, fmt.Errorf("want key=value at %q in %q", key.text, v)
		}
		k := strings.ToLower(key.text)
		if _, dup := r.Params[k]; dup {
			return r, fmt.Errorf("key %q twice in %q", key.text, v)
		}
		r.Params[k] = toks[i+2].text
		i += 3
	}
	return r, nil
}

// authResult is one resinfo of an Authentication-Results value (RFC 8601
// §2.2): method=result and its ptype.property=value pairs.
type authResult struct {
	Method string
	Result string
	Props  map[string]string
}

type authResults struct {
	AuthservID string
	Results    []authResult
}

func parseAuthResults(v string) (authResults, error) {
	toks, _, err := tokenizeValue(v)
	if err != nil {
		return authResults{}, err
	}
	if len(toks) == 0 || toks[0].special != 0 {
		return authResults{}, fmt.Errorf("no authserv-id in %q", v)
	}
	ar := authResults{AuthservID: toks[0].text}
	i := 1
	if i < len(toks) && toks[i].special == 0 {
		i++ // authres-version
	}
	for i < len(toks) {
		if toks[i].special != ';' {
			return ar, fmt.Errorf("want ';' at %q in %q", toks[i].text, v)
		}
		i++
		if i == len(toks) {
			break // a trailing ';'
		}
		if toks[i].text == "none" && toks[i].special == 0 {
			i++
			continue
		}
		if i+2 >= len(toks) || toks[i].special != 0 || toks[i+1].special != '=' || toks[i+2].special != 0 {
			return ar, fmt.Errorf("want method=result in %q", v)
		}
		res := authResult{Method: toks[i].text, Result: toks[i+2].text, Props: map[string]string{}}
		i += 3
		for i < len(toks) && toks[i].special == 0 {
			if i+2 >= len(toks) || toks[i+1].special != '=' || toks[i+2].special != 0 {
				return ar, fmt.Errorf("want ptype.property=value at %q in %q", toks[i].text, v)
			}
			res.Props[strings.ToLower(toks[i].text)] = toks[i+2].text
			i += 3
		}
		ar.Results = append(ar.Results, res)
	}
	return ar, nil
}

func TestParseReceivedSPF(t *testing.T) {
	// RFC 7208 §9.1's example, with a quoted envelope-from.
	v := `pass (mybox.example.org: domain of
      myname@example.com designates 192.0.2.1 as permitted sender)
         receiver=mybox.example.org; client-ip=192.0.2.1;
         envelope-from="myname@example.com"; helo=foo.example.com;`
	r, err := parseReceivedSPF(v)
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != "pass" || r.Params["receiver"] != "mybox.example.org" || r.Params["client-ip"] != "192.0.2.1" ||
		r.Params["envelope-from"] != "myname@example.com" || r.Params["helo"] != "foo.example.com" || len(r.Params) != 4 {
		t.Errorf("parsed %+v", r)
	}
	if !strings.Contains(r.Comment, "designates 192.0.2.1") {
		t.Errorf("comment %q", r.Comment)
	}
	if _, err := parseReceivedSPF(`pass client-ip=`); err == nil {
		t.Error("a key without '=' value accepted")
	}
	if _, err := parseReceivedSPF(`pass (open comment`); err == nil {
		t.Error("an unterminated comment accepted")
	}
	r, err = parseReceivedSPF(`fail envelope-from=""; identity=mailfrom`)
	if err != nil || r.Params["envelope-from"] != "" || r.Params["identity"] != "mailfrom" {
		t.Errorf("empty quoted value: %+v, %v", r, err)
	}
}

func TestParseAuthResults(t *testing.T) {
	// RFC 8601 Appendix B.3's SPF example, plus a comment with a ';'.
	v := "example.com; spf=pass (a; comment) smtp.mailfrom=example.net; dkim=fail header.d=x.example"
	ar, err := parseAuthResults(v)
	if err != nil {
		t.Fatal(err)
	}
	if ar.AuthservID != "example.com" || len(ar.Results) != 2 ||
		ar.Results[0].Method != "spf" || ar.Results[0].Result != "pass" ||
		ar.Results[0].Props["smtp.mailfrom"] != "example.net" ||
		ar.Results[1].Method != "dkim" || ar.Results[1].Props["header.d"] != "x.example" {
		t.Errorf("parsed %+v", ar)
	}
	ar, err = parseAuthResults("example.org 1; none")
	if err != nil || ar.AuthservID != "example.org" || len(ar.Results) != 0 {
		t.Errorf("none: %+v, %v", ar, err)
	}
	if _, err := parseAuthResults("example.org; spf"); err == nil {
		t.Error("a method without a result accepted")
	}
}
