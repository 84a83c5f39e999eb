package milter

import (
	"bytes"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"
)

// With dkim_rescue off, the negotiated stages are exactly those without
// the feature: no body. With it on, the body, answered only where the MTA
// does not offer SMFIP_NR_BODY.
func TestRescueNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    Rescue
		offered gomilter.OptProtocol
		want    gomilter.OptProtocol
	}{
		{"off", RescueOff, 0x1fffff, protocol},
		{"off, no NR offered", RescueOff, 0x1fffff &^ offerFlags, protocol &^ offerFlags},
		{"mailfrom", RescueMailFrom, 0x1fffff, protocol&^gomilter.OptNoBody | gomilter.OptNoBodyReply},
		{"from, NR_BODY not offered", RescueFrom, 0x1fffff &^ gomilter.OptNoBodyReply, protocol &^ gomilter.OptNoBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{Config: rescueConfig(rescueWorld(t), tc.mode)})
			if got := negotiate(t, rawDial(t, h.addr), tc.offered); got != tc.want {
				t.Errorf("protocol %#x, want %#x", got, tc.want)
			}
		})
	}
	if protocol&gomilter.OptNoBody == 0 {
		t.Error("the body is negotiated without dkim_rescue")
	}
}

// headerPackets turns a message's header into SMFIC_HEADER packets as
// Postfix sends them: no space after the colon, folded lines joined by LF.
func headerPackets(msg []byte) (pkts []byte, body []byte) {
	head, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	var name, value string
	flush := func() {
		if name != "" {
			pkts = append(pkts, pkt('L', cstr(name), cstr(value))...)
		}
	}
	for _, line := range strings.Split(string(head), "\r\n") {
		if line[0] == ' ' || line[0] == '\t' {
			value += "\n" + line
			continue
		}
		flush()
		name, value, _ = strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
	}
	flush()
	return pkts, body
}

// rescueSession sends one message from alice@fail.test (SPF fail) over a
// raw connection and returns the answers after MAIL FROM: MAIL's ('c' when
// SMFIP_NR_MAIL spares it one), then the body chunks' (when not NR_BODY) and
// the end of message's.
func rescueSession(t *testing.T, h *harness, offered gomilter.OptProtocol, msg []byte, rcpts ...string) (mail byte, rest []byte, reply string) {
	t.Helper()
	c := rawDial(t, h.addr)
	proto := negotiate(t, c, offered)
	write := func(b []byte) {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(append(append(connectPkt(clientA), pkt('H', cstr("helo.pass.test"))...), pkt('M', cstr("<alice@fail.test>"))...))
	if proto&gomilter.OptNoMailReply == 0 {
		code, _, err := rawAnswer(c)
		if err != nil {
			t.Fatal(err)
		}
		if code != 'c' {
			return code, nil, ""
		}
	}
	for _, r := range rcpts {
		write(pkt('R', cstr("<"+r+">")))
		if code, _, err := rawAnswer(c); err != nil || code != 'c' {
			t.Fatalf("RCPT TO:<%s>: answer %q %v, want continue", r, code, err)
		}
	}
	hdr, body := headerPackets(msg)
	write(hdr)
	// Two chunks, as an MTA cuts a body.
	write(pkt('B', string(body[:len(body)/2])))
	write(pkt('B', string(body[len(body)/2:])))
	write(pkt('E'))
	for {
		code, data, err := rawAnswer(c)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, code)
		switch code {
		case 'y':
			return 'c', rest, strings.TrimRight(string(data), "\x00")
		case 'c':
			if len(rest) > 2 || bytes.Count(rest, []byte{'i'}) > 0 {
				return 'c', rest, ""
			}
		}
	}
}

func TestRescueSession(t *testing.T) {
	w := rescueWorld(t, "fail.test")
	good := signedMessage(t, "alice@fail.test", "fail.test")
	altered := bytes.Replace(good, []byte("Bob."), []byte("Eve."), 1)

	t.Run("rescued", func(t *testing.T) {
		h := start(t, Options{Config: rescueConfig(w, RescueMailFrom)})
		mail, rest, reply := rescueSession(t, h, 0x1fffff, good)
		if mail != 'c' || reply != "" || !bytes.HasSuffix(rest, []byte{'i', 'i', 'c'}) {
			t.Fatalf("mail %q, answers %q, reply %q", mail, rest, reply)
		}
		waitFor(t, "the rescue counted", func() bool {
			_, _, actions, _, _ := h.obs.snapshot()
			return len(actions) == 1
		})
		_, _, actions, _, _ := h.obs.snapshot()
		if h.obs.rescueList()[0] != RescueRescued || actions[0] != "accept/" {
			t.Errorf("rescues %v, actions %v", h.obs.rescueList(), actions)
		}
		if logs := h.logs.String(); !strings.Contains(logs, "dkim_rescue=rescued dkim_domain=fail.test") {
			t.Errorf("log lacks the rescue:\n%s", logs)
		}
	})
	t.Run("body altered", func(t *testing.T) {
		h := start(t, Options{Config: rescueConfig(w, RescueMailFrom)})
		mail, rest, reply := rescueSession(t, h, 0x1fffff, altered)
		if mail != 'c' || !strings.HasPrefix(reply, "550 5.7.23 ") || bytes.Contains(rest, []byte{'i'}) {
			t.Fatalf("mail %q, answers %q, reply %q", mail, rest, reply)
		}
		waitFor(t, "the reject counted", func() bool { return len(h.obs.rescueList()) == 1 })
		_, _, actions, _, _ := h.obs.snapshot()
		if h.obs.rescueList()[0] != RescueNotRescued || actions[0] != "reject/" {
			t.Errorf("rescues %v, actions %v", h.obs.rescueList(), actions)
		}
	})
	// A refusal decided at end of message cannot spare one recipient:
	// with a recipient of never_reject_recipients, it is a mark.
	t.Run("not rescued, to postmaster", func(t *testing.T) {
		h := start(t, Options{Config: rescueConfig(w, RescueMailFrom, spare("postmaster@"))})
		mail, rest, reply := rescueSession(t, h, 0x1fffff, altered, "user@dest.example", "postmaster@dest.example")
		if mail != 'c' || reply != "" || !bytes.Contains(rest, []byte{'i'}) {
			t.Fatalf("mail %q, answers %q, reply %q", mail, rest, reply)
		}
		waitFor(t, "the mark counted", func() bool {
			_, _, actions, _, _ := h.obs.snapshot()
			return len(actions) == 1
		})
		if _, _, actions, _, _ := h.obs.snapshot(); actions[0] != "accept/never_reject_recipient" {
			t.Errorf("actions %v", actions)
		}
	})
	t.Run("body chunks answered without NR_BODY", func(t *testing.T) {
		h := start(t, Options{Config: rescueConfig(w, RescueMailFrom)})
		_, rest, reply := rescueSession(t, h, 0x1fffff&^gomilter.OptNoBodyReply, good)
		if reply != "" || !bytes.HasPrefix(rest, []byte{'c', 'c', 'i', 'i', 'c'}) {
			t.Fatalf("answers %q, reply %q", rest, reply)
		}
	})
	t.Run("off rejects at MAIL FROM", func(t *testing.T) {
		h := start(t, Options{Config: rescueConfig(w, RescueOff)})
		if mail, _, _ := rescueSession(t, h, 0x1fffff, good); mail != 'y' {
			t.Fatalf("mail answer %q, want a reply", mail)
		}
	})
	t.Run("turned on by a reload", func(t *testing.T) {
		// The connection was negotiated without the body: the message is
		// decided at MAIL FROM, as before the reload.
		h := start(t, Options{Config: rescueConfig(w, RescueOff)})
		c := rawDial(t, h.addr)
		negotiate(t, c, 0x1fffff)
		h.srv.SetConfig(rescueConfig(w, RescueMailFrom))
		if _, err := c.Write(append(append(connectPkt(clientA), pkt('H', cstr("helo.pass.test"))...), pkt('M', cstr("<alice@fail.test>"))...)); err != nil {
			t.Fatal(err)
		}
		if code, _, err := rawAnswer(c); err != nil || code != 'y' {
			t.Fatalf("mail answer %q %v, want a reply", code, err)
		}
	})
}

// A message that needs no rescue is not verified, though the body comes.
func TestRescueNotNeeded(t *testing.T) {
	w := rescueWorld(t, "pass.test")
	h := start(t, Options{Config: rescueConfig(w, RescueFrom)})
	m := h.connect(gomilter.FamilyInet, clientA)
	m.helo("helo.pass.test")
	hdr := m.accepted("alice@pass.test", "Q1", field{"From", "alice@pass.test"})
	for _, f := range hdr {
		if f.name == "Authentication-Results" && strings.Contains(f.value, "dkim=") {
			t.Errorf("verified a passing message: %s", f.value)
		}
	}
	if r := h.obs.rescueList(); len(r) != 0 {
		t.Errorf("rescues %v", r)
	}
}
