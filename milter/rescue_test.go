package milter

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net/netip"
	"strings"
	"sync"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

var (
	rescueKeyOnce sync.Once
	rescueKey     *rsa.PrivateKey
)

// signingKey is one RSA key for all tests (generating one is slow).
func signingKey(t testing.TB) *rsa.PrivateKey {
	rescueKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rescueKey = k
	})
	return rescueKey
}

// rescueWorld is the harness's world with sel._domainkey.<d> published
// for each d.
func rescueWorld(t testing.TB, domains ...string) *spftest.Resolver {
	w := world()
	der, err := x509.MarshalPKIXPublicKey(&signingKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range domains {
		w.TXT["sel._domainkey."+d] = []string{"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}
	}
	return w
}

// signedMessage is a message from author, signed by d.
func signedMessage(t testing.TB, author, d string) []byte {
	t.Helper()
	msg := "From: " + author + "\r\nTo: bob@example.com\r\nSubject: hello\r\n\r\nHello Bob.\r\n"
	var out bytes.Buffer
	err := msgdkim.Sign(&out, strings.NewReader(msg), &msgdkim.SignOptions{
		Domain: d, Selector: "sel", Signer: signingKey(t),
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func rescueConfig(r spf.Resolver, mode Rescue, mod ...func(*Config)) *Config {
	return testConfig(r, append([]func(*Config){rejectFail, func(c *Config) {
		c.DKIMRescue = mode
		c.DKIM = &dkim.Verifier{Resolver: r}
	}}, mod...)...)
}

func TestRescue(t *testing.T) {
	w := rescueWorld(t, "fail.test", "author.test", "forwarder.test")
	w.Fail["TXT sel._domainkey.slow.test"] = spftest.ErrTimeout
	w.TXT["sel._domainkey.slow.test"] = w.TXT["sel._domainkey.fail.test"]
	facts := Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "alice@fail.test"}
	for _, tc := range []struct {
		name    string
		mode    Rescue
		msg     []byte
		action  Action
		outcome string
	}{
		{"aligned with MAIL FROM", RescueMailFrom, signedMessage(t, "alice@fail.test", "fail.test"), ActionAccept, RescueRescued},
		{"signed by the forwarder", RescueMailFrom, signedMessage(t, "alice@fail.test", "forwarder.test"), ActionReject, RescueNotRescued},
		{"aligned with From only, mailfrom mode", RescueMailFrom, signedMessage(t, "alice@author.test", "author.test"), ActionReject, RescueNotRescued},
		{"aligned with From, from mode", RescueFrom, signedMessage(t, "alice@author.test", "author.test"), ActionAccept, RescueRescued},
		{"body altered", RescueMailFrom, bytes.Replace(signedMessage(t, "alice@fail.test", "fail.test"), []byte("Bob."), []byte("Eve."), 1), ActionReject, RescueNotRescued},
		{"unsigned", RescueFrom, []byte("From: alice@fail.test\r\n\r\nHi\r\n"), ActionReject, RescueNotRescued},
		{"unaligned key timeout", RescueMailFrom, signedMessage(t, "alice@fail.test", "slow.test"), ActionReject, RescueNotRescued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rescueConfig(w, tc.mode)
			d := cfg.Evaluate(context.Background(), facts)
			if !d.Rescuable || d.Action != ActionReject {
				t.Fatalf("at MAIL FROM: %+v", d)
			}
			reply := d.Reply
			d = cfg.Rescue(context.Background(), facts, d, tc.msg)
			if d.Action != tc.action || d.RescueOutcome != tc.outcome || d.DKIM == nil {
				t.Fatalf("got %s/%s, want %s/%s; dkim %+v", d.Action, d.RescueOutcome, tc.action, tc.outcome, d.DKIM)
			}
			if tc.action == ActionReject && d.Reply != reply {
				t.Errorf("reply at end of message %q, at MAIL FROM %q", d.Reply, reply)
			}
			if tc.action == ActionAccept && (d.Reply != "" || d.Rescued == nil) {
				t.Errorf("rescued with reply %q, signature %v", d.Reply, d.Rescued)
			}
		})
	}
}

// A key that cannot be fetched: the defer_temperror rule decides.
func TestRescueTemperror(t *testing.T) {
	w := rescueWorld(t, "fail.test")
	w.Fail["TXT sel._domainkey.fail.test"] = spftest.ErrTimeout
	facts := Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "alice@fail.test"}
	msg := signedMessage(t, "alice@fail.test", "fail.test")
	for _, tc := range []struct {
		deferTemperror bool
		action         Action
		code           string
	}{
		{false, ActionReject, "550 5.7.23 "},
		{true, ActionTempfail, "451 4.7.23 "},
	} {
		cfg := rescueConfig(w, RescueMailFrom)
		if tc.deferTemperror {
			cfg.Policy.MailFrom[spf.Temperror] = ActionTempfail
		}
		d := cfg.Rescue(context.Background(), facts, cfg.Evaluate(context.Background(), facts), msg)
		if d.Action != tc.action || d.RescueOutcome != RescueTemperror || !strings.HasPrefix(d.Reply, tc.code) {
			t.Errorf("defer_temperror %v: got %s/%s %q, want %s %s", tc.deferTemperror, d.Action, d.RescueOutcome, d.Reply, tc.action, tc.code)
		}
	}
}

func TestRescueOversized(t *testing.T) {
	w := rescueWorld(t, "fail.test")
	cfg := rescueConfig(w, RescueMailFrom)
	msg := signedMessage(t, "alice@fail.test", "fail.test")
	cfg.DKIM.MaxBytes = int64(len(msg) - 1)
	facts := Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "alice@fail.test"}
	m := dkim.NewMessage(cfg.DKIM.Limit())
	m.Raw(msg)
	d := cfg.Rescue(context.Background(), facts, cfg.Evaluate(context.Background(), facts), m.Bytes())
	if d.Action != ActionReject || d.RescueOutcome != RescueOversized {
		t.Errorf("got %s/%s", d.Action, d.RescueOutcome)
	}
}

// Only a MAIL FROM reject waits for the message.
func TestRescuable(t *testing.T) {
	w := rescueWorld(t)
	ip := netip.MustParseAddr(clientA)
	for _, tc := range []struct {
		name string
		cfg  *Config
		f    Facts
		want bool
	}{
		{"mailfrom fail", rescueConfig(w, RescueMailFrom), Facts{IP: ip, HELO: "helo.pass.test", Sender: "a@fail.test"}, true},
		{"off", rescueConfig(w, RescueOff), Facts{IP: ip, HELO: "helo.pass.test", Sender: "a@fail.test"}, false},
		{"unset", rescueConfig(w, ""), Facts{IP: ip, HELO: "helo.pass.test", Sender: "a@fail.test"}, false},
		{"pass", rescueConfig(w, RescueFrom), Facts{IP: ip, HELO: "helo.pass.test", Sender: "a@pass.test"}, false},
		{"softfail not rejected", rescueConfig(w, RescueFrom), Facts{IP: ip, HELO: "helo.pass.test", Sender: "a@softfail.test"}, false},
		{"helo rejected", func() *Config {
			c := rescueConfig(w, RescueFrom)
			c.Policy.HELO = map[spf.Result]Action{spf.Fail: ActionReject}
			return c
		}(), Facts{IP: ip, HELO: "helo.fail.test", Sender: "a@fail.test"}, false},
		{"trusted", func() *Config {
			c := rescueConfig(w, RescueFrom)
			c.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			return c
		}(), Facts{IP: ip, HELO: "helo.pass.test", Sender: "a@fail.test"}, false},
	} {
		if got := tc.cfg.Evaluate(context.Background(), tc.f).Rescuable; got != tc.want {
			t.Errorf("%s: Rescuable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRescueFields(t *testing.T) {
	w := rescueWorld(t, "fail.test")
	cfg := rescueConfig(w, RescueMailFrom)
	facts := Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "alice@fail.test"}
	d := cfg.Rescue(context.Background(), facts, cfg.Evaluate(context.Background(), facts), signedMessage(t, "alice@fail.test", "fail.test"))
	fs := cfg.Fields(facts, d)
	var ar, rs string
	for _, f := range fs {
		switch f.Name {
		case headers.NameAuthenticationResults:
			ar = unfold(f.Value)
		case headers.NameReceivedSPF:
			rs = unfold(f.Value)
		}
	}
	if !strings.Contains(ar, "spf=fail smtp.mailfrom=alice@fail.test") ||
		!strings.Contains(ar, "dkim=pass header.b=") || !strings.Contains(ar, d.Rescued.B) || !strings.Contains(ar, " header.d=fail.test header.s=sel") {
		t.Errorf("Authentication-Results: %s", ar)
	}
	if !strings.HasPrefix(rs, "fail ") || !strings.Contains(rs, "dkim-rescue=fail.test") {
		t.Errorf("Received-SPF: %s", rs)
	}
}
