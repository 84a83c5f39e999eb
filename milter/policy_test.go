package milter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf"
)

func TestDecide(t *testing.T) {
	out := func(id spf.Identity, r spf.Result) *spf.Outcome { return &spf.Outcome{Identity: id, Result: r} }
	strict := Policy{
		MailFrom: map[spf.Result]Action{spf.Fail: ActionReject, spf.Permerror: ActionReject, spf.Temperror: ActionTempfail},
		HELO:     map[spf.Result]Action{spf.Fail: ActionReject, spf.Temperror: ActionTempfail},
	}
	for _, tc := range []struct {
		name     string
		p        Policy
		helo, mf *spf.Outcome
		action   Action
		identity spf.Identity // of the deciding result; "" for accept
	}{
		{"empty policy marks only", Policy{}, out("helo", spf.Fail), out("mailfrom", spf.Fail), ActionAccept, ""},
		{"pass", strict, out("helo", spf.Pass), out("mailfrom", spf.Pass), ActionAccept, ""},
		{"mailfrom fail", strict, out("helo", spf.None), out("mailfrom", spf.Fail), ActionReject, "mailfrom"},
		{"helo fail first", strict, out("helo", spf.Fail), out("mailfrom", spf.Fail), ActionReject, "helo"},
		{"helo not checked", strict, nil, out("mailfrom", spf.Permerror), ActionReject, "mailfrom"},
		{"softfail not listed", strict, out("helo", spf.Pass), out("mailfrom", spf.Softfail), ActionAccept, ""},
		{"temperror defers", strict, out("helo", spf.Pass), out("mailfrom", spf.Temperror), ActionTempfail, "mailfrom"},
		{"a reject beats a tempfail", strict, out("helo", spf.Temperror), out("mailfrom", spf.Fail), ActionReject, "mailfrom"},
		{"helo tempfail, mailfrom pass", strict, out("helo", spf.Temperror), out("mailfrom", spf.Pass), ActionTempfail, "helo"},
		{"unknown action is accept", Policy{MailFrom: map[spf.Result]Action{spf.Fail: "discard"}}, nil,
			out("mailfrom", spf.Fail), ActionAccept, ""},
	} {
		v := decide(tc.p, tc.helo, tc.mf)
		var id spf.Identity
		if v.Outcome != nil {
			id = v.Outcome.Identity
		}
		if v.Action != tc.action || id != tc.identity {
			t.Errorf("%s: got %s by %q, want %s by %q", tc.name, v.Action, id, tc.action, tc.identity)
		}
	}
}

// RFC 7372 §3.2: X.7.23 "SPF validation failed", X.7.24 "SPF validation
// error"; RFC 7208 §8.6/§8.7 give temperror a 4xx and permerror a 5xx.
func TestReplyCode(t *testing.T) {
	for _, tc := range []struct {
		action Action
		result spf.Result
		want   string
	}{
		{ActionReject, spf.Fail, "550 5.7.23"},
		{ActionReject, spf.Softfail, "550 5.7.23"},
		{ActionReject, spf.Neutral, "550 5.7.23"},
		{ActionReject, spf.None, "550 5.7.23"},
		{ActionReject, spf.Permerror, "550 5.7.24"},
		{ActionReject, spf.Temperror, "550 5.7.24"},
		{ActionTempfail, spf.Temperror, "451 4.7.24"},
		{ActionTempfail, spf.Fail, "451 4.7.23"},
	} {
		got := replyCode(verdict{Action: tc.action, Outcome: &spf.Outcome{Result: tc.result}})
		if got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.action, tc.result, got, tc.want)
		}
	}
}

func TestSanitizeReply(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"  line one\r\n550 line two\r\n", "line one 550 line two"},
		{"tab\there\x00nul\x7fdel", "tab here nul del"},
		{"100% sure, %s %d", "100%% sure, %%s %%d"},
		{"caf\u00e9 \xff", "caf? ?"},
		// The problem texts cite RFC sections; the reply spells the sign.
		{"HELO is not a fully qualified domain name (RFC 7208 §2.3)", "HELO is not a fully qualified domain name (RFC 7208 section 2.3)"},
		{"§ 4.6.4 and §§", "section 4.6.4 and section section"},
		{"", ""},
	} {
		if got := sanitizeReply(tc.in); got != tc.want {
			t.Errorf("sanitizeReply(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	long := sanitizeReply(strings.Repeat("a", 150) + strings.Repeat("%", 100))
	if len(long) > maxReplyText || strings.Count(long, "%")%2 != 0 || !strings.HasPrefix(long, strings.Repeat("a", 150)+"%%") {
		t.Errorf("capped text: %d bytes %q", len(long), long)
	}
}

func TestReplyFor(t *testing.T) {
	o := &spf.Outcome{Result: spf.Fail, Identity: spf.IdentityMailFrom, Domain: "fail.test", Sender: "bob@fail.test"}
	ip := netip.MustParseAddr("127.0.0.2")
	v := verdict{Action: ActionReject, Outcome: o}
	for _, tc := range []struct{ tmpl, want string }{
		{"", "550 5.7.23 SPF fail for fail.test: fail.test does not designate 127.0.0.2 as permitted sender"},
		{"{unknown} {result}", "550 5.7.23 {unknown} fail"},
		// A template that sanitises to nothing falls back to the default.
		{"\r\n", "550 5.7.23 SPF fail for fail.test: fail.test does not designate 127.0.0.2 as permitted sender"},
	} {
		if got := replyFor(v, tc.tmpl, ip, "h"); got != tc.want {
			t.Errorf("template %q: %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	o.Explanation = "go away"
	if got := replyFor(v, "", ip, "h"); got != "550 5.7.23 SPF fail for fail.test: go away" {
		t.Errorf("with explanation: %q", got)
	}
	perm := verdict{Action: ActionReject, Outcome: &spf.Outcome{Result: spf.Permerror, Domain: "perm.test", Problem: "unknown mechanism bogus:x"}}
	if got := replyFor(perm, "", netip.Addr{}, ""); got != "550 5.7.24 SPF permerror for perm.test: unknown mechanism bogus:x" {
		t.Errorf("permerror: %q", got)
	}
}

func TestClientAddr(t *testing.T) {
	for _, tc := range []struct {
		packet string
		macros map[string]string
		want   string
	}{
		{"127.0.0.2", nil, "127.0.0.2"},
		{"::ffff:127.0.0.2", nil, "127.0.0.2"},
		{"", map[string]string{"{client_addr}": "IPv6:0:0:0:0:0:0:0:1"}, "::1"},
		{"", map[string]string{"{client_addr}": "ipv6:::1"}, "::1"},
		{"", map[string]string{"{client_addr}": "127.0.0.3"}, "127.0.0.3"},
		{"", map[string]string{"_": "localhost [IPv6:::1]"}, "::1"},
		{"", map[string]string{"_": "client.example [127.0.0.4] (may be forged)"}, "127.0.0.4"},
		{"", map[string]string{"_": "alice@localhost"}, ""},
		{"", map[string]string{"{client_addr}": "", "_": "[garbage]"}, ""},
		{"", nil, ""},
	} {
		var packet []byte
		if tc.packet != "" {
			packet = netip.MustParseAddr(tc.packet).AsSlice()
		}
		got := addrString(clientAddr(packet, tc.macros))
		if got != tc.want {
			t.Errorf("clientAddr(%q, %v) = %q, want %q", tc.packet, tc.macros, got, tc.want)
		}
	}
}

func TestEnvelopeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"alice@pass.test":                "alice@pass.test",
		"<alice@pass.test>":              "alice@pass.test",
		"":                               "",
		"@relay.test,@b.test:bob@c.test": "bob@c.test",
	} {
		if got := EnvelopeAddress(in); got != want {
			t.Errorf("EnvelopeAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
