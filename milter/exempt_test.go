package milter

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf"
)

// Forwarders and allowed HELO names are proven by SPF, never by a name.
func TestExemptions(t *testing.T) {
	r := world()
	r.TXT["fwd.test"] = []string{"v=spf1 ip4:127.0.0.2 -all"}        // the forwarder's own hosts: clientA
	r.TXT["otherfwd.test"] = []string{"v=spf1 ip4:192.0.2.1 -all"}   // a forwarder, but not this client
	r.TXT["helo.other.test"] = []string{"v=spf1 ip4:192.0.2.1 -all"} // a HELO name that fails for clientA
	strict := func(c *Config) {
		c.Policy = Policy{
			MailFrom: map[spf.Result]Action{spf.Fail: ActionReject, spf.Softfail: ActionQuarantine},
			HELO:     map[spf.Result]Action{spf.Fail: ActionReject},
		}
	}
	ip := netip.MustParseAddr(clientA)
	for _, tc := range []struct {
		name         string
		fwd, allow   []string
		helo, sender string
		action       Action
		exempt, by   string
	}{
		{"no exemption", nil, nil, "helo.pass.test", "bob@fail.test", ActionReject, "", ""},
		{"forwarder passes", []string{"otherfwd.test", "fwd.test"}, nil, "helo.pass.test", "bob@fail.test", ActionAccept, ExemptForwarder, "fwd.test"},
		{"forwarder quarantine spared", []string{"fwd.test"}, nil, "helo.pass.test", "x@softfail.test", ActionAccept, ExemptForwarder, "fwd.test"},
		{"forwarder that does not pass", []string{"otherfwd.test"}, nil, "helo.pass.test", "bob@fail.test", ActionReject, "", ""},
		// The sender's own domain listed as a forwarder: its record
		// still fails the client, so the name alone exempts nothing.
		{"string match never exempts", []string{"fail.test"}, nil, "helo.pass.test", "bob@fail.test", ActionReject, "", ""},
		{"allowed HELO passes", nil, []string{"helo.pass.test"}, "helo.pass.test", "bob@fail.test", ActionAccept, ExemptAllowHELO, "helo.pass.test"},
		{"allowed HELO that fails", nil, []string{"helo.other.test"}, "helo.other.test", "alice@pass.test", ActionReject, "", ""},
		{"HELO not on the list", nil, []string{"mx.elsewhere.test"}, "helo.pass.test", "bob@fail.test", ActionReject, "", ""},
		{"allowed HELO not checked", nil, []string{"localhost"}, "localhost", "bob@fail.test", ActionReject, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(r, strict, func(c *Config) { c.ForwarderDomains, c.AllowHELO = tc.fwd, tc.allow })
			d := cfg.Evaluate(context.Background(), Facts{IP: ip, HELO: tc.helo, Sender: tc.sender})
			if d.Action != tc.action || d.Exempt != tc.exempt || d.ExemptBy != tc.by {
				t.Errorf("got %s (exempt %q by %q), want %s (%q by %q)", d.Action, d.Exempt, d.ExemptBy, tc.action, tc.exempt, tc.by)
			}
			if tc.exempt != "" && (d.Reply != "" || d.Quarantine != "") {
				t.Errorf("exempt with reply %q, quarantine %q", d.Reply, d.Quarantine)
			}
		})
	}
}

// A pass needs no exemption: the forwarders are not looked up at all.
func TestForwarderCheckedOnlyWhenNeeded(t *testing.T) {
	r := world()
	r.TXT["fwd.test"] = []string{"v=spf1 ip4:127.0.0.2 -all"}
	cfg := testConfig(r, rejectFail, func(c *Config) { c.ForwarderDomains = []string{"fwd.test"} })
	d := cfg.Evaluate(context.Background(), Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "alice@pass.test"})
	if d.Action != ActionAccept || d.Exempt != "" || slices.Contains(r.Queries(), "TXT fwd.test") {
		t.Errorf("got %s exempt %q, queries %v", d.Action, d.Exempt, r.Queries())
	}
	d = cfg.Evaluate(context.Background(), Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "bob@fail.test"})
	if d.Exempt != ExemptForwarder || !slices.Contains(r.Queries(), "TXT fwd.test") {
		t.Errorf("failing sender: exempt %q, queries %v", d.Exempt, r.Queries())
	}
}

func TestExemptReported(t *testing.T) {
	r := world()
	r.TXT["fwd.test"] = []string{"v=spf1 ip4:127.0.0.2 -all"}
	h := start(t, Options{Config: testConfig(r, rejectFail, func(c *Config) { c.ForwarderDomains = []string{"fwd.test"} })})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	if got := m.accepted("bob@fail.test", "QIDF"); len(got) != 2 {
		t.Errorf("fields %s", dump(got))
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"accept/forwarder"}) {
		t.Errorf("actions %v", actions)
	}
}
