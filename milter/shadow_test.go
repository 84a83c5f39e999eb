package milter

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf"
)

func shadow(mod ...func(*Config)) func(*Config) {
	return func(c *Config) {
		sh := &Config{}
		for _, f := range mod {
			f(sh)
		}
		c.Shadow = sh
	}
}

// The shadow policy sees the same outcomes, never acts, and every
// difference is logged with both verdicts and counted.
func TestShadowPolicy(t *testing.T) {
	r := world()
	r.TXT["helo2.pass.test"] = r.TXT["helo.pass.test"]
	softfail := func(c *Config) {
		c.Policy.MailFrom = map[spf.Result]Action{spf.Fail: ActionReject, spf.Softfail: ActionQuarantine}
	}
	h := start(t, Options{Config: testConfig(r, rejectFail, shadow(softfail, func(c *Config) { c.AllowHELO = []string{"helo.pass.test"} }))})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	// Live rejects, the shadow spares the allowed HELO: live acts.
	if act := m.mail("bob@fail.test"); act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 {
		t.Errorf("fail: %+v, want the live reject", act)
	}
	m.abort()
	m = h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo2.pass.test")
	// Live marks, the shadow would hold: the message passes, marked, not held.
	m.continued("mail", m.mail("x@softfail.test"), nil)
	mods, _ := m.data("QIDS1")
	for _, mod := range mods {
		if mod.Code == gomilter.ActQuarantine {
			t.Error("the shadow policy acted")
		}
	}
	// Both accept: no difference.
	m.accepted("alice@pass.test", "QIDS2")

	h.obs.mu.Lock()
	diffs := slices.Clone(h.obs.shadow)
	h.obs.mu.Unlock()
	if !slices.Equal(diffs, []string{"reject->accept", "accept->quarantine"}) {
		t.Errorf("differences %v", diffs)
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"reject/", "accept/", "accept/"}) {
		t.Errorf("actions %v", actions)
	}
	logs := h.logs.String()
	for _, s := range []string{
		`msg="shadow policy differs"`, "sender=bob@fail.test", "live_action=reject", "live_reply=\"550 5.7.23 ", "shadow_action=accept shadow_reason=allow_helo",
		"sender=x@softfail.test", "live_action=accept", "shadow_action=quarantine",
	} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
	if n := strings.Count(logs, "shadow policy differs"); n != 2 {
		t.Errorf("%d differences logged, want 2", n)
	}
}

// Evaluate (and so the check command) reports both verdicts.
func TestShadowEvaluate(t *testing.T) {
	cfg := testConfig(world(), shadow(rejectFail))
	d := cfg.Evaluate(context.Background(), Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "bob@fail.test"})
	if d.Action != ActionAccept || d.Shadow == nil || d.Shadow.Action != ActionReject || !strings.HasPrefix(d.Shadow.Reply, "550 5.7.23 ") || !d.ShadowDiffers() {
		t.Errorf("live %s, shadow %+v", d.Action, d.Shadow)
	}
	if d := testConfig(world()).Evaluate(context.Background(), Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "bob@fail.test"}); d.Shadow != nil || d.ShadowDiffers() {
		t.Errorf("shadow without a shadow policy: %+v", d.Shadow)
	}
}
