package metrics_test

import (
	"testing"
	"time"
)

// The observers sit on the lookup and session paths.

func BenchmarkObserveQuery(b *testing.B) {
	m, _ := newTest(b)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveQuery("TXT", "ok", time.Millisecond)
	}
}

func BenchmarkSPFResultAndAction(b *testing.B) {
	m, _ := newTest(b)
	b.ReportAllocs()
	for b.Loop() {
		m.SPFResult("mailfrom", "pass", time.Millisecond)
		m.Action("accept", "")
	}
}
