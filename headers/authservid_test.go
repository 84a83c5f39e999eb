package headers

import (
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

func TestClaimsAuthservID(t *testing.T) {
	const id = "mx.example.org"
	cases := []struct {
		value string
		want  bool
	}{
		{"mx.example.org; spf=pass smtp.mailfrom=example.com", true},
		{" mx.example.org;spf=pass", true},
		{"MX.Example.ORG; none", true},
		{"mx.example.org.; none", true},
		{"mx.example.org 1; spf=pass", true},                    // authres-version
		{"mx.example.org\r\n\t1 ; spf=pass", true},              // folded before the version
		{"(forged) mx.example.org; spf=pass", true},             // leading comment
		{"(a (nested \\) comment)) mx.example.org; none", true}, // nested comment with a quoted-pair
		{"\r\n mx.example.org(c); none", true},
		{`"mx.example.org"; spf=pass`, true}, // quoted-string authserv-id
		{`"mx.exa\mple.org"; spf=pass`, true},
		{"mx.example.org", true},
		{"xn--mx-0ka.example.org; none", false},
		{"other.example.org; spf=pass", false},
		{"mx.example.org.evil; spf=pass", false},
		{"evil.mx.example.org; spf=pass", false},
		{"mx.example.or; spf=pass", false},
		{"mx.example.org\"; spf=pass", false},
		{"mx.example.org=pass", false},
		{"(unterminated mx.example.org; spf=pass", false},
		{`"mx.example.org; spf=pass`, false},
		{`"mx.example.org\`, false},
		{"", false},
		{"   ", false},
		{";", false},
		{"(x)", false},
		{"\x00mx.example.org;", false},
	}
	for _, c := range cases {
		if got := ClaimsAuthservID(c.value, id); got != c.want {
			t.Errorf("ClaimsAuthservID(%q, %q) = %v, want %v", c.value, id, got, c.want)
		}
	}
}

func TestClaimsAuthservIDIDN(t *testing.T) {
	// RFC 8616: the U-label and A-label forms name the same host.
	if !ClaimsAuthservID("mx.xn--bcher-kva.example; none", "mx.bücher.example") {
		t.Error("A-label field does not match U-label id")
	}
	if !ClaimsAuthservID("mx.bücher.example; none", "mx.xn--bcher-kva.example") {
		t.Error("U-label field does not match A-label id")
	}
	if ClaimsAuthservID("mx.example.org; none", "") {
		t.Error("empty id matched")
	}
}

func TestValidAuthservID(t *testing.T) {
	for _, id := range []string{"mx.example.org", "mx.bücher.example", "localhost", "mx_1"} {
		if !ValidAuthservID(id) {
			t.Errorf("ValidAuthservID(%q) = false", id)
		}
	}
	for _, id := range []string{"", " ", ".", "mx example", "mx;example", "a=b", "\"q\"", "mx\r\n.example"} {
		if ValidAuthservID(id) {
			t.Errorf("ValidAuthservID(%q) = true", id)
		}
	}
	// An unusable id leaves Authentication-Results out; Received-SPF stays.
	in := base()
	in.AuthservID = "bad id;"
	fs := Fields(in)
	if len(fs) != 1 || fs[0].Name != NameReceivedSPF {
		t.Errorf("Fields with a bad authserv-id = %v", fs)
	}
}

// TestAuthresParseAuthservID pins why ClaimsAuthservID has its own parser:
// authres.Parse v0.7.0 does not skip a leading comment and does not unquote
// a quoted-string authserv-id.
func TestAuthresParseAuthservID(t *testing.T) {
	if _, _, err := authres.Parse("(c) mx.example.org; spf=pass"); err == nil {
		t.Error("authres.Parse now accepts a leading comment")
	}
	if id, _, _ := authres.Parse(`"mx.example.org"; spf=pass`); id != `"mx.example.org"` {
		t.Errorf("authres.Parse now returns %q for a quoted authserv-id", id)
	}
}
