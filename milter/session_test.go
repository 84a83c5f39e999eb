package milter

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/spf"
)

var postfixConnect = []string{"j", ourID, "{daemon_name}", "smtpd", "_", "client.example [" + clientA + "]"}

func TestPassAddsHeadersOnTop(t *testing.T) {
	r := world()
	h := start(t, Options{Config: testConfig(r)})
	m := h.connect(gomilter.FamilyInet, clientA, postfixConnect...)
	m.helo("helo.pass.test")
	orig := []field{{"From", "alice@pass.test"}, {"Subject", "hi"}}
	got := m.accepted("alice@pass.test", "QID1", orig...)

	heloOut, mfOut := outcomes(r, clientA, "helo.pass.test", "alice@pass.test")
	if heloOut.Result != spf.Pass || mfOut.Result != spf.Pass {
		t.Fatalf("test world broken: helo %s, mailfrom %s", heloOut.Result, mfOut.Result)
	}
	want := append(expectFields(headers.Input{
		AuthservID: ourID, Receiver: ourID, ClientIP: netip.MustParseAddr(clientA),
		HELO: "helo.pass.test", EnvelopeFrom: "alice@pass.test",
		HELOResult: heloOut, MailFrom: mfOut,
	}), orig...)
	checkFields(t, got, want)

	// The tokens RFC 8601 and RFC 7208 §9.1 define, independent of layout.
	if len(got) != 4 {
		t.Fatalf("got %d fields", len(got))
	}
	ar := unfold(got[0].value)
	for _, s := range []string{ourID + ";", "spf=pass smtp.mailfrom=alice@pass.test", "spf=pass smtp.helo=helo.pass.test"} {
		if !strings.Contains(ar, s) {
			t.Errorf("Authentication-Results %q lacks %q", ar, s)
		}
	}
	rs := unfold(got[1].value)
	if got[1].name != "Received-SPF" || !strings.HasPrefix(rs, "pass ") ||
		!strings.Contains(rs, "client-ip="+clientA) || !strings.Contains(rs, "identity=mailfrom") {
		t.Errorf("Received-SPF: %q", rs)
	}

	_, _, actions, results, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"accept/"}) {
		t.Errorf("actions %v", actions)
	}
	if !slices.Equal(results, []string{"helo=pass", "mailfrom=pass"}) {
		t.Errorf("results %v", results)
	}
	logs := h.logs.String()
	for _, s := range []string{"queue_id=QID1", "client_ip=" + clientA, "helo=helo.pass.test", "sender=alice@pass.test",
		"helo_result=pass", "mailfrom_result=pass", "action=accept", "duration="} {
		if !strings.Contains(logs, s) {
			t.Errorf("verdict log lacks %q:\n%s", s, logs)
		}
	}
}

func TestFailMarkedByDefault(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("bob@fail.test", "QID2")
	if len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=fail smtp.mailfrom=bob@fail.test") ||
		!strings.HasPrefix(got[1].value, "fail ") {
		t.Errorf("fields %s", dump(got))
	}
}

func TestReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     func(*Config)
		helo    string
		from    string
		code    int
		prefix  string // of the reply text: the enhanced status code
		has     string
		action  string
		logHave string
	}{
		{"fail rejected", rejectFail, "helo.pass.test", "bob@fail.test", 550, "5.7.23 ",
			"SPF fail for fail.test: " + clientA + " may not send for fail.test", "reject/", "identity=mailfrom"},
		{"softfail rejected", func(c *Config) { c.Policy.MailFrom = map[spf.Result]Action{spf.Softfail: ActionReject} },
			"helo.pass.test", "bob@softfail.test", 550, "5.7.23 ", "SPF softfail for softfail.test", "reject/", ""},
		{"permerror", func(c *Config) { c.Policy.MailFrom = map[spf.Result]Action{spf.Permerror: ActionReject} },
			"helo.pass.test", "bob@perm.test", 550, "5.7.24 ", "SPF permerror for perm.test", "reject/", ""},
		{"temperror deferred", func(c *Config) { c.Policy.MailFrom = map[spf.Result]Action{spf.Temperror: ActionTempfail} },
			"helo.pass.test", "bob@temp.test", 451, "4.7.24 ", "SPF temperror for temp.test", "tempfail/", ""},
		{"helo rejected", func(c *Config) { c.Policy.HELO = map[spf.Result]Action{spf.Fail: ActionReject} },
			"helo.fail.test", "alice@pass.test", 550, "5.7.23 ", "SPF fail for helo.fail.test", "reject/", "identity=helo"},
		{"template", func(c *Config) {
			rejectFail(c)
			c.RejectText = "{identity} {sender} from {ip} via {helo}: {result}"
		}, "helo.pass.test", "bob@fail.test", 550, "5.7.23 ",
			"mailfrom bob@fail.test from " + clientA + " via helo.pass.test: fail", "reject/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{Config: testConfig(world(), tc.cfg)})
			m := h.connect(gomilter.FamilyInet, clientA)
			m.helo(tc.helo)
			act := m.mail(tc.from)
			if act.Code != gomilter.ActReplyCode || act.SMTPCode != tc.code ||
				!strings.HasPrefix(act.SMTPText, tc.prefix) || !strings.Contains(act.SMTPText, tc.has) {
				t.Fatalf("got %q %d %q, want %d %s…%s…", act.Code, act.SMTPCode, act.SMTPText, tc.code, tc.prefix, tc.has)
			}
			_, _, actions, _, _ := h.obs.snapshot()
			if !slices.Equal(actions, []string{tc.action}) {
				t.Errorf("actions %v, want [%s]", actions, tc.action)
			}
			logs := h.logs.String()
			if !strings.Contains(logs, "action="+strings.TrimSuffix(tc.action, "/")) || !strings.Contains(logs, tc.logHave) {
				t.Errorf("log lacks the verdict:\n%s", logs)
			}
		})
	}
}

func TestTemperrorMarkedWithoutDefer(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), rejectFail)})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("bob@temp.test", "Q")
	if len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=temperror") {
		t.Errorf("fields %s", dump(got))
	}
}

func TestDryRunNeverRejects(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), rejectFail, func(c *Config) { c.DryRun = true })})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("bob@fail.test", "QDRY")
	if len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=fail") {
		t.Errorf("fields %s", dump(got))
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"reject/dry_run"}) {
		t.Errorf("actions %v", actions)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "action=reject") || !strings.Contains(logs, "reason=dry_run") ||
		!strings.Contains(logs, `dry_run_reply="550 5.7.23 SPF fail for fail.test`) {
		t.Errorf("log:\n%s", logs)
	}
}

func TestNullSenderChecksPostmasterAtHELO(t *testing.T) {
	r := world()
	h := start(t, Options{Config: testConfig(r)})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("", "QNULL")
	heloOut, mfOut := outcomes(r, clientA, "helo.pass.test", "")
	if mfOut.Sender != "postmaster@helo.pass.test" || mfOut.Result != spf.Pass {
		t.Fatalf("checker: null sender checked as %q → %s", mfOut.Sender, mfOut.Result)
	}
	checkFields(t, got, expectFields(headers.Input{
		AuthservID: ourID, Receiver: ourID, ClientIP: netip.MustParseAddr(clientA),
		HELO: "helo.pass.test", EnvelopeFrom: "", HELOResult: heloOut, MailFrom: mfOut,
	}))
	if !strings.Contains(h.logs.String(), `sender=""`) {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

// The client address in all the forms the MTAs send it.
func TestClientAddressForms(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family gomilter.ProtoFamily
		addr   string
		macros []string
		want   string
	}{
		{"postfix ipv6", gomilter.FamilyInet6, "::1", nil, "::1"},
		{"sendmail ipv6 with client_addr", gomilter.FamilyInet6, "IPv6:0:0:0:0:0:0:0:1",
			[]string{"j", ourID, "{client_addr}", "IPv6:0:0:0:0:0:0:0:1", "_", "localhost [IPv6:0:0:0:0:0:0:0:1]"}, "::1"},
		{"sendmail ipv6, only _", gomilter.FamilyInet6, "IPv6:0:0:0:0:0:0:0:1",
			[]string{"_", "localhost [ipv6:::1] (may be forged)"}, "::1"},
		{"ipv4-mapped", gomilter.FamilyInet6, "::ffff:127.0.0.2", nil, clientA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{Config: testConfig(world())})
			m := h.connect(tc.family, tc.addr, tc.macros...)
			m.helo("helo.pass.test")
			got := m.accepted("alice@pass.test", "Q6")
			if len(got) != 2 || !strings.HasPrefix(got[1].value, "pass ") ||
				!strings.Contains(unfold(got[1].value), "client-ip=") ||
				!strings.Contains(unfold(got[1].value), tc.want) {
				t.Errorf("fields %s", dump(got))
			}
			if !strings.Contains(h.logs.String(), "client_ip="+tc.want) {
				t.Errorf("log:\n%s", h.logs.String())
			}
		})
	}
}

// `sendmail -bs` connects with family unknown and no address: no check, no
// SPF headers, no DNS, but forged results are still removed.
func TestNoClientIPSkips(t *testing.T) {
	r := world()
	h := start(t, Options{Config: testConfig(r, rejectFail)})
	m := h.connect(gomilter.FamilyUnknown, "", "j", ourID, "_", "alice@localhost")
	m.helo("helo.fail.test")
	orig := []field{{"Authentication-Results", ourID + "; spf=pass smtp.mailfrom=bob@fail.test"}, {"Subject", "x"}}
	got := m.accepted("bob@fail.test", "QBS", orig...)
	checkFields(t, got, orig[1:])
	if q := r.Queries(); len(q) != 0 {
		t.Errorf("DNS queries without a client address: %v", q)
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"skip/no_client_ip"}) {
		t.Errorf("actions %v", actions)
	}
	if !strings.Contains(h.logs.String(), "reason=no_client_ip") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

func TestSkips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    func(*Config)
		family gomilter.ProtoFamily
		addr   string
		macros []string
		want   string // "" = checked
	}{
		{"trusted v4", func(c *Config) { c.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")} },
			gomilter.FamilyInet, clientA, nil, "skip/trusted_network"},
		{"untrusted v4", func(c *Config) { c.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.8/30")} },
			gomilter.FamilyInet, clientA, nil, ""},
		{"trusted v6", func(c *Config) { c.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("::1/128")} },
			gomilter.FamilyInet6, "::1", nil, "skip/trusted_network"},
		{"trusted v6, sendmail form", func(c *Config) { c.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("::1/128")} },
			gomilter.FamilyInet6, "IPv6:0:0:0:0:0:0:0:1", nil, "skip/trusted_network"},
		{"authenticated", func(c *Config) { c.SkipAuthenticated = true },
			gomilter.FamilyInet, clientA, []string{"{auth_authen}", "bob", "{auth_type}", "PLAIN"}, "skip/authenticated"},
		{"authenticated, not skipped", nil,
			gomilter.FamilyInet, clientA, []string{"{auth_authen}", "bob", "{auth_type}", "PLAIN"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(world(), rejectFail)
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			h := start(t, Options{Config: cfg})
			var connMacros []string
			if strings.HasPrefix(tc.addr, "IPv6:") {
				connMacros = []string{"{client_addr}", tc.addr}
			}
			m := h.connect(tc.family, tc.addr, connMacros...)
			m.helo("helo.pass.test")
			act := m.mail("bob@fail.test", tc.macros...)
			if tc.want == "" {
				if act.Code != gomilter.ActReplyCode {
					t.Fatalf("not checked: %q", act.Code)
				}
				return
			}
			m.continued("mail", act, nil)
			mods, end := m.data("QS")
			m.continued("eom", end, nil)
			if len(mods) != 0 {
				t.Errorf("skipped message modified: %v", mods)
			}
			_, _, actions, _, _ := h.obs.snapshot()
			if !slices.Equal(actions, []string{tc.want}) {
				t.Errorf("actions %v, want %s", actions, tc.want)
			}
			if !strings.Contains(h.logs.String(), "reason="+strings.TrimPrefix(tc.want, "skip/")) {
				t.Errorf("log:\n%s", h.logs.String())
			}
		})
	}
}

// RFC 8601 §5: fields claiming our authserv-id are removed, others kept.
func TestForgedAuthenticationResultsRemoved(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	orig := []field{
		{"Authentication-Results", ourID + "; spf=pass smtp.mailfrom=forged@fail.test"},
		{"From", "alice@pass.test"},
		{"Authentication-Results", "other.example; dkim=pass header.d=pass.test"},
		{"authentication-results", "(comment) MX.Example.Test.; spf=pass"},
	}
	act := m.mail("alice@pass.test")
	m.continued("mail", act, nil)
	mods, end := m.data("QAR", orig...)
	m.continued("eom", end, nil)
	var changes []uint32
	for _, md := range mods {
		if md.Code == gomilter.ActChangeHeader {
			if md.HeaderValue != "" || !strings.EqualFold(md.HeaderName, "Authentication-Results") {
				t.Errorf("change %+v", md)
			}
			changes = append(changes, md.HeaderIndex)
		}
	}
	if !slices.Equal(changes, []uint32{3, 1}) {
		t.Errorf("deleted indexes %v, want [3 1] (last first)", changes)
	}
	got := applyMods(orig, mods)
	if len(got) != 4 || got[2] != orig[1] || got[3] != orig[2] ||
		!strings.HasPrefix(got[0].value, ourID+";") || got[1].name != "Received-SPF" {
		t.Errorf("fields %s", dump(got))
	}
}

// Three messages on one connection, one rejected, each with its own verdict
// and headers; the HELO is checked once.
func TestThreeMessagesOneConnection(t *testing.T) {
	for _, abortAfterReject := range []bool{false, true} {
		name := "postfix"
		if abortAfterReject {
			name = "sendmail" // Sendmail aborts the filters after a rejection
		}
		t.Run(name, func(t *testing.T) {
			r := world()
			h := start(t, Options{Config: testConfig(r, rejectFail)})
			m := h.connect(gomilter.FamilyInet, clientA, postfixConnect...)
			m.helo("helo.pass.test")

			got1 := m.accepted("alice@pass.test", "Q1", field{"Subject", "one"})
			act := m.mail("bob@fail.test")
			if act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 {
				t.Fatalf("second message: %q %d %s", act.Code, act.SMTPCode, act.SMTPText)
			}
			if abortAfterReject {
				m.abort()
			}
			got3 := m.accepted("carol@softfail.test", "Q3", field{"Subject", "three"})

			heloOut, out1 := outcomes(r, clientA, "helo.pass.test", "alice@pass.test")
			_, out3 := outcomes(r, clientA, "helo.pass.test", "carol@softfail.test")
			in := headers.Input{AuthservID: ourID, Receiver: ourID, ClientIP: netip.MustParseAddr(clientA),
				HELO: "helo.pass.test", HELOResult: heloOut}
			in1, in3 := in, in
			in1.EnvelopeFrom, in1.MailFrom = "alice@pass.test", out1
			in3.EnvelopeFrom, in3.MailFrom = "carol@softfail.test", out3
			checkFields(t, got1, append(expectFields(in1), field{"Subject", "one"}))
			checkFields(t, got3, append(expectFields(in3), field{"Subject", "three"}))
			if !strings.Contains(unfold(got3[0].value), "spf=softfail smtp.mailfrom=carol@softfail.test") {
				t.Errorf("third message: %s", dump(got3))
			}

			_, _, actions, results, _ := h.obs.snapshot()
			if !slices.Equal(actions, []string{"accept/", "reject/", "accept/"}) {
				t.Errorf("actions %v", actions)
			}
			if !slices.Equal(results, []string{"helo=pass", "mailfrom=pass", "mailfrom=fail", "mailfrom=softfail"}) {
				t.Errorf("results %v (the HELO is checked once per name)", results)
			}
			if n := strings.Count(h.logs.String(), "spf verdict"); n != 3 {
				t.Errorf("%d verdict lines, want 3:\n%s", n, h.logs.String())
			}
		})
	}
}

// RSET (ABORT) between messages forgets the first message, including the
// Authentication-Results fields it had counted.
func TestAbortBetweenMessages(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	act := m.mail("bob@fail.test")
	m.continued("mail", act, nil)
	m.must(m.cs.Macros(gomilter.CodeHeader, "i", "QX"))
	a, err := m.cs.HeaderField("Authentication-Results", "other.example; spf=none")
	m.continued("header", a, err)
	m.abort()

	orig := []field{{"Authentication-Results", ourID + "; spf=fail"}}
	got := m.accepted("alice@pass.test", "QY", orig...)
	if len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=pass smtp.mailfrom=alice@pass.test") ||
		got[1].name != "Received-SPF" {
		t.Errorf("fields %s", dump(got))
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"accept/"}) {
		t.Errorf("actions %v (the aborted message has no verdict)", actions)
	}
}

// The last HELO counts: Postfix sends ABORT and EHLO again after STARTTLS,
// Sendmail only the second EHLO.
func TestSecondEHLO(t *testing.T) {
	for _, abort := range []bool{true, false} {
		h := start(t, Options{Config: testConfig(world(), func(c *Config) {
			c.Policy.HELO = map[spf.Result]Action{spf.Fail: ActionReject}
		})})
		m := h.connect(gomilter.FamilyInet, clientA)
		m.helo("helo.fail.test")
		if abort {
			m.abort()
		}
		m.helo("helo.pass.test")
		got := m.accepted("alice@pass.test", "QTLS")
		if len(got) != 2 || !strings.Contains(unfold(got[0].value), "spf=pass smtp.helo=helo.pass.test") {
			t.Errorf("abort=%v: fields %s", abort, dump(got))
		}
		// And back: a new HELO is checked again.
		m.helo("helo.fail.test")
		if act := m.mail("alice@pass.test"); act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 {
			t.Errorf("abort=%v: HELO change not re-checked: %q %d", abort, act.Code, act.SMTPCode)
		}
	}
}

// A hostile HELO and explanation cannot break the reply line.
func TestReplyTextSanitised(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), rejectFail, func(c *Config) {
		c.RejectText = "{helo} says {explanation}"
	})})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.must(m.cs.Macros(gomilter.CodeHelo))
	act, err := m.cs.Helo("evil\r\n250 ok\tX%s")
	m.continued("helo", act, err)
	act = m.mail("bob@pct.test")
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 {
		t.Fatalf("got %q %d", act.Code, act.SMTPCode)
	}
	text := act.SMTPText
	if strings.ContainsAny(text, "\r\n\t\x00") {
		t.Errorf("reply has a control character: %q", text)
	}
	if !strings.HasPrefix(text, "5.7.23 evil 250 ok X%%s says 100%% spam spam") {
		t.Errorf("reply %q", text)
	}
	if n := len(text) - len("5.7.23 "); n > maxReplyText {
		t.Errorf("reply text %d bytes, cap %d", n, maxReplyText)
	}
	if strings.Contains(strings.ReplaceAll(text, "%%", ""), "%") {
		t.Errorf("a single %% is left: %q", text)
	}
}

// The config is taken at MAIL FROM: a new one applies to the next message,
// never to one in flight.
func TestSetConfigNextMessage(t *testing.T) {
	r := world()
	h := start(t, Options{Config: testConfig(r)})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")

	act := m.mail("bob@fail.test")
	m.continued("mail", act, nil)
	h.srv.SetConfig(testConfig(r, rejectFail, func(c *Config) { c.AuthservID = "new.example.test" }))
	mods, end := m.data("QOLD")
	m.continued("eom", end, nil)
	got := applyMods(nil, mods)
	if len(got) != 2 || !strings.HasPrefix(got[0].value, ourID+";") {
		t.Errorf("message in flight did not keep its config: %s", dump(got))
	}

	if act := m.mail("bob@fail.test"); act.Code != gomilter.ActReplyCode {
		t.Errorf("new config not applied to the next message: %q", act.Code)
	}
	m.abort()
	got = m.accepted("alice@pass.test", "QNEW")
	if len(got) != 2 || !strings.HasPrefix(got[0].value, "new.example.test;") {
		t.Errorf("fields %s", dump(got))
	}
}

// The macro map is replaced by every macro packet: j from the connect stage
// must survive the HELO, MAIL and EOM packets to name us at EOM.
func TestConnectMacrosSurviveLaterPackets(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), func(c *Config) { c.AuthservID = "" })})
	m := h.connect(gomilter.FamilyInet, clientA, "j", "mta.from-j.test", "{daemon_name}", "smtpd")
	m.helo("helo.pass.test")
	got := m.accepted("alice@pass.test", "QJ")
	if len(got) != 2 || !strings.HasPrefix(got[0].value, "mta.from-j.test;") ||
		!strings.Contains(unfold(got[1].value), "receiver=mta.from-j.test") {
		t.Errorf("fields %s", dump(got))
	}
}

func TestHideReceiver(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), func(c *Config) { c.HideReceiver = true })})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("alice@pass.test", "QH")
	if len(got) != 2 || strings.Contains(got[1].value, "receiver=") || !strings.HasPrefix(got[0].value, ourID+";") {
		t.Errorf("fields %s", dump(got))
	}
}

// A configured receiver names Received-SPF's receiver; the authserv-id of
// Authentication-Results stays as it was.
func TestReceiverSetting(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), func(c *Config) { c.Receiver = "spf.verifier.test" })})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("alice@pass.test", "QR")
	if len(got) != 2 || !strings.HasPrefix(got[0].value, ourID+";") ||
		!strings.Contains(unfold(got[1].value), "receiver=spf.verifier.test;") ||
		!strings.Contains(unfold(got[1].value), "(spf.verifier.test: domain of") {
		t.Errorf("fields %s", dump(got))
	}
}

// The queue id comes from the EOM macros with Postfix (it sends no i at
// MAIL) and from MAIL with Sendmail.
func TestQueueIDFromMailStage(t *testing.T) {
	h := start(t, Options{Config: testConfig(world(), rejectFail)})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	if act := m.mail("bob@fail.test", "i", "SENDMAILQ"); act.Code != gomilter.ActReplyCode {
		t.Fatalf("%q", act.Code)
	}
	if !strings.Contains(h.logs.String(), "queue_id=SENDMAILQ") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

// A client that never sent HELO: only MAIL FROM is checked; the HELO is
// reported as not checked.
func TestNoHELO(t *testing.T) {
	h := start(t, Options{Config: testConfig(world())})
	m := h.connect(gomilter.FamilyInet, clientA)
	got := m.accepted("alice@pass.test", "QNOHELO")
	if len(got) != 2 || strings.Contains(got[0].value, "smtp.helo") ||
		!strings.Contains(unfold(got[0].value), "spf=pass smtp.mailfrom=alice@pass.test") {
		t.Errorf("fields %s", dump(got))
	}
	_, _, _, results, _ := h.obs.snapshot()
	if !slices.Equal(results, []string{"helo=not_checked", "mailfrom=pass"}) {
		t.Errorf("results %v", results)
	}
	if !strings.Contains(h.logs.String(), "helo_result=not_checked") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

// A new config brings a new checker: the HELO is evaluated again with it.
func TestSetConfigRechecksHELO(t *testing.T) {
	r := world()
	h := start(t, Options{Config: testConfig(r)})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	m.accepted("alice@pass.test", "Q1")
	m.accepted("alice@pass.test", "Q2")
	h.srv.SetConfig(testConfig(r))
	m.accepted("alice@pass.test", "Q3")
	_, _, _, results, _ := h.obs.snapshot()
	want := []string{"helo=pass", "mailfrom=pass", "mailfrom=pass", "helo=pass", "mailfrom=pass"}
	if !slices.Equal(results, want) {
		t.Errorf("results %v, want %v", results, want)
	}
}

// Without a config the milter lets mail through untouched and says so.
func TestNoConfig(t *testing.T) {
	h := start(t, Options{})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	got := m.accepted("bob@fail.test", "QNC", field{"Subject", "x"})
	checkFields(t, got, []field{{"Subject", "x"}})
	_, _, actions, _, errs := h.obs.snapshot()
	if !slices.Equal(actions, []string{"skip/unconfigured"}) || !slices.Equal(errs, []string{"mail"}) {
		t.Errorf("actions %v, errors %v", actions, errs)
	}
}
