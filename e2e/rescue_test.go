package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// dkimSelector is the selector of failDomain's key in testWorld.
const dkimSelector = "e2e"

var dkimKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// dkimRecord is the TXT record of failDomain's key.
func dkimRecord() string {
	der, err := x509.MarshalPKIXPublicKey(&dkimKey().PublicKey)
	if err != nil {
		panic(err)
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// signed returns m's message signed by failDomain (relaxed/relaxed, as
// most signers do), as a forwarder would pass it on.
func signed(t *testing.T, m message) string {
	t.Helper()
	var out bytes.Buffer
	err := msgdkim.Sign(&out, strings.NewReader(m.data()), &msgdkim.SignOptions{
		Domain: failDomain, Selector: dkimSelector, Signer: dkimKey(),
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             []string{"From", "To", "Subject", "Message-ID", "X-Test-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// runRescue sends through the milter with --reject fail --dkim-rescue
// mailfrom: mail of failDomain from 127.0.0.1 (SPF fail, as forwarded
// mail) with a valid signature of failDomain is delivered with the rescue
// recorded; the same message with its body altered is refused at end of
// DATA with 550 5.7.23; a passing message is unaffected.
func runRescue(t *testing.T, r *mtaRun) {
	t.Run("dkim rescue", func(t *testing.T) {
		good := message{ID: uniqueID(r.Name, "rescued", 0), From: "bob@" + failDomain}
		good.Raw = signed(t, good)
		bad := message{ID: uniqueID(r.Name, "not-rescued", 0), From: "bob@" + failDomain}
		bad.Raw = strings.Replace(signed(t, bad), "Test message", "Altered message", 1)
		pass := message{ID: uniqueID(r.Name, "rescue-pass", 0), From: "alice@" + passDomain}

		c := dialSMTP(t, r.Rescue4, clientHELO)
		if err := c.send(t, good); err != nil {
			t.Fatalf("signed message refused: %d %s", err.Code, err.Msg)
		}
		err := c.send(t, bad)
		switch {
		case err == nil:
			t.Errorf("altered message accepted")
		case err.Code != 550 || !strings.HasPrefix(err.Msg, "end of DATA: 5.7.23 "):
			t.Errorf("altered message: %d %s, want 550 5.7.23 at end of DATA", err.Code, err.Msg)
		}
		if err != nil {
			c.reset(t)
		}
		if err := c.send(t, pass); err != nil {
			t.Fatalf("passing message refused: %d %s", err.Code, err.Msg)
		}
		c.quit()

		got := r.Sink.wait(t, good.ID, 60*time.Second)
		if testing.Verbose() {
			t.Logf("delivered %s:\n%s", good.ID, headerDump(got.Header))
		}
		checkRescued(t, got.Header)
		checkHeaders(t, r, r.Sink.wait(t, pass.ID, 60*time.Second).Header, clientHELO,
			spfWant{Result: "pass", ClientIP: "127.0.0.1", From: pass.From, Mailbox: pass.From, Mechanism: "ip4:127.0.0.1"})
		if n := r.Sink.count(t, bad.ID); n != 0 {
			t.Errorf("altered message delivered %d times", n)
		}
		out := r.Rescue.out.String()
		for _, want := range []string{"dkim_rescue=rescued dkim_domain=" + failDomain, "dkim_rescue=not_rescued"} {
			if !strings.Contains(out, want) {
				t.Errorf("milter log lacks %q:\n%s", want, out)
			}
		}
	})
}

// checkRescued: Received-SPF keeps fail and names the rescuing domain; our
// Authentication-Results has spf=fail and dkim=pass for failDomain with
// header.s and header.b.
func checkRescued(t *testing.T, h []headerField) {
	t.Helper()
	var rs, ar string
	for _, f := range h {
		switch {
		case strings.EqualFold(f.Name, "Received-SPF") && rs == "":
			rs = f.Value
		case strings.EqualFold(f.Name, "Authentication-Results") && ar == "":
			if a, err := parseAuthResults(f.Value); err == nil && strings.EqualFold(a.AuthservID, authservID) {
				ar = f.Value
			}
		}
	}
	spfv, err := parseReceivedSPF(rs)
	if err != nil {
		t.Fatalf("Received-SPF %q: %v\n%s", rs, err, headerDump(h))
	}
	if spfv.Result != "fail" || spfv.Params["dkim-rescue"] != failDomain || !strings.Contains(strings.Join(strings.Fields(spfv.Comment), " "), "DKIM signature of "+failDomain) {
		t.Errorf("Received-SPF does not record the rescue: %s", rs)
	}
	a, err := parseAuthResults(ar)
	if err != nil {
		t.Fatalf("Authentication-Results %q: %v", ar, err)
	}
	var got []string
	for _, res := range a.Results {
		got = append(got, fmt.Sprintf("%s=%s d=%s s=%s b=%v", res.Method, res.Result, res.Props["header.d"], res.Props["header.s"], len(res.Props["header.b"]) >= 8))
	}
	want := "dkim=pass d=" + failDomain + " s=" + dkimSelector + " b=true"
	if !strings.Contains(strings.Join(got, "; "), want) || a.Results[0].Method != "spf" || a.Results[0].Result != "fail" {
		t.Errorf("Authentication-Results %s: results %q, want spf=fail and %q", ar, got, want)
	}
}
