package dkim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/dkim"
)

// BenchmarkVerify is the cost rescue adds to one failing message: the
// signatures verified (RSA-2048, relaxed/relaxed) over a 2 KiB body, keys
// from an in-memory resolver (a cached answer, as in the daemon).
func BenchmarkVerify(b *testing.B) {
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 32)
	msg := strings.Replace(plain, "Hello Bob,\r\n", "Hello Bob,\r\n"+body, 1)
	for _, c := range []struct {
		name string
		sigs int
	}{{"one signature", 1}, {"three signatures", 3}} {
		signed := msg
		for range c.sigs {
			signed = sign(b, signed, "example.org", "sel", rsaKey)
		}
		w := world("example.org")
		w.NoRecord = true
		v := &dkim.Verifier{Resolver: w}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(signed)))
			for b.Loop() {
				if !v.Verify(context.Background(), []byte(signed)).Vouches("example.org").OK {
					b.Fatal("not verified")
				}
			}
		})
	}
}
