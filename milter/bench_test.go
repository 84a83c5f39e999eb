package milter

import (
	"testing"

	gomilter "github.com/emersion/go-milter"
)

// BenchmarkMessage is one accepted message over loopback on a kept-open
// connection: MAIL FROM with both checks (HELO cached), one header field
// and the end of message with its header edits.
func BenchmarkMessage(b *testing.B) {
	h := start(b, Options{Config: testConfig(world())})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	b.ReportAllocs()
	for b.Loop() {
		m.accepted("alice@pass.test", "QB", field{"Subject", "bench"})
	}
}
