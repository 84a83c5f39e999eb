package headers

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/spfmilter/spfmilter/spf"
)

var fuzzResults = []spf.Result{spf.None, spf.Neutral, spf.Pass, spf.Fail, spf.Softfail, spf.Temperror, spf.Permerror, "bogus"}

// FuzzFields feeds untrusted HELO, MAIL FROM, problem and explanation text
// (and a random receiver, mechanism, authserv-id and client address) through
// Fields and checks the invariants: no panic, no control character outside
// CRLF+TAB folds, no line over 998 octets, a Received-SPF that follows RFC
// 7208 §9.1 and carries the cleaned identities, and an
// Authentication-Results that authres.Parse reads back exactly and that
// ClaimsAuthservID recognizes.
func FuzzFields(f *testing.F) {
	f.Add("mail.example.com", "alice@example.com", "", "", "mx.example.org", "ip4:192.0.2.0/24", "mx.example.org", byte(2), []byte{192, 0, 2, 1})
	f.Add("[192.0.2.1]", "", "no SPF record", "", "", "", "mx.example.org", byte(0), []byte{})
	f.Add("evil\r\nX: y", "\"a\\\"b\"@x\x00.example", "bad \\ \"record\"", "go\naway", "rcv", "-all", "id;x", byte(3), []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add("mx.bücher.example", "jörg@bücher.example", "", "", "mx.example.org", "a", "mx.bücher.example", byte(4), []byte{127, 0, 0, 1})
	f.Add(strings.Repeat("\"", 400), strings.Repeat("(", 400), strings.Repeat("\\", 400), strings.Repeat(")", 400), strings.Repeat("é", 300), strings.Repeat("x", 999), strings.Repeat("a.", 200), byte(5), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, helo, from, problem, expl, receiver, mech, authservID string, result byte, ip []byte) {
		addr, _ := netip.AddrFromSlice(ip)
		res := fuzzResults[int(result)%len(fuzzResults)]
		in := Input{
			AuthservID:   authservID,
			Receiver:     receiver,
			ClientIP:     addr,
			HELO:         helo,
			EnvelopeFrom: from,
			MailFrom: spf.Outcome{
				Result: res, Identity: spf.IdentityMailFrom, Sender: from,
				Mechanism: mech, Problem: problem, Explanation: expl,
			},
		}
		if result&0x80 != 0 {
			in.HELOResult = &spf.Outcome{Result: fuzzResults[int(result>>3)%len(fuzzResults)], Problem: problem}
		}
		fs := Fields(in)
		checkInvariants(t, fs)

		rs := fs[len(fs)-1]
		if rs.Name != NameReceivedSPF {
			t.Fatalf("last field is %s", rs.Name)
		}
		gotRes, _, kv, err := parseReceivedSPFValue(rs.Value)
		if err != nil {
			t.Fatalf("Received-SPF %q: %v", rs.Value, err)
		}
		if gotRes != string(knownResult(res)) {
			t.Errorf("result %q for %q", gotRes, res)
		}
		if got, _ := lookup(kv, "envelope-from"); got != clean(from, maxMailbox) {
			t.Errorf("envelope-from %q, want %q", got, clean(from, maxMailbox))
		}
		if got, ok := lookup(kv, "helo"); ok != (helo != "") || got != clean(helo, maxDomain) {
			t.Errorf("helo %q, want %q", got, clean(helo, maxDomain))
		}

		if len(fs) == 1 {
			if ValidAuthservID(authservID) {
				t.Fatalf("no Authentication-Results for valid id %q", authservID)
			}
			return
		}
		want := []authres.Result{&authres.SPFResult{Value: resultValue(res), From: mailfromPvalue(in)}}
		if in.HELOResult != nil && domainPvalue(helo) != "" {
			want = append(want, &authres.SPFResult{Value: resultValue(in.HELOResult.Result), Helo: domainPvalue(helo)})
		}
		parsesBack(t, fs[0].Value, authservToken(authservID), want)
		if !ClaimsAuthservID(fs[0].Value, authservID) {
			t.Errorf("own field %q does not claim %q", fs[0].Value, authservID)
		}
	})
}

// FuzzClaimsAuthservID checks that no value panics and that a leading
// comment never changes the answer (RFC 8601 §2.2: [CFWS] authserv-id), nor
// does the case of an ASCII id.
func FuzzClaimsAuthservID(f *testing.F) {
	f.Add("mx.example.org; spf=pass", "mx.example.org")
	f.Add("(c) MX.example.org 1; none", "mx.example.org")
	f.Add(`"mx.example.org"; none`, "mx.example.org")
	f.Add("((((", "x")
	f.Add("\"\\", "x")
	f.Add("mx.xn--bcher-kva.example; none", "mx.bücher.example")
	f.Fuzz(func(t *testing.T, value, id string) {
		got := ClaimsAuthservID(value, id)
		if got2 := ClaimsAuthservID("(c)\r\n "+value, id); got2 != got {
			t.Errorf("leading comment changed %q/%q from %v to %v", value, id, got, got2)
		}
		ascii := true
		for i := 0; i < len(id); i++ {
			if id[i] >= 0x80 {
				ascii = false
			}
		}
		if ascii && ClaimsAuthservID(value, strings.ToUpper(id)) != got {
			t.Errorf("case of %q changed the answer for %q", id, value)
		}
		if got && strings.TrimSpace(id) == "" {
			t.Errorf("empty id claimed by %q", value)
		}
	})
}
