package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf/spftest"

	"github.com/spfmilter/spfmilter/internal/config"
)

// testWorld is the DNS the check and serve tests run against.
func testWorld() *spftest.Resolver {
	return &spftest.Resolver{
		TXT: map[string][]string{
			"example.org":      {"v=spf1 ip4:192.0.2.0/24 -all"},
			"mail.example.org": {"v=spf1 a -all"},
			"soft.example.org": {"v=spf1 ~all"},
			"down.example.org": {"v=spf1 -all"},
			"bad.example.org":  {"v=spf1 ip4:192.0.2.0/33 -all"},
		},
		A: map[string][]netip.Addr{
			"mail.example.org":  {netip.MustParseAddr("192.0.2.10")},
			"nospf.example.org": {netip.MustParseAddr("192.0.2.10")},
		},
		Fail: map[string]error{
			"TXT down.example.org": spftest.ErrServFail,
		},
	}
}

// runCheckJSON runs check --json against srv and decodes the object.
func runCheckJSON(t *testing.T, srv *spftest.Server, args ...string) map[string]any {
	t.Helper()
	args = append([]string{"check", "--json", "--resolver", srv.Addr(), "--receiver", "mx.test.example", "--authserv-id", "mx.test.example"}, args...)
	var stdout, stderr bytes.Buffer
	if status := run(args, &stdout, &stderr); status != 0 {
		t.Fatalf("%q: status %d, stderr %q", args, status, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q", stderr.String())
	}
	out := stdout.Bytes()
	if bytes.Count(out, []byte("\n")) != 1 {
		t.Errorf("want one JSON line, got %q", out)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return m
}

// checkSchema checks R: exactly the documented keys, with their JSON types.
func checkSchema(t *testing.T, name string, v any, trace bool) map[string]any {
	t.Helper()
	r, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s = %#v, want an object", name, v)
	}
	want := []string{"identity", "domain", "result", "mechanism", "explanation", "problem", "cause", "dns_lookups", "void_lookups", "duration_ms"}
	if trace {
		want = append(want, "trace")
	}
	var keys []string
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("%s keys %q, want %q", name, keys, want)
	}
	for _, k := range []string{"identity", "domain", "result", "mechanism", "explanation", "problem", "cause"} {
		if _, ok := r[k].(string); !ok {
			t.Errorf("%s.%s = %#v, want a string", name, k, r[k])
		}
	}
	for _, k := range []string{"dns_lookups", "void_lookups"} {
		if n, ok := r[k].(json.Number); !ok || strings.ContainsAny(n.String(), ".eE-") {
			t.Errorf("%s.%s = %#v, want a non-negative integer", name, k, r[k])
		}
	}
	if n, ok := r["duration_ms"].(json.Number); !ok {
		t.Errorf("%s.duration_ms = %#v, want a number", name, r["duration_ms"])
	} else if f, err := n.Float64(); err != nil || f < 0 {
		t.Errorf("%s.duration_ms = %v, want ≥ 0", name, n)
	}
	if trace {
		if tr, ok := r["trace"].([]any); !ok || len(tr) == 0 {
			t.Errorf("%s.trace = %#v, want a non-empty list", name, r["trace"])
		}
	}
	return r
}

func TestCheckJSON(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())

	t.Run("pass", func(t *testing.T) {
		m := runCheckJSON(t, srv, "--ip", "192.0.2.10", "--sender", "user@example.org", "--helo", "mail.example.org")
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"action", "dns_cache_hits", "dns_queries", "exempt_by", "headers", "helo", "mailfrom", "quarantine", "reason", "reply", "shadow"}; !slices.Equal(keys, want) {
			t.Errorf("top-level keys %q, want %q", keys, want)
		}
		if m["action"] != "accept" || m["reason"] != "" || m["reply"] != "" {
			t.Errorf("action %v, reason %v, reply %v", m["action"], m["reason"], m["reply"])
		}
		// Two TXT lookups (the HELO's and the sender's records) and the A
		// lookup of "a": each sent once, none from the cache.
		if m["dns_queries"] != json.Number("3") || m["dns_cache_hits"] != json.Number("0") {
			t.Errorf("dns_queries %v, dns_cache_hits %v", m["dns_queries"], m["dns_cache_hits"])
		}
		helo := checkSchema(t, "helo", m["helo"], false)
		mf := checkSchema(t, "mailfrom", m["mailfrom"], false)
		// mail.example.org says "a -all" and has 192.0.2.10: pass on "a",
		// one DNS-causing term (RFC 7208 §4.6.4).
		if helo["identity"] != "helo" || helo["domain"] != "mail.example.org" || helo["result"] != "pass" || helo["mechanism"] != "a" || helo["dns_lookups"] != json.Number("1") {
			t.Errorf("helo = %v", helo)
		}
		// ip4 causes no DNS query of its own.
		if mf["identity"] != "mailfrom" || mf["domain"] != "example.org" || mf["result"] != "pass" || mf["mechanism"] != "ip4:192.0.2.0/24" || mf["dns_lookups"] != json.Number("0") {
			t.Errorf("mailfrom = %v", mf)
		}
		hdrs, ok := m["headers"].(map[string]any)
		if !ok || len(hdrs) != 2 {
			t.Fatalf("headers = %#v, want Received-SPF and Authentication-Results", m["headers"])
		}
		rs, _ := hdrs["Received-SPF"].(string)
		ar, _ := hdrs["Authentication-Results"].(string)
		// RFC 7208 §9.1: the result first, then the key-value pairs.
		if !strings.HasPrefix(rs, "pass") || !strings.Contains(rs, "client-ip=192.0.2.10") || !strings.Contains(rs, "receiver=mx.test.example") {
			t.Errorf("Received-SPF = %q", rs)
		}
		// RFC 8601 §2.2: the authserv-id first.
		if !strings.HasPrefix(ar, "mx.test.example") || !strings.Contains(ar, "spf=pass") || !strings.Contains(ar, "smtp.mailfrom=") {
			t.Errorf("Authentication-Results = %q", ar)
		}
	})

	t.Run("fail with trace", func(t *testing.T) {
		m := runCheckJSON(t, srv, "--ip", "198.51.100.7", "--sender", "user@example.org", "--helo", "mail.example.org", "--trace")
		helo := checkSchema(t, "helo", m["helo"], true)
		mf := checkSchema(t, "mailfrom", m["mailfrom"], true)
		if helo["result"] != "fail" || mf["result"] != "fail" || mf["mechanism"] != "-all" {
			t.Errorf("helo %v, mailfrom %v; want fail on -all", helo, mf)
		}
		hdrs := m["headers"].(map[string]any)
		if rs, _ := hdrs["Received-SPF"].(string); !strings.HasPrefix(rs, "fail") {
			t.Errorf("Received-SPF = %q", rs)
		}
	})

	t.Run("IP-literal HELO is not checked", func(t *testing.T) {
		m := runCheckJSON(t, srv, "--ip", "192.0.2.10", "--sender", "user@example.org", "--helo", "[192.0.2.10]")
		helo := checkSchema(t, "helo", m["helo"], false)
		if helo["result"] != "not_checked" || helo["problem"] != "HELO is an address literal" || helo["domain"] != "" {
			t.Errorf("helo = %v", helo)
		}
		mf := checkSchema(t, "mailfrom", m["mailfrom"], false)
		if mf["result"] != "pass" {
			t.Errorf("mailfrom = %v", mf)
		}
	})

	t.Run("null sender", func(t *testing.T) {
		// RFC 7208 §2.4: the null sender is checked as postmaster@HELO.
		m := runCheckJSON(t, srv, "--ip", "192.0.2.10", "--sender", "", "--helo", "mail.example.org")
		mf := checkSchema(t, "mailfrom", m["mailfrom"], false)
		if mf["domain"] != "mail.example.org" || mf["result"] != "pass" {
			t.Errorf("mailfrom = %v", mf)
		}
	})

	t.Run("temperror and permerror still exit 0", func(t *testing.T) {
		m := runCheckJSON(t, srv, "--ip", "192.0.2.10", "--sender", "a@down.example.org")
		if mf := checkSchema(t, "mailfrom", m["mailfrom"], false); mf["result"] != "temperror" || mf["problem"] == "" {
			t.Errorf("mailfrom = %v, want temperror with a problem", mf)
		}
		if helo := checkSchema(t, "helo", m["helo"], false); helo["result"] != "not_checked" {
			t.Errorf("helo = %v without --helo, want not_checked", helo)
		}
		m = runCheckJSON(t, srv, "--ip", "192.0.2.10", "--sender", "a@bad.example.org")
		if mf := checkSchema(t, "mailfrom", m["mailfrom"], false); mf["result"] != "permerror" || mf["problem"] == "" {
			t.Errorf("mailfrom = %v, want permerror with a problem", mf)
		}
	})
}

// TestCheckHeadersMatchMilter: check --json's headers are exactly the
// fields the milter inserts for the same client, HELO and sender.
func TestCheckHeadersMatchMilter(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	d, _, _, _ := startDaemon(t, "--listen", "inet:127.0.0.1:0", "--http-listen", "", "--resolver", srv.Addr(),
		"--trusted-networks", "", "--authserv-id", "mx.test.example")
	for _, tc := range []struct{ ip, helo, sender string }{
		{"192.0.2.10", "mail.example.org", "user@example.org"},
		{"198.51.100.7", "mail.example.org", "user@example.org"},
		{"192.0.2.10", "[192.0.2.10]", "user@example.org"},
		{"2001:db8::1", "mail.example.org", ""},
		{"192.0.2.10", "mail.example.org", "a@bad.example.org"},
		// What RFC 5321 and the MTAs let through reaches the milter; check
		// takes it too and answers the same.
		{"192.0.2.10", "JUMPIN' JUPITER", "Macro Error@example.org"},
		{"198.51.100.7", "mail.example.org", `"a b"@example.org`},
	} {
		m := runCheckJSON(t, srv, "--ip", tc.ip, "--helo", tc.helo, "--sender", tc.sender)
		act, mods := verdict(t, "tcp", d.milterAddr.String(), tc.ip, tc.helo, "<"+tc.sender+">")
		if act.Code != gomilter.ActAccept && act.Code != gomilter.ActContinue {
			t.Errorf("%v: milter action %+v", tc, act)
		}
		inserted := map[string]string{}
		for _, mod := range mods {
			if mod.Code == gomilter.ActInsertHeader {
				inserted[mod.HeaderName] = mod.HeaderValue
			}
		}
		hdrs, _ := m["headers"].(map[string]any)
		if len(inserted) == 0 || len(hdrs) != len(inserted) {
			t.Errorf("%v: check headers %v, milter inserted %v", tc, hdrs, inserted)
		}
		for name, v := range inserted {
			// go-milter sends folded values with LF line ends, as Postfix
			// wants; the MTA writes them back as CRLF. Fields gives CRLF.
			if got, _ := hdrs[name].(string); strings.ReplaceAll(got, "\r\n", "\n") != v {
				t.Errorf("%v: %s\ncheck:  %q\nmilter: %q", tc, name, hdrs[name], v)
			}
		}
	}
}

// TestCheckActionMatchesMilter: check's action and reply are the answer
// the daemon gives to MAIL FROM with the same settings.
func TestCheckActionMatchesMilter(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	settings := []string{"--resolver", srv.Addr(), "--trusted-networks", "", "--authserv-id", "mx.test.example",
		"--reject", "fail", "--reject-helo", "fail,none", "--defer-temperror"}
	d, _, _, _ := startDaemon(t, append([]string{"--listen", "inet:127.0.0.1:0", "--http-listen", ""}, settings...)...)
	for _, tc := range []struct {
		ip, helo, sender string
		action, reply    string // reply: its start
	}{
		{"192.0.2.10", "mail.example.org", "user@example.org", "accept", ""},
		{"198.51.100.7", "mail.example.org", "user@example.org", "reject", "550 5.7.23 SPF fail for mail.example.org"},
		{"192.0.2.10", "mail.example.org", "a@down.example.org", "tempfail", "451 4.7.24 SPF temperror for down.example.org"},
		// reject_helo none applies to a HELO that was checked and found no
		// record, never to one that could not be checked.
		{"192.0.2.10", "nospf.example.org", "user@example.org", "reject", "550 5.7.23 SPF none for nospf.example.org"},
		{"192.0.2.10", "[192.0.2.10]", "user@example.org", "accept", ""},
		{"192.0.2.10", "localhost", "user@example.org", "accept", ""},
		// The problem text cites RFC 7208 §4.3: the reply spells the sign.
		{"192.0.2.10", "mail.example.org", "user@a..example.org", "accept", ""},
	} {
		m := runCheckJSON(t, srv, append([]string{"--ip", tc.ip, "--helo", tc.helo, "--sender", tc.sender}, settings...)...)
		reply, _ := m["reply"].(string)
		if m["action"] != tc.action || !strings.HasPrefix(reply, tc.reply) || (tc.reply == "") != (reply == "") {
			t.Errorf("%v: check says %v %q", tc, m["action"], reply)
		}
		act, _ := verdict(t, "tcp", d.milterAddr.String(), tc.ip, tc.helo, "<"+tc.sender+">")
		switch tc.action {
		case "accept":
			if act.Code != gomilter.ActAccept && act.Code != gomilter.ActContinue {
				t.Errorf("%v: milter %+v", tc, act)
			}
		default:
			if got := fmt.Sprintf("%d %s", act.SMTPCode, act.SMTPText); act.Code != gomilter.ActReplyCode || got != reply {
				t.Errorf("%v: milter %q, check %q", tc, got, reply)
			}
		}
	}
}

// Under --dry-run the daemon logs the reply it does not send; check shows
// it with reason dry_run. A client in trusted_networks is skipped.
func TestCheckDryRunAndTrusted(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	m := runCheckJSON(t, srv, "--ip", "198.51.100.7", "--helo", "mail.example.org", "--sender", "user@example.org", "--reject", "fail", "--dry-run")
	if reply, _ := m["reply"].(string); m["action"] != "reject" || m["reason"] != "dry_run" || !strings.HasPrefix(reply, "550 5.7.23 ") {
		t.Errorf("dry run: action %v, reason %v, reply %q", m["action"], m["reason"], reply)
	}
	m = runCheckJSON(t, srv, "--ip", "198.51.100.7", "--helo", "mail.example.org", "--sender", "user@example.org", "--reject", "fail", "--trusted-networks", "198.51.100.0/24")
	hdrs, _ := m["headers"].(map[string]any)
	mf := checkSchema(t, "mailfrom", m["mailfrom"], false)
	if m["action"] != "skip" || m["reason"] != "trusted_network" || m["reply"] != "" || len(hdrs) != 0 || mf["result"] != "fail" {
		t.Errorf("trusted: action %v, reason %v, reply %v, headers %v, mailfrom %v", m["action"], m["reason"], m["reply"], hdrs, mf)
	}
}

// A permerror shows its cause; a quarantine the reason the MTA is given,
// in JSON and in text.
func TestCheckQuarantineAndCause(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	m := runCheckJSON(t, srv, "--ip", "192.0.2.10", "--helo", "mail.example.org", "--sender", "user@bad.example.org",
		"--reject", "permerror", "--actions", "mailfrom.permerror.syntax=quarantine")
	mf := checkSchema(t, "mailfrom", m["mailfrom"], false)
	if m["action"] != "quarantine" || m["reply"] != "" || m["quarantine"] != "SPF permerror (syntax) for mailfrom bad.example.org" || mf["cause"] != "syntax" {
		t.Errorf("action %v, reply %v, quarantine %v, mailfrom %v", m["action"], m["reply"], m["quarantine"], mf)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"check", "--resolver", srv.Addr(), "--ip", "192.0.2.10", "--helo", "mail.example.org", "--sender", "user@bad.example.org",
		"--actions", "mailfrom.permerror.syntax=quarantine"}
	if status := run(args, &stdout, &stderr); status != 0 {
		t.Fatalf("status %d: %s", status, stderr.String())
	}
	for _, s := range []string{"cause: syntax\n", "action:   quarantine (mailfrom permerror)\n", "hold:     held by the MTA: SPF permerror (syntax) for mailfrom bad.example.org\n",
		"reason=syntax smtp.mailfrom=user@bad.example.org"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, stdout.String())
		}
	}
}

// A forwarder is proven by SPF: check says which one exempted the client.
func TestCheckForwarder(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	base := []string{"--ip", "192.0.2.10", "--helo", "soft.example.org", "--sender", "user@soft.example.org", "--reject", "softfail"}
	m := runCheckJSON(t, srv, append(base, "--forwarder-domains", "soft.example.org,example.org")...)
	if m["action"] != "accept" || m["reason"] != "forwarder" || m["exempt_by"] != "example.org" || m["reply"] != "" {
		t.Errorf("action %v, reason %v, exempt_by %v, reply %v", m["action"], m["reason"], m["exempt_by"], m["reply"])
	}
	m = runCheckJSON(t, srv, append(base, "--forwarder-domains", "soft.example.org")...)
	if m["action"] != "reject" || m["reason"] != "" || m["exempt_by"] != "" {
		t.Errorf("name only: action %v, reason %v, exempt_by %v", m["action"], m["reason"], m["exempt_by"])
	}
}

// check shows the shadow verdict beside the live one.
func TestCheckShadow(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	args := []string{"--ip", "198.51.100.7", "--helo", "mail.example.org", "--sender", "user@example.org", "--shadow.reject", "fail"}
	m := runCheckJSON(t, srv, args...)
	sh, _ := m["shadow"].(map[string]any)
	if reply, _ := sh["reply"].(string); m["action"] != "accept" || sh["action"] != "reject" || sh["differs"] != true || !strings.HasPrefix(reply, "550 5.7.23 ") {
		t.Errorf("live %v, shadow %v", m["action"], m["shadow"])
	}
	if m := runCheckJSON(t, srv, "--ip", "198.51.100.7", "--helo", "mail.example.org", "--sender", "user@example.org"); m["shadow"] != nil {
		t.Errorf("shadow %v without a shadow policy", m["shadow"])
	}
	var stdout, stderr bytes.Buffer
	if status := run(append([]string{"check", "--resolver", srv.Addr()}, args...), &stdout, &stderr); status != 0 {
		t.Fatalf("status %d: %s", status, stderr.String())
	}
	for _, s := range []string{"action:   accept\n", "shadow:   reject (mailfrom); differs from the live policy (never applied)\n          reply: 550 5.7.23 "} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, stdout.String())
		}
	}
}

func TestCheckSectionSignInReply(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	m := runCheckJSON(t, srv, "--ip", "192.0.2.10", "--helo", "mail.example.org", "--sender", "user@a..example.org", "--reject", "none")
	if reply, _ := m["reply"].(string); !strings.HasPrefix(reply, "550 5.7.23 ") || !strings.Contains(reply, "(RFC 7208 section 4.3)") {
		t.Errorf("reply %q", reply)
	}
}

// A null sender is checked as postmaster@HELO (RFC 7208 §2.4): the text
// says so, also when the HELO gives nothing to check; a HELO without a
// domain is reported as not checked, with the reason.
func TestCheckTextNullSender(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	for _, tc := range []struct{ helo, want, wantHELO string }{
		{"mail.example.org", "mailfrom: pass for postmaster@mail.example.org (null sender) (mechanism a)\n",
			"helo:     pass for postmaster@mail.example.org (mechanism a)\n"},
		{"[192.0.2.10]", "mailfrom: none for postmaster@[192.0.2.10] (null sender)\n",
			"helo:     not checked: [192.0.2.10]\n          problem: HELO is an address literal\n"},
		{"", "mailfrom: none for (null sender)\n",
			"helo:     not checked: (none given)\n          problem: no HELO/EHLO name given\n"},
	} {
		var stdout, stderr bytes.Buffer
		if status := run([]string{"check", "--resolver", srv.Addr(), "--ip", "192.0.2.10", "--sender", "", "--helo", tc.helo}, &stdout, &stderr); status != 0 {
			t.Fatalf("status %d, stderr %q", status, stderr.String())
		}
		if out := stdout.String(); !strings.Contains(out, tc.want) || !strings.HasPrefix(out, tc.wantHELO) || strings.Contains(out, "(none)") {
			t.Errorf("HELO %q: want %q and %q in\n%s", tc.helo, tc.wantHELO, tc.want, out)
		}
	}
}

func TestCheckText(t *testing.T) {
	srv := spftest.NewServer(t, testWorld())
	var stdout, stderr bytes.Buffer
	status := run([]string{"check", "--resolver", srv.Addr(), "--ip", "198.51.100.7", "--sender", "user@example.org", "--helo", "mail.example.org", "--trace"}, &stdout, &stderr)
	if status != 0 {
		t.Fatalf("status %d, stderr %q", status, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"helo:", "mailfrom:", "fail for user@example.org", "mechanism -all", "trace:", "Received-SPF: fail", "Authentication-Results: ",
		// The RFC 7208 §4.6.4 counters and the queries actually sent are told apart.
		"DNS-querying terms: 0 of 10, void lookups: 0 of 2", "DNS:      3 queries sent, 0 lookups answered from the cache\n",
		"action:   accept\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// check --help shows check's own flags, then points to the settings
// instead of listing them.
func TestCheckHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := run([]string{"check", "--help"}, &stdout, &stderr); status != 0 {
		t.Fatalf("status %d, stderr %q", status, stderr.String())
	}
	out := stdout.String()
	for _, own := range []string{"--ip IP", "--sender ADDR", "--helo NAME", "--json", "--trace", "--config FILE", "--config.check"} {
		if !strings.Contains(out, "\n  "+own+"\n") {
			t.Errorf("help lacks %q:\n%s", own, out)
		}
	}
	if !strings.Contains(out, "spfmilter serve --help") {
		t.Errorf("help does not point to the settings:\n%s", out)
	}
	for _, s := range config.Settings() {
		if strings.Contains(out, "\n  --"+s.Flag+" ") || strings.Contains(out, "\n  --"+s.Flag+"\n") {
			t.Errorf("help lists the setting flag --%s", s.Flag)
		}
	}
}

// check --config.check checks the settings only: no client is needed.
func TestCheckConfigCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := run([]string{"check", "--config.check"}, &stdout, &stderr); status != 0 || stdout.String() != "spfmilter: configuration OK\n" {
		t.Errorf("status %d, stdout %q, stderr %q", status, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if status := run([]string{"check", "--config.check", "--check-timeout", "-1s"}, &stdout, &stderr); status != 2 || !strings.Contains(stderr.String(), "check-timeout") {
		t.Errorf("bad setting: status %d, stderr %q", status, stderr.String())
	}
}

func TestCheckBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sender", "a@example.org"}, "spfmilter: flag --ip: missing"},
		{[]string{"--ip", "192.0.2.300"}, `spfmilter: flag --ip: bad address "192.0.2.300"`},
		{[]string{"--ip", "fe80::1%eth0"}, `spfmilter: flag --ip: bad address`},
		{[]string{"--ip", "192.0.2.1", "--helo", "a\r\nb"}, `spfmilter: flag --helo: bad value "a\r\nb"`},
		{[]string{"--ip", "192.0.2.1", "--sender", "a\x00b@example.org"}, `spfmilter: flag --sender: bad value "a\x00b@example.org"`},
		{[]string{"--ip", "192.0.2.1", "--resolver", "dns.example"}, `spfmilter: flag --resolver: bad resolver "dns.example"`},
		{[]string{"--ip", "192.0.2.1", "--bogus"}, "spfmilter: unknown flag --bogus"},
		{[]string{"--ip", "192.0.2.1", "extra"}, `spfmilter: unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		status := run(append([]string{"check"}, tc.args...), &stdout, &stderr)
		if status != 2 {
			t.Errorf("%q: status %d, want 2", tc.args, status)
		}
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
			t.Errorf("%q: stderr %q, want one line starting %q", tc.args, stderr.String(), tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q", tc.args, stdout.String())
		}
	}
}
