package headers

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/spf"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// render writes fields as they appear in a message: "Name: value" CRLF.
func render(fs []Field) []byte {
	var b bytes.Buffer
	for _, f := range fs {
		b.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	return b.Bytes()
}

func base() Input {
	return Input{
		AuthservID:   "mx.example.org",
		Receiver:     "mx.example.org",
		ClientIP:     netip.MustParseAddr("192.0.2.1"),
		HELO:         "mail.example.com",
		EnvelopeFrom: "alice@example.com",
		HELOResult:   &spf.Outcome{Result: spf.Pass, Identity: spf.IdentityHELO, Domain: "mail.example.com", Sender: "postmaster@mail.example.com", Mechanism: "a"},
		MailFrom:     spf.Outcome{Result: spf.Pass, Identity: spf.IdentityMailFrom, Domain: "example.com", Sender: "alice@example.com", Mechanism: "ip4:192.0.2.0/24"},
	}
}

// goldenCases are checked by eye against RFC 7208 §9.1 (with erratum 5436),
// RFC 8601 §2.2 and RFC 5322 §2.2.3 / §3.2; see the comments in each file's
// test case.
var goldenCases = []struct {
	name string
	in   func() Input
}{
	{"pass", base},
	{"ipv4-mapped", func() Input {
		in := base()
		in.ClientIP = netip.MustParseAddr("::ffff:192.0.2.1")
		return in
	}},
	{"fail-explanation", func() Input {
		in := base()
		in.HELOResult.Result = spf.None
		in.MailFrom.Result = spf.Fail
		in.MailFrom.Mechanism = "-all"
		in.MailFrom.Explanation = "See http://www.example.com/why.html?s=alice@example.com"
		return in
	}},
	{"softfail", func() Input {
		in := base()
		in.HELOResult = nil
		in.MailFrom.Result = spf.Softfail
		in.MailFrom.Mechanism = "~all"
		return in
	}},
	{"neutral", func() Input {
		in := base()
		in.HELOResult.Result = spf.Neutral
		in.MailFrom.Result = spf.Neutral
		in.MailFrom.Mechanism = "default"
		return in
	}},
	{"none", func() Input {
		in := base()
		in.HELOResult.Result = spf.None
		in.HELOResult.Problem = "no SPF record"
		in.MailFrom.Result = spf.None
		in.MailFrom.Mechanism = ""
		in.MailFrom.Problem = "no SPF record"
		return in
	}},
	{"temperror", func() Input {
		in := base()
		in.MailFrom.Result = spf.Temperror
		in.MailFrom.Mechanism = ""
		in.MailFrom.Problem = "DNS timeout looking up TXT example.com"
		return in
	}},
	{"permerror", func() Input {
		in := base()
		in.MailFrom.Result = spf.Permerror
		in.MailFrom.Mechanism = ""
		in.MailFrom.Problem = `unknown mechanism "foo:bar" in example.com`
		in.MailFrom.Cause = spf.CauseSyntax
		return in
	}},
	{"relayed", func() Input {
		in := base()
		in.Relay = netip.MustParseAddr("192.0.2.25")
		return in
	}},
	{"permerror-helo-limit", func() Input {
		in := base()
		in.MailFrom.Result = spf.Permerror
		in.MailFrom.Mechanism = ""
		in.MailFrom.Problem = "more than 10 DNS-causing terms (at include:l11.example.com)"
		in.MailFrom.Cause = spf.CauseLookupLimit
		h := *in.HELOResult
		h.Result, h.Mechanism, h.Cause, h.Problem = spf.Permerror, "", spf.CauseVoidLookupLimit, "more than 2 void lookups"
		in.HELOResult = &h
		return in
	}},
	{"null-sender", func() Input {
		in := base()
		in.EnvelopeFrom = ""
		in.MailFrom.Domain = "mail.example.com"
		in.MailFrom.Sender = "postmaster@mail.example.com"
		in.MailFrom.Mechanism = "a"
		return in
	}},
	{"null-sender-ip-literal-helo", func() Input {
		// sendmail -bs style: no client address, an address-literal HELO,
		// the null sender; SPF has no domain to check.
		in := base()
		in.ClientIP = netip.Addr{}
		in.HELO = "[127.0.0.1]"
		in.EnvelopeFrom = ""
		in.HELOResult = &spf.Outcome{Result: spf.None, Identity: spf.IdentityHELO, Problem: "HELO is an address literal"}
		in.MailFrom = spf.Outcome{Result: spf.None, Identity: spf.IdentityMailFrom, Problem: "null sender and HELO is an address literal"}
		return in
	}},
	{"ipv6", func() Input {
		in := base()
		in.ClientIP = netip.MustParseAddr("2001:db8::25")
		in.MailFrom.Mechanism = "ip6:2001:db8::/32"
		return in
	}},
	{"hidden-receiver", func() Input {
		in := base()
		in.Receiver = ""
		return in
	}},
	{"no-client-ip", func() Input {
		in := base()
		in.ClientIP = netip.Addr{}
		in.HELO = ""
		in.HELOResult = nil
		in.MailFrom.Result = spf.None
		in.MailFrom.Mechanism = ""
		in.MailFrom.Problem = "no client address"
		return in
	}},
	{"ip-literal-helo", func() Input {
		in := base()
		in.HELO = "[192.0.2.1]"
		in.HELOResult = &spf.Outcome{Result: spf.None, Identity: spf.IdentityHELO, Problem: "HELO is an address literal"}
		return in
	}},
	{"hostile", func() Input {
		in := base()
		in.HELO = "evil\r\nX-Injected: yes\x00\"quoted\"\\back(" + strings.Repeat("a", 70) + "." + strings.Repeat("b", 300)
		in.EnvelopeFrom = "\"x\\\"y\r\n\"@" + strings.Repeat("c", 63) + ".example"
		in.HELOResult.Result = spf.None
		in.MailFrom.Sender = in.EnvelopeFrom
		in.MailFrom.Result = spf.Fail
		in.MailFrom.Mechanism = "-all"
		in.MailFrom.Explanation = "go away\r\n\r\nX-Evil: 1 (nested) \\ \u202e\xff"
		return in
	}},
	{"srs-sender", func() Input {
		in := base()
		in.EnvelopeFrom = "SRS0=HHH=TT=example.net=bob@fwd.example.com"
		in.MailFrom.Sender = in.EnvelopeFrom
		return in
	}},
	{"dkim-rescue", func() Input {
		// A forwarded message: SPF fail, one broken signature of the
		// forwarder, one valid signature of the sender's domain.
		in := base()
		in.MailFrom.Result = spf.Fail
		in.MailFrom.Mechanism = "-all"
		in.DKIM = []dkim.Signature{
			{Result: dkim.Fail, Domain: "forwarder.example", Selector: "2026", B: "Zm9yd2FyZGVy"},
			{Result: dkim.Pass, Domain: "mail.example.com", Selector: "sel1", B: "dGhl/3NlbmRl"},
		}
		in.Rescue = &in.DKIM[1]
		return in
	}},
	{"dkim-hostile", func() Input {
		// Values from the message that are not domain names or base64
		// are left out rather than quoted.
		in := base()
		in.DKIM = []dkim.Signature{{Result: "bogus", Domain: "a b;c", Selector: "x\r\nX-Evil: 1", B: "abc=def"}}
		return in
	}},
	{"utf8", func() Input {
		in := base()
		in.EnvelopeFrom = "jörg@bücher.example"
		in.HELO = "mx.bücher.example"
		in.MailFrom.Sender = in.EnvelopeFrom
		in.MailFrom.Domain = "xn--bcher-kva.example"
		return in
	}},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := render(Fields(tc.in()))
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs\n--- got\n%s\n--- want\n%s", path, got, want)
			}
			checkInvariants(t, Fields(tc.in()))
		})
	}
}
