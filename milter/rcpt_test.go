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
		// noMail: MAIL FROM cannot be refused, so it needs no answer
		// (SMFIP_NR_MAIL) when the MTA offers that.
		noMail bool
	}{
		{"default", []func(*Config){spare("postmaster@")}, false, true},
		{"reject without the setting", []func(*Config){rejectFail}, false, false},
		{"reject with the setting", []func(*Config){rejectFail, spare("postmaster@")}, true, true},
		{"defer with the setting", []func(*Config){spare("postmaster@"), func(c *Config) {
			c.Policy.MailFrom = map[spf.Result]Action{spf.Temperror: ActionTempfail}
		}}, true, true},
		{"defer without the setting", []func(*Config){func(c *Config) {
			c.Policy.MailFrom = map[spf.Result]Action{spf.Temperror: ActionTempfail}
		}}, false, false},
		{"quarantine only", []func(*Config){quarantineFail, spare("postmaster@")}, false, true},
		{"dry run", []func(*Config){rejectFail, spare("postmaster@"), func(c *Config) { c.DryRun = true }}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{Config: testConfig(world(), tc.mod...)})
			for _, offered := range []gomilter.OptProtocol{0x1fffff, 0x1fffff &^ gomilter.OptNoMailReply} {
				c := rawDial(t, h.addr)
				proto := negotiate(t, c, offered)
				want := protocol
				if tc.rcpt {
					want &^= gomilter.OptNoRcptTo
				}
				if tc.noMail && offered&gomilter.OptNoMailReply != 0 {
					want |= gomilter.OptNoMailReply
				}
				if proto != want {
					t.Errorf("offered %#x: negotiated %#x, want %#x", uint32(offered), uint32(proto), uint32(want))
				}
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

// With SMFIP_NR_MAIL in force MAIL FROM gets no answer; the verdict comes
// at the end of the message. A reload that makes MAIL FROM refuse on such a
// connection moves the refusal to RCPT TO when that stage was negotiated,
// else to the end of the message: the MTA never receives an answer it does
// not read.
func TestNoReplyToMail(t *testing.T) {
	hdr := func() []byte {
		return append(pkt('L', cstr("Subject"), cstr("hi")), pkt('E')...)
	}
	for _, tc := range []struct {
		name   string
		before []func(*Config) // the configuration at negotiation
		after  []func(*Config) // the configuration at MAIL FROM; nil: the same
		rcpt   bool            // RCPT TO negotiated (and sent)
		// want are the answers after MAIL FROM (to RCPT TO when sent, and to
		// the end of message), in order; the first must not be MAIL's.
		want []byte
	}{
		{"headers only", nil, nil, false, []byte{'i', 'i', 'c'}},
		{"refused at RCPT TO", []func(*Config){rejectFail, spare("postmaster@")}, nil, true, []byte{'y'}},
		{"reload: refusal at MAIL FROM moves to the end", nil, []func(*Config){rejectFail}, false, []byte{'y'}},
		{"reload: refusal at MAIL FROM moves to RCPT TO", []func(*Config){rejectFail, spare("postmaster@")}, []func(*Config){rejectFail}, true, []byte{'y'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{Config: testConfig(world(), tc.before...)})
			c := rawDial(t, h.addr)
			proto := negotiate(t, c, 0x1fffff)
			if proto&gomilter.OptNoMailReply == 0 {
				t.Fatalf("SMFIP_NR_MAIL not negotiated: %#x", uint32(proto))
			}
			if got := proto&gomilter.OptNoRcptTo == 0; got != tc.rcpt {
				t.Fatalf("RCPT TO stage negotiated %v, want %v", got, tc.rcpt)
			}
			if tc.after != nil {
				h.srv.SetConfig(testConfig(world(), tc.after...))
			}
			var b []byte
			b = append(b, connectPkt(clientA)...)
			b = append(b, pkt('H', cstr("helo.pass.test"))...)
			b = append(b, pkt('M', cstr("<bob@fail.test>"))...)
			if tc.rcpt {
				b = append(b, pkt('R', cstr("<user@dest.example>"))...)
			} else {
				b = append(b, hdr()...)
			}
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				code, data, err := rawAnswer(c)
				if err != nil || code != want {
					t.Fatalf("answer %d: %q %q %v, want %q", i, code, data, err, want)
				}
				if code == 'y' && !strings.HasPrefix(string(data), "550 5.7.23 ") {
					t.Fatalf("answer %d: %q, want 550 5.7.23", i, data)
				}
				if code == 'y' && tc.rcpt {
					// Refused at RCPT TO: the MTA ends the transaction.
					if _, err := c.Write(pkt('A')); err != nil {
						t.Fatal(err)
					}
					// The session carries on: a passing sender, answered
					// at RCPT TO with continue.
					b := pkt('M', cstr("<alice@pass.test>"))
					b = append(b, pkt('R', cstr("<user@dest.example>"))...)
					if _, err := c.Write(b); err != nil {
						t.Fatal(err)
					}
					want = 'c'
					if code, data, err = rawAnswer(c); err != nil || code != want {
						t.Fatalf("next message's RCPT TO: %q %q %v, want %q", code, data, err, want)
					}
				}
			}
			stage := "stage=eom"
			switch {
			case tc.want[0] == 'i':
				return
			case tc.rcpt:
				stage = "stage=rcpt"
			}
			// The refusal is reported where it was answered (an answer at
			// MAIL FROM is reported without a stage).
			if logs := h.logs.String(); !strings.Contains(logs, stage) {
				t.Errorf("log lacks %s:\n%s", stage, logs)
			}
		})
	}
}
