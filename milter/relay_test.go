package milter

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"
)

func TestRelayHop(t *testing.T) {
	postfix := "from mx.relay.example (mx.relay.example [127.0.0.2])\n\tby mx.example.test (Postfix) with ESMTP id 4AB; Tue, 1 Dec 2026 16:00:00 +0000"
	relayed := "from client.example.org (unknown [192.0.2.7])\n\tby mx.relay.example (Postfix) with ESMTP id 1CD; Tue, 1 Dec 2026 15:59:59 +0000"
	sendmail := "from helo.example.net (host.example.net [IPv6:2001:db8::25])\n\tby Backup.Example.COM. (8.18.1/8.18.1) with ESMTP id 5B1G;"
	older := "from old.example.net (old.example.net [198.51.100.1]) by mx.relay.example; Sun, 1 Nov 2026 00:00:00 +0000"
	for _, tc := range []struct {
		name     string
		received []string
		names    []string
		ip, helo string
	}{
		{"below our own field", []string{postfix, relayed, older}, []string{"mx.relay.example"}, "192.0.2.7", "client.example.org"},
		{"IPv6 literal, name case and dot", []string{sendmail}, []string{"backup.example.com"}, "2001:db8::25", "helo.example.net"},
		{"second name", []string{relayed}, []string{"", "MX.RELAY.EXAMPLE."}, "192.0.2.7", "client.example.org"},
		{"no field by the relay", []string{postfix, older}, []string{"other.example"}, "", ""},
		{"no bracketed address", []string{"from client.example.org (unknown) by mx.relay.example; x"}, []string{"mx.relay.example"}, "", ""},
		{"garbage in brackets", []string{"from c (x [not-an-ip]) by mx.relay.example; x"}, []string{"mx.relay.example"}, "", ""},
		{"not a from field", []string{"by mx.relay.example; x"}, []string{"mx.relay.example"}, "", ""},
		{"empty", nil, []string{"mx.relay.example"}, "", ""},
	} {
		ip, helo, ok := relayHop(tc.received, tc.names...)
		if tc.ip == "" {
			if ok {
				t.Errorf("%s: got %s %q, want none", tc.name, ip, helo)
			}
			continue
		}
		if !ok || ip != netip.MustParseAddr(tc.ip) || helo != tc.helo {
			t.Errorf("%s: got %s %q %v, want %s %q", tc.name, ip, helo, ok, tc.ip, tc.helo)
		}
	}
}

func relayed(c *Config) {
	c.TrustedRelays = []Relay{{Prefix: netip.MustParsePrefix(clientA + "/32")}}
}

// A message from a trusted relay is checked for the host in the relay's
// Received field, at end of message: refused there with the same reply, or
// marked with the original client and the relay in Received-SPF.
func TestTrustedRelay(t *testing.T) {
	r := world()
	r.TXT["relayed.test"] = []string{"v=spf1 ip4:192.0.2.7 -all"}
	h := start(t, Options{Config: testConfig(r, rejectFail, relayed)})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("mx.relay.test")
	hop := field{"Received", "from client.example.org (unknown [192.0.2.7])\n\tby mx.relay.test (Postfix) with ESMTP id 1CD; Tue, 1 Dec 2026 15:59:59 +0000"}
	older := field{"Received", "from old.example.net (old.example.net [198.51.100.1]) by old.example.net; Sun, 1 Nov 2026 00:00:00 +0000"}

	// fail.test fails every address: refused at end of message.
	m.continued("mail", m.mail("bob@fail.test"), nil)
	_, end := m.data("QIDR1", hop, older)
	if end.Code != gomilter.ActReplyCode || end.SMTPCode != 550 || !strings.HasPrefix(end.SMTPText, "5.7.23 SPF fail for fail.test: 192.0.2.7 ") {
		t.Errorf("fail: %+v, want 550 5.7.23 for 192.0.2.7", end)
	}
	// relayed.test allows the original client: marked, naming both.
	got := m.accepted("alice@relayed.test", "QIDR2", hop, older)
	if len(got) != 4 || !strings.Contains(unfold(got[1].value), "client-ip=192.0.2.7; x-relay="+clientA+";") ||
		!strings.HasPrefix(got[1].value, "pass ") || !strings.Contains(unfold(got[0].value), "spf=pass smtp.mailfrom=alice@relayed.test") {
		t.Errorf("fields %s", dump(got))
	}
	// No Received field of the relay: checked as the relay's own, never
	// refused.
	got = m.accepted("bob@fail.test", "QIDR3", older)
	if len(got) != 3 || !strings.HasPrefix(got[1].value, "fail ") || !strings.Contains(unfold(got[1].value), "client-ip="+clientA+";") || strings.Contains(got[1].value, "x-relay") {
		t.Errorf("fields %s", dump(got))
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"reject/", "accept/", "accept/relay_no_received"}) {
		t.Errorf("actions %v", actions)
	}
	logs := h.logs.String()
	for _, s := range []string{"relay=" + clientA + " relayed_client_ip=192.0.2.7", "stage=eom", "no Received field of the trusted relay"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
}

// Relay and opt-out: a refusal decided at end of message cannot spare one
// recipient, so a spared recipient makes it a mark; without one it is a
// refusal. A relay name given in the setting is matched instead of the HELO.
func TestTrustedRelayOptOut(t *testing.T) {
	named := func(c *Config) {
		c.TrustedRelays = []Relay{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), By: "backup.example.com"}}
	}
	h := start(t, Options{Config: testConfig(world(), rejectFail, named, spare("postmaster@"))})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("whatever.example")
	hop := field{"Received", "from client.example.org (unknown [192.0.2.7]) by backup.example.com (8.18.1/8.18.1); x"}
	for _, tc := range []struct {
		rcpts  []string
		refuse bool
	}{
		{[]string{"user@dest.example", "postmaster@dest.example"}, false},
		{[]string{"user@dest.example"}, true},
	} {
		m.continued("mail", m.mail("bob@fail.test"), nil)
		for _, rc := range tc.rcpts {
			act, err := m.cs.Rcpt(rc, nil)
			m.continued("rcpt", act, err)
		}
		_, end := m.data("QIDO", hop)
		if refused := end.Code == gomilter.ActReplyCode && end.SMTPCode == 550; refused != tc.refuse {
			t.Errorf("%v: got %+v, refused %v, want %v", tc.rcpts, end, refused, tc.refuse)
		}
	}
	_, _, actions, _, _ := h.obs.snapshot()
	if !slices.Equal(actions, []string{"accept/never_reject_recipient", "reject/"}) {
		t.Errorf("actions %v", actions)
	}
}
