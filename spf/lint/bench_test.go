package lint

import (
	"context"
	"math/rand/v2"
	"testing"
)

// BenchmarkLint lints a tree of six records over a loopback DNS server; the
// client's cache answers the repeated questions, as it does for one run of
// the command.
func BenchmarkLint(b *testing.B) {
	rc := serve(b, flattenWorld(rand.New(rand.NewPCG(7208, 1))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Lint(context.Background(), "flat.example", Options{Resolver: rc}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlatten flattens the same tree into chunked records.
func BenchmarkFlatten(b *testing.B) {
	rc := serve(b, flattenWorld(rand.New(rand.NewPCG(7208, 1))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Flatten(context.Background(), "flat.example", FlattenOptions{Resolver: rc, ExpandA: true, ExpandMX: true}); err != nil {
			b.Fatal(err)
		}
	}
}
