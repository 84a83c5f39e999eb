package milter

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf"
)

// stallResolver never answers: every lookup records the deadline its
// context carries and waits for the context to end.
type stallResolver struct {
	mu        sync.Mutex
	deadlines []time.Time
}

func (r *stallResolver) stall(ctx context.Context) error {
	d, ok := ctx.Deadline()
	if !ok {
		panic("a lookup without a deadline")
	}
	r.mu.Lock()
	r.deadlines = append(r.deadlines, d)
	r.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func (r *stallResolver) LookupTXT(ctx context.Context, _ string) ([]string, error) {
	return nil, r.stall(ctx)
}

func (r *stallResolver) LookupA(ctx context.Context, _ string) ([]netip.Addr, error) {
	return nil, r.stall(ctx)
}

func (r *stallResolver) LookupAAAA(ctx context.Context, _ string) ([]netip.Addr, error) {
	return nil, r.stall(ctx)
}

func (r *stallResolver) LookupMX(ctx context.Context, _ string) ([]string, error) {
	return nil, r.stall(ctx)
}

func (r *stallResolver) LookupPTR(ctx context.Context, _ netip.Addr) ([]string, error) {
	return nil, r.stall(ctx)
}

// The HELO and MAIL FROM checks of one MAIL command share one deadline:
// with DNS that never answers, both give temperror and the MAIL FROM
// lookups run under the very deadline the HELO lookup had, not under a
// fresh one (which would let the MTA wait twice check_timeout).
func TestOneDeadlinePerMailCommand(t *testing.T) {
	r := &stallResolver{}
	cfg := &Config{
		Checker: &spf.Checker{Resolver: r, Timeout: 50 * time.Millisecond},
		Policy:  Policy{MailFrom: map[spf.Result]Action{spf.Temperror: ActionTempfail}},
	}
	d := cfg.Evaluate(context.Background(), Facts{
		IP: netip.MustParseAddr(clientA), HELO: "helo.slow.test", Sender: "bob@slow.test",
	})
	if d.HELO == nil || d.HELO.Result != spf.Temperror || d.MailFrom == nil || d.MailFrom.Result != spf.Temperror {
		t.Fatalf("decision %+v", d)
	}
	if d.Action != ActionTempfail || !strings.HasPrefix(d.Reply, "451 4.7.24 ") {
		t.Errorf("action %s, reply %q", d.Action, d.Reply)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.deadlines) == 0 {
		t.Fatal("no lookup")
	}
	// The MAIL FROM check may stop before its first lookup (the budget is
	// spent), so there may be only the HELO's; any later one must agree.
	for _, dl := range r.deadlines[1:] {
		if !dl.Equal(r.deadlines[0]) {
			t.Errorf("lookup deadlines %v: not one budget", r.deadlines)
		}
	}
}

// A deadline already set by the caller is kept when it is shorter.
func TestStageBudgetKeepsShorterDeadline(t *testing.T) {
	r := &stallResolver{}
	cfg := &Config{Checker: &spf.Checker{Resolver: r, Timeout: time.Hour}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	d := cfg.Evaluate(ctx, Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.slow.test", Sender: "bob@slow.test"})
	if d.MailFrom.Result != spf.Temperror {
		t.Fatalf("mailfrom %+v", d.MailFrom)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.deadlines) == 0 || !r.deadlines[0].Equal(want) {
		t.Errorf("lookup deadlines %v, want %v", r.deadlines, want)
	}
}

// A HELO that names no domain is not checked: reported as not_checked in
// the log and to the Observer, left out of Authentication-Results, and no
// reject_helo entry matches it, not even none. A HELO that names a domain
// without SPF is checked and gets none.
func TestHELONotChecked(t *testing.T) {
	rejectNone := func(c *Config) {
		c.Policy.HELO = map[spf.Result]Action{spf.None: ActionReject, spf.Temperror: ActionTempfail}
	}
	for _, helo := range []string{"[127.0.0.2]", "[IPv6:::1]", "localhost", ""} {
		t.Run(helo, func(t *testing.T) {
			h := start(t, Options{Config: testConfig(world(), rejectNone)})
			m := h.connect(gomilter.FamilyInet, clientA)
			if helo != "" {
				m.helo(helo)
			}
			got := m.accepted("alice@pass.test", "QNC")
			if len(got) != 2 || got[0].name != "Authentication-Results" || strings.Contains(got[0].value, "smtp.helo") {
				t.Errorf("fields %s", dump(got))
			}
			_, _, actions, results, _ := h.obs.snapshot()
			if !slices.Equal(results, []string{"helo=not_checked", "mailfrom=pass"}) || !slices.Equal(actions, []string{"accept/"}) {
				t.Errorf("results %v, actions %v", results, actions)
			}
			if logs := h.logs.String(); !strings.Contains(logs, "helo_result=not_checked") || !strings.Contains(logs, "helo_not_checked=") {
				t.Errorf("log:\n%s", logs)
			}
		})
	}
	t.Run("checked none", func(t *testing.T) {
		h := start(t, Options{Config: testConfig(world(), rejectNone)})
		m := h.connect(gomilter.FamilyInet, clientA)
		m.helo("nospf.test")
		act := m.mail("alice@pass.test")
		if act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 || !strings.HasPrefix(act.SMTPText, "5.7.23 SPF none for nospf.test") {
			t.Errorf("got %q %d %q", act.Code, act.SMTPCode, act.SMTPText)
		}
	})
}

// The reply to a HELO-caused reject never carries '?' for '§': the problem
// texts cite RFC sections and the reply spells the sign.
func TestReplySpellsSectionSign(t *testing.T) {
	cfg := testConfig(world(), func(c *Config) {
		c.Policy.MailFrom = map[spf.Result]Action{spf.None: ActionReject}
	})
	d := cfg.Evaluate(context.Background(), Facts{IP: netip.MustParseAddr(clientA), HELO: "localhost", Sender: ""})
	if d.Action != ActionReject || !strings.Contains(d.Reply, "(RFC 7208 section 2.3)") || strings.ContainsAny(d.Reply, "?§") {
		t.Errorf("action %s, reply %q", d.Action, d.Reply)
	}
}

// Fields is what the milter writes, and the authserv-id falls back from
// the setting to the MTA's name to the host name to "localhost".
func TestFieldsAuthservID(t *testing.T) {
	for _, tc := range []struct {
		setting, j, host, want string
	}{
		{"set.example", "j.example", "host.example", "set.example"},
		{"", "j.example", "host.example", "j.example"},
		{"", "", "host.example", "host.example"},
		{"", "", "", "localhost"},
	} {
		cfg := testConfig(world(), func(c *Config) { c.AuthservID, c.HostName = tc.setting, tc.host })
		f := Facts{IP: netip.MustParseAddr(clientA), HELO: "helo.pass.test", Sender: "alice@pass.test", MTAName: tc.j}
		fs := cfg.Fields(f, cfg.Evaluate(context.Background(), f))
		if len(fs) != 2 || !strings.HasPrefix(fs[0].Value, tc.want+";") || !strings.Contains(fs[1].Value, "receiver="+tc.want+";") {
			t.Errorf("%+v: %q", tc, fs)
		}
	}
}
