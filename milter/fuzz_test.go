package milter

import (
	"net"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/spf"
)

// editor records the end-of-message edits.
type editor struct {
	changes    []field
	inserts    []field
	quarantine []string
}

func (e *editor) Quarantine(reason string) error {
	e.quarantine = append(e.quarantine, reason)
	return nil
}

func (e *editor) ChangeHeader(i int, name, value string) error {
	e.changes = append(e.changes, field{name, value})
	return nil
}

func (e *editor) InsertHeader(i int, name, value string) error {
	e.inserts = append(e.inserts, field{name, value})
	return nil
}

// FuzzSession feeds arbitrary client input through a session: HELO, MAIL
// FROM, a header field, the client address macro and the reply template.
// Nothing may panic, a reply is one line of printable ASCII, and added
// header fields contain no line break other than folding.
func FuzzSession(f *testing.F) {
	f.Add("helo.pass.test", "alice@pass.test", "Authentication-Results", ourID+"; spf=pass", "127.0.0.2", "", false)
	f.Add("helo.fail.test", "<bob@fail.test>", "Subject", "hi", "IPv6:::1", "{helo} {explanation}", true)
	f.Add("evil\r\nX: y", "\"a b\"@pct.test", "authentication-results", "(x) "+ourID, "", "100% {sender}\n", true)
	f.Add("[127.0.0.2]", "", "From", "\x00\xff", "ipv6:garbage", "{", false)
	r := world()
	f.Fuzz(func(t *testing.T, helo, from, hname, hvalue, clientAddr, tmpl string, reject bool) {
		cfg := testConfig(r, func(c *Config) { c.RejectText = tmpl })
		if reject {
			all := map[spf.Result]Action{}
			for _, res := range []spf.Result{spf.None, spf.Neutral, spf.Fail, spf.Softfail, spf.Permerror} {
				all[res] = ActionReject
			}
			all[spf.Temperror] = ActionTempfail
			cfg.Policy = Policy{MailFrom: all, HELO: all}
		}
		s := &session{srv: NewServer(Options{Config: cfg})}
		var packet net.IP
		if strings.HasPrefix(clientAddr, "127.") {
			packet = net.ParseIP(clientAddr)
		}
		macros := map[string]string{"{client_addr}": clientAddr, "j": ourID}
		if _, err := s.Connect("client", "tcp4", 25, packet, &gomilter.Modifier{Macros: macros}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Helo(helo, &gomilter.Modifier{}); err != nil {
			t.Fatal(err)
		}
		resp, err := s.MailFrom(from, &gomilter.Modifier{Macros: map[string]string{"i": "Q"}})
		if err != nil {
			t.Fatal(err)
		}
		if msg := resp.Response(); msg.Code == byte(gomilter.ActReplyCode) {
			line := strings.TrimSuffix(string(msg.Data), "\x00")
			if len(line) < 11 || (line[0] != '4' && line[0] != '5') || line[3] != ' ' || line[4] != line[0] {
				t.Fatalf("malformed reply %q", line)
			}
			for _, c := range []byte(line) {
				if c < 0x20 || c > 0x7e {
					t.Fatalf("reply byte %#x in %q", c, line)
				}
			}
			if len(line)-len("550 5.7.23 ") > maxReplyText {
				t.Fatalf("reply too long: %d", len(line))
			}
			return
		}
		if _, err := s.Header(hname, hvalue, &gomilter.Modifier{}); err != nil {
			t.Fatal(err)
		}
		var ed editor
		if _, err := s.eom(&ed, map[string]string{"i": "Q"}); err != nil {
			t.Fatal(err)
		}
		for _, f := range ed.inserts {
			v := strings.ReplaceAll(f.value, "\r\n\t", "")
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("line break or NUL in %s: %q", f.name, f.value)
			}
		}
		for _, c := range ed.changes {
			if c.value != "" || !strings.EqualFold(hname, arName) {
				t.Fatalf("unexpected change %+v", c)
			}
		}
	})
}
