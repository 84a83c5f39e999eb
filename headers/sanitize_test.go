package headers

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/authres"
)

func TestClean(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"mail.example.com", 255, "mail.example.com"},
		{"a\r\nb", 255, "a??b"},
		{"a\x00b\tc\x7fd", 255, "a?b?c?d"},
		{"a\u0085b", 255, "a?b"},                 // C1 NEL
		{"a\u2028b\u2029c", 255, "a?b?c"},        // line and paragraph separators
		{"a\u202eb\u2066c\ufeff", 255, "a?b?c?"}, // bidi override, isolate, BOM
		{"a\xffb\xc3", 255, "a?b?"},              // invalid UTF-8
		{"jörg", 255, "jörg"},                    // valid UTF-8 stays
		{"\ufffd", 255, "\ufffd"},                // a real U+FFFD is valid
		{strings.Repeat("x", 10), 10, strings.Repeat("x", 10)},
		{strings.Repeat("x", 11), 10, "xxxxxxx..."},
		{"ab" + strings.Repeat("ö", 5), 8, "abö..."}, // cut on a character boundary
		{"", 10, ""},
		// The character that does not fit is wide: what was kept is exactly
		// the room left for the marker (found by FuzzSession).
		{"xxxxxxx😀", 10, "xxxxxxx..."},
		{"xxxxxx😀", 10, "xxxxxx😀"},
		{"xxxxxxxx😀", 10, "xxxxxxx..."},
	}
	for _, c := range cases {
		got := clean(c.in, c.max)
		if got != c.want {
			t.Errorf("clean(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
		if len(got) > c.max || !utf8.ValidString(got) {
			t.Errorf("clean(%q, %d) = %q: too long or invalid", c.in, c.max, got)
		}
	}
}

func TestAtomOrQuoted(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1":           "192.0.2.1",
		"2001:db8::1":         `"2001:db8::1"`,
		"alice@example.com":   `"alice@example.com"`,
		"-all":                "-all",
		"ip4:192.0.2.0/24":    `"ip4:192.0.2.0/24"`,
		"":                    `""`,
		".leading":            `".leading"`,
		"trailing.":           `"trailing."`,
		"dou..ble":            `"dou..ble"`,
		`say "hi" \o/`:        `"say \"hi\" \\o/"`,
		"mx.bücher.example":   "mx.bücher.example",
		"a b":                 `"a b"`,
		"[192.0.2.1]":         `"[192.0.2.1]"`,
		"!#$%&'*+-/=?^_`{|}~": "!#$%&'*+-/=?^_`{|}~",
	}
	for in, want := range cases {
		if got := atomOrQuoted(in); got != want {
			t.Errorf("atomOrQuoted(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCommentText(t *testing.T) {
	if got, want := commentText(`a (b) \c "d"`), `a \(b\) \\c "d"`; got != want {
		t.Errorf("commentText = %s, want %s", got, want)
	}
}

func TestFold(t *testing.T) {
	words := strings.Fields(strings.Repeat("abcdefghi ", 20))
	got := fold("X-Test", words)
	for i, l := range strings.Split(got, foldSep) {
		if i == 0 {
			l = "X-Test: " + l
		}
		if len(l) > foldAt {
			t.Errorf("line %d has %d characters: %q", i, len(l), l)
		}
	}
	if strings.ReplaceAll(got, foldSep, " ") != strings.Join(words, " ") {
		t.Errorf("fold changed the words: %q", got)
	}
	// A word longer than a line stays whole on its own line.
	long := strings.Repeat("y", 100)
	if got, want := fold("X-Test", []string{"a", long, "b"}), "a"+foldSep+long+foldSep+"b"; got != want {
		t.Errorf("fold long word = %q, want %q", got, want)
	}
	// Each group starts a line; empty words vanish.
	if got, want := fold("X", []string{"a;"}, []string{"", "b", "c"}), "a;"+foldSep+"b c"; got != want {
		t.Errorf("fold groups = %q, want %q", got, want)
	}
}

func TestMailfromPvalue(t *testing.T) {
	cases := []struct {
		from, helo, want string
	}{
		{"alice@example.com", "h.example", "alice@example.com"},
		{"Alice@Example.COM", "h.example", "Alice@example.com"}, // domains are lower-case A-labels
		{"a.b+tag@example.com", "h.example", "a.b+tag@example.com"},
		{"jörg@bücher.example", "h.example", "jörg@xn--bcher-kva.example"},
		{"", "mail.example.com", "postmaster@mail.example.com"},
		{"", "[192.0.2.1]", ""},
		{"", "", ""},
		{"SRS0=x=y=example.net=bob@fwd.example", "h", "fwd.example"},
		{`"john doe"@example.com`, "h", "example.com"},
		{`a\b@example.com`, "h", "example.com"},
		{"a..b@example.com", "h", "example.com"},
		{"a(b)@example.com", "h", "example.com"},
		{strings.Repeat("l", 65) + "@example.com", "h", "example.com"},
		{"alice@example.com.", "h", "alice@example.com"},
		{"alice@exa mple.com", "h", ""},
		{"alice@[192.0.2.1]", "h", ""},
		{"nodomain", "h", "nodomain"},
		{"alice@", "h", ""},
		{"alice@_spf.example.com", "h", "alice@_spf.example.com"},
	}
	for _, c := range cases {
		got := mailfromPvalue(Input{EnvelopeFrom: c.from, HELO: c.helo})
		if got != c.want {
			t.Errorf("mailfromPvalue(%q, helo %q) = %q, want %q", c.from, c.helo, got, c.want)
		}
	}
}

// TestAuthresFormatBehaviour pins what authres.Format v0.7.0 does with the
// values it is given, which is why authResultsValue only passes values it
// writes unquoted.
func TestAuthresFormatBehaviour(t *testing.T) {
	cases := []struct {
		r    authres.SPFResult
		want string
	}{
		{authres.SPFResult{Value: authres.ResultPass, From: "alice@example.com"}, "id; spf=pass smtp.mailfrom=alice@example.com"},
		// Empty properties are skipped but leave a trailing space.
		{authres.SPFResult{Value: authres.ResultNone}, "id; spf=none "},
		// Values with spaces or '=' are quoted; '"' is escaped ...
		{authres.SPFResult{Value: authres.ResultFail, From: `"a b"@example.com`}, `id; spf=fail smtp.mailfrom="\"a b\"@example.com"`},
		{authres.SPFResult{Value: authres.ResultFail, From: "SRS0=x@example.com"}, `id; spf=fail smtp.mailfrom="SRS0=x@example.com"`},
		// ... but '\' is neither escaped nor a reason to quote in an address,
		{authres.SPFResult{Value: authres.ResultFail, From: `a\b@example.com`}, `id; spf=fail smtp.mailfrom=a\b@example.com`},
		// and in a quoted reason a trailing '\' escapes the closing quote.
		{authres.SPFResult{Value: authres.ResultPermError, Reason: `bad \`, From: "x"}, `id; spf=permerror reason="bad \" smtp.mailfrom=x`},
		// CR and LF are quoted, not removed.
		{authres.SPFResult{Value: authres.ResultFail, Helo: "a\r\nb"}, "id; spf=fail smtp.helo=\"a\r\nb\""},
	}
	for _, c := range cases {
		r := c.r
		if got := authres.Format("id", []authres.Result{&r}); got != c.want {
			t.Errorf("authres.Format(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
	// authres.Parse splits on white space and keeps quotes: a quoted value
	// does not read back.
	_, rs, err := authres.Parse(`id; spf=fail smtp.mailfrom="a b"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := rs[0].(*authres.SPFResult).From; got != `"a` {
		t.Errorf("authres.Parse of a quoted value gave %q", got)
	}
}
