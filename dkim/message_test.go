package dkim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/dkim"
)

// A message rebuilt from milter pieces (no space after the colon, LF in
// folded values) verifies as the original with relaxed canonicalization.
func TestMessageFromMilterPieces(t *testing.T) {
	signed := sign(t, plain, "example.org", "sel", rsaKey)
	head, body, _ := strings.Cut(signed, "\r\n\r\n")
	m := dkim.NewMessage(1 << 20)
	var name, value string
	flush := func() {
		if name != "" {
			m.Header(name, value)
		}
	}
	for _, line := range strings.Split(head, "\r\n") {
		if line[0] == ' ' || line[0] == '\t' {
			value += "\n" + line
			continue
		}
		flush()
		name, value, _ = strings.Cut(line, ":")
		value = strings.TrimLeft(value, " ")
	}
	flush()
	m.EndHeader()
	m.Body([]byte(body[:10]))
	m.Body([]byte(body[10:]))
	if got := string(m.Bytes()); got != signed {
		t.Fatalf("rebuilt:\n%q\nwant\n%q", got, signed)
	}
	if out := verify(t, world("example.org"), string(m.Bytes())); !out.Vouches("example.org").OK {
		t.Errorf("rebuilt message: %s", results(out))
	}
}

func TestMessageKeepsLimitPlusOne(t *testing.T) {
	m := dkim.NewMessage(10)
	m.Header("Subject", "0123456789")
	m.Body([]byte("more"))
	if got := len(m.Bytes()); got != 11 {
		t.Fatalf("kept %d bytes, want 11", got)
	}
	v := &dkim.Verifier{Resolver: world(), MaxBytes: 60}
	m = dkim.NewMessage(v.Limit())
	m.Header("DKIM-Signature", "v=1; d=example.org; s=sel; b=abc")
	m.EndHeader()
	m.Body([]byte(strings.Repeat("body\r\n", 10)))
	if out := v.Verify(context.Background(), m.Bytes()); !out.Oversized || len(out.Signatures) != 1 || out.Signatures[0].Result != dkim.Neutral {
		t.Errorf("cut message not oversized: %+v", out)
	}
}

func TestAuthorDomain(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{plain, "example.org"},
		{"From: \"A, B\" <a@Mail.Example.ORG>\r\n\r\n", "mail.example.org"},
		{"From: a@example.org, b@example.net\r\n\r\n", ""},
		{"From: a@example.org\r\nFrom: b@example.net\r\n\r\n", ""},
		{"Subject: none\r\n\r\nFrom: a@example.org\r\n", ""},
		{"From: not an address\r\n\r\n", ""},
		{"From: Alice\r\n <alice@example.org>\r\n\r\n", "example.org"},
	} {
		if got := dkim.AuthorDomain([]byte(c.msg)); got != c.want {
			t.Errorf("AuthorDomain(%q) = %q, want %q", c.msg, got, c.want)
		}
	}
}

func TestCRLF(t *testing.T) {
	if got := string(dkim.CRLF([]byte("a\nb\r\nc\n"))); got != "a\r\nb\r\nc\r\n" {
		t.Errorf("CRLF = %q", got)
	}
}
