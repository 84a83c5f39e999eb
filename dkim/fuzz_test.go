package dkim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// FuzzVerify feeds whole messages, as a sender chooses them, to the
// verifier and the From parser: no panic, one result per DKIM-Signature
// field, every result an RFC 8601 token, header.b a base64 prefix, and
// nothing vouched for without a published key.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(sign(f, plain, "example.org", "sel", rsaKey)))
	f.Add([]byte("DKIM-Signature: v=1; d=example.org; s=sel; b=a/b+c=; bh=; h=from\r\nFrom: a@b\r\n\r\nbody\r\n"))
	f.Add([]byte("DKIM-Signature:\r\n\t;;=;d\r\nFrom: \"x\" <a@[1.2.3.4]>\r\n"))
	f.Add([]byte("From: a@example.org\r\n From: b@example.net\r\n\r\n"))
	w := &spftest.Resolver{Fail: map[string]error{"* sel._domainkey.example.org": spf.ErrNotFound}, NoRecord: true}
	v := &dkim.Verifier{Resolver: w, MaxBytes: 1 << 16}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out := v.Verify(context.Background(), msg)
		for _, s := range out.Signatures {
			switch s.Result {
			case dkim.Fail, dkim.Policy, dkim.Neutral, dkim.Temperror, dkim.Permerror:
			default:
				t.Fatalf("result %q without a key", s.Result)
			}
			if len(s.B) > dkim.BPrefix || strings.Trim(s.B, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") != "" {
				t.Fatalf("header.b %q", s.B)
			}
		}
		if out.Vouches("example.org").OK {
			t.Fatal("vouched without a key")
		}
		if d := dkim.AuthorDomain(msg); strings.ContainsAny(d, " \r\n\t") {
			t.Fatalf("author domain %q", d)
		}
	})
}
