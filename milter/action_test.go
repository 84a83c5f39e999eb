package milter

import (
	"slices"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf"
)

// A permerror is looked up by its cause before its result, so a site can
// reject broken records but only mark limit breaches.
func TestDecidePermerrorCause(t *testing.T) {
	p := Policy{
		MailFrom:          map[spf.Result]Action{spf.Permerror: ActionReject, spf.Fail: ActionQuarantine},
		MailFromPermerror: map[spf.Cause]Action{spf.CauseLookupLimit: ActionAccept, spf.CauseLoop: ActionTempfail},
		HELO:              map[spf.Result]Action{spf.Softfail: ActionQuarantine},
		HELOPermerror:     map[spf.Cause]Action{spf.CauseSyntax: ActionQuarantine},
	}
	perm := func(id spf.Identity, c spf.Cause) *spf.Outcome {
		return &spf.Outcome{Identity: id, Result: spf.Permerror, Cause: c}
	}
	out := func(id spf.Identity, r spf.Result) *spf.Outcome { return &spf.Outcome{Identity: id, Result: r} }
	for _, tc := range []struct {
		name     string
		helo, mf *spf.Outcome
		action   Action
		identity spf.Identity
	}{
		{"syntax falls back to the result", nil, perm("mailfrom", spf.CauseSyntax), ActionReject, "mailfrom"},
		{"limit only marked", nil, perm("mailfrom", spf.CauseLookupLimit), ActionAccept, ""},
		{"loop deferred", nil, perm("mailfrom", spf.CauseLoop), ActionTempfail, "mailfrom"},
		{"no cause: the result's entry", nil, perm("mailfrom", ""), ActionReject, "mailfrom"},
		{"fail quarantined", out("helo", spf.Pass), out("mailfrom", spf.Fail), ActionQuarantine, "mailfrom"},
		{"helo cause without a helo permerror entry", perm("helo", spf.CauseSyntax), out("mailfrom", spf.Pass), ActionQuarantine, "helo"},
		{"a reject beats a quarantine", out("helo", spf.Softfail), perm("mailfrom", spf.CauseNoRecord), ActionReject, "mailfrom"},
		{"a tempfail beats a quarantine", out("helo", spf.Softfail), perm("mailfrom", spf.CauseLoop), ActionTempfail, "mailfrom"},
		{"quarantine beats a mark", out("helo", spf.Softfail), perm("mailfrom", spf.CauseLookupLimit), ActionQuarantine, "helo"},
	} {
		v := decide(p, tc.helo, tc.mf)
		var id spf.Identity
		if v.Outcome != nil {
			id = v.Outcome.Identity
		}
		if v.Action != tc.action || id != tc.identity {
			t.Errorf("%s: got %s by %q, want %s by %q", tc.name, v.Action, id, tc.action, tc.identity)
		}
	}
	if !p.Uses(ActionQuarantine) || !p.Uses(ActionTempfail) || (Policy{}).Uses(ActionQuarantine) {
		t.Error("Uses")
	}
}

func quarantineFail(c *Config) {
	c.Policy.MailFrom = map[spf.Result]Action{spf.Fail: ActionQuarantine}
}

// A quarantine asks the MTA for SMFIF_QUARANTINE at negotiation and holds
// the message at end of message, with its headers.
func TestQuarantine(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), quarantineFail)})
	h.actions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine
	m := h.connect(gomilter.FamilyInet, clientA)
	if !m.cs.ActionOption(gomilter.OptQuarantine) {
		t.Fatalf("SMFIF_QUARANTINE not negotiated: %#x", m.cs.ActionOpts)
	}
	m.helo("helo.pass.test")
	m.continued("mail", m.mail("bob@fail.test"), nil)
	mods, end := m.data("QIDQ")
	m.continued("eom", end, nil)
	var reasons []string
	for _, mod := range mods {
		if mod.Code == gomilter.ActQuarantine {
			reasons = append(reasons, mod.Reason)
		}
	}
	if !slices.Equal(reasons, []string{"SPF fail for mailfrom fail.test"}) {
		t.Errorf("quarantine reasons %q", reasons)
	}
	got := applyMods(nil, mods)
	if len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=fail smtp.mailfrom=bob@fail.test") {
		t.Errorf("fields %s", dump(got))
	}
	// A passing message on the same connection is not held.
	m.continued("mail", m.mail("alice@pass.test"), nil)
	mods, _ = m.data("QIDP")
	for _, mod := range mods {
		if mod.Code == gomilter.ActQuarantine {
			t.Errorf("pass held: %q", mod.Reason)
		}
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"quarantine/", "accept/"}) {
		t.Errorf("actions %v", actions)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "action=quarantine") || !strings.Contains(logs, `quarantine="SPF fail for mailfrom fail.test"`) {
		t.Errorf("log:\n%s", logs)
	}
}

// Without quarantine in the policy the MTA is not asked for it; when the MTA
// does not offer it, a message the policy would hold is marked only.
func TestQuarantineNegotiation(t *testing.T) {
	all := gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine
	h := start(t, Options{Config: testConfig(world(), rejectFail)})
	h.actions = all
	if m := h.connect(gomilter.FamilyInet, clientA); m.cs.ActionOpts != actions {
		t.Errorf("default policy negotiated actions %#x, want %#x", m.cs.ActionOpts, actions)
	}

	h = start(t, Options{Config: testConfig(world(), quarantineFail)})
	m := h.connect(gomilter.FamilyInet, clientA)
	if m.cs.ActionOption(gomilter.OptQuarantine) {
		t.Fatalf("SMFIF_QUARANTINE negotiated though not offered")
	}
	m.helo("helo.pass.test")
	m.continued("mail", m.mail("bob@fail.test"), nil)
	mods, end := m.data("QIDN")
	m.continued("eom", end, nil)
	if got := applyMods(nil, mods); len(got) != 2 {
		t.Errorf("fields %s", dump(got))
	}
	for _, mod := range mods {
		if mod.Code == gomilter.ActQuarantine {
			t.Errorf("quarantine sent without negotiation")
		}
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"accept/"}) {
		t.Errorf("actions %v", actions)
	}
	if !strings.Contains(h.logs.String(), "quarantine_unavailable") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

func TestQuarantineDryRun(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), quarantineFail, func(c *Config) { c.DryRun = true })})
	h.actions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	m.continued("mail", m.mail("bob@fail.test"), nil)
	mods, _ := m.data("QIDD")
	for _, mod := range mods {
		if mod.Code == gomilter.ActQuarantine {
			t.Errorf("dry run held the message")
		}
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"quarantine/dry_run"}) {
		t.Errorf("actions %v", actions)
	}
}

// A permerror's cause reaches the Observer, the log and both header fields.
func TestPermerrorCauseReported(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("carol@perm.test", "QIDE")
	if len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=permerror reason=syntax smtp.mailfrom=carol@perm.test") ||
		!strings.Contains(unfold(got[1].value), `problem="syntax: `) {
		t.Errorf("fields %s", dump(got))
	}
	h.obs.mu.Lock()
	causes := slices.Clone(h.obs.causes)
	h.obs.mu.Unlock()
	if !slices.Equal(causes, []string{"mailfrom=syntax"}) {
		t.Errorf("causes %v", causes)
	}
	if !strings.Contains(h.logs.String(), "mailfrom_cause=syntax") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}
