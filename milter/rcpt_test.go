package milter

import (
	"slices"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf"
)

func spare(list ...string) func(*Config) {
	return func(c *Config) { c.NeverRejectRecipients = list }
}

func TestNeverReject(t *testing.T) {
	c := &Config{NeverRejectRecipients: []string{"postmaster@", "abuse@example.org", "@optout.example"}}
	for rcpt, want := range map[string]bool{
		"postmaster@anything.example": true,
		"PostMaster@Anything.Example": true,
		"Postmaster":                  true, // RFC 5321 §4.1.1.3
		"abuse@example.org":           true,
		"abuse@example.net":           false,
		"x@optout.example":            true,
		"x@sub.optout.example":        false,
		"user@example.org":            false,
		"postmaster.x@example.org":    false,
		"":                            false,
	} {
		if got := c.NeverReject(rcpt); got != want {
			t.Errorf("NeverReject(%q) = %v, want %v", rcpt, got, want)
		}
	}
}

// The RCPT TO stage is asked for only when a refusal can move there; the
// default configuration (no reject, no defer) negotiates what it always
// did.
func TestRcptStageNegotiated(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  []func(*Config)
		rcpt bool
	}{
		{"default", []func(*Config){spare("postmaster@")}, false},
		{"reject without the setting", []func(*Config){rejectFail}, false},
		{"reject with the setting", []func(*Config){rejectFail, spare("postmaster@")}, true},
		{"defer with the setting", []func(*Config){spare("postmaster@"), func(c *Config) {
			c.Policy.MailFrom = map[spf.Result]Action{spf.Temperror: ActionTempfail}
		}}, true},
		{"quarantine only", []func(*Config){quarantineFail, spare("postmaster@")}, false},
		{"dry run", []func(*Config){rejectFail, spare("postmaster@"), func(c *Config) { c.DryRun = true }}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{Config: testConfig(world(), tc.mod...)})
			c := rawDial(t, h.addr)
			proto := negotiate(t, c, 0x1fffff)
			want := protocol
			if tc.rcpt {
				want &^= gomilter.OptNoRcptTo
			}
			if proto != want {
				t.Errorf("negotiated %#x, want %#x", proto, want)
			}
		})
	}
}

// With never_reject_recipients in effect, a refused sender is refused per
// recipient at RCPT TO; the spared recipients get the message, marked.
func TestRefusalAtRcpt(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), rejectFail, spare("postmaster@", "@optout.example"))})
	m := h.connect(gomilter.FamilyInet, clientA)
	if m.cs.ProtocolOption(gomilter.OptNoRcptTo) {
		t.Fatal("RCPT TO stage not negotiated")
	}
	m.helo("helo.pass.test")
	m.continued("mail", m.mail("bob@fail.test"), nil)
	for rcpt, refused := range map[string]bool{"user@dest.example": true, "postmaster@dest.example": false, "x@optout.example": false, "other@dest.example": true} {
		act, err := m.cs.Rcpt(rcpt, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case refused && (act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 || !strings.HasPrefix(act.SMTPText, "5.7.23 ")):
			t.Errorf("%s: got %+v, want 550 5.7.23", rcpt, act)
		case !refused && act.Code != gomilter.ActContinue:
			t.Errorf("%s: got %+v, want continue", rcpt, act)
		}
	}
	mods, end := m.data("QIDR")
	m.continued("eom", end, nil)
	if got := applyMods(nil, mods); len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=fail smtp.mailfrom=bob@fail.test") {
		t.Errorf("fields %s", dump(got))
	}
	// A passing sender on the same connection: every recipient accepted.
	m.continued("mail", m.mail("alice@pass.test"), nil)
	act, err := m.cs.Rcpt("user@dest.example", nil)
	m.continued("rcpt", act, err)
	m.data("QIDS")

	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"reject/", "accept/never_reject_recipient", "accept/"}) {
		t.Errorf("actions %v", actions)
	}
	logs := h.logs.String()
	for _, s := range []string{"stage=rcpt", "recipients_spared=2 recipients_refused=2"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
}

// All recipients refused: the MTA aborts, nothing is marked or counted
// twice; a message whose config came without the RCPT stage (reloaded
// since the connection opened) is refused at MAIL FROM as before.
func TestRefusalAtRcptAllRefusedAndReload(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), rejectFail, spare("postmaster@"))})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	m.continued("mail", m.mail("bob@fail.test"), nil)
	if act, err := m.cs.Rcpt("user@dest.example", nil); err != nil || act.Code != gomilter.ActReplyCode {
		t.Fatalf("rcpt: %+v %v", act, err)
	}
	m.abort()
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"reject/"}) {
		t.Errorf("actions %v", actions)
	}

	h = start(t, Options{Config: testConfig(world(), rejectFail)})
	m = h.connect(gomilter.FamilyInet, clientA)
	h.srv.SetConfig(testConfig(world(), rejectFail, spare("postmaster@")))
	m.helo("helo.pass.test")
	if act := m.mail("bob@fail.test"); act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 {
		t.Errorf("mail: %+v, want 550 at MAIL FROM", act)
	}
}
