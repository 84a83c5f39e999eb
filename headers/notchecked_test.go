package headers

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf"
)

// A HELO that was not checked has no result to report: a NotChecked
// outcome gives the same fields as none at all, whatever its HELO looks
// like (here a single label that is a valid pvalue). A checked one is
// reported.
func TestHELONotCheckedLeftOut(t *testing.T) {
	in := Input{
		AuthservID:   "mx.example.com",
		ClientIP:     netip.MustParseAddr("192.0.2.1"),
		HELO:         "localhost",
		EnvelopeFrom: "alice@example.org",
		MailFrom:     spf.Outcome{Result: spf.Pass, Identity: spf.IdentityMailFrom, Domain: "example.org", Sender: "alice@example.org", Mechanism: "a"},
	}
	want := Fields(in)
	in.HELOResult = &spf.Outcome{Result: spf.None, Identity: spf.IdentityHELO, NotChecked: true,
		Problem: "HELO is not a fully qualified domain name (RFC 7208 §2.3)"}
	got := Fields(in)
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("field %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if strings.Contains(got[0].Value, "smtp.helo") {
		t.Errorf("Authentication-Results reports the unchecked HELO: %q", got[0].Value)
	}
	in.HELOResult.NotChecked = false
	if ar := Fields(in)[0].Value; !strings.Contains(ar, "spf=none smtp.helo=localhost") {
		t.Errorf("a checked HELO is not reported: %q", ar)
	}
}
