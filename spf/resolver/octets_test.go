package resolver

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// Names and strings cross the resolver as raw octets: the TXT text is the
// octets of the record, whatever miekg/dns's presentation form escapes, and a
// name a macro produced goes on the wire as its own octets and is found.
func TestOctetsOverTheWire(t *testing.T) {
	long := strings.Repeat("x", 254) + `"\` + "\xe9" + strings.Repeat("y", 300) // escapes across the 255-octet cut
	odd := []string{
		"a b.example.com", "a@b.example.com", "o'hara.example.com", "a(b).example.com",
		`q"q.example.com`, `back\slash.example.com`, "semi;colon.example.com",
		"tab\tand\x00nul.example.com", "\xe9t\xe9.example.com", `\065.example.com`,
	}
	texts := map[string]string{
		"quote.example.com": `say "hi"`,
		"bs.example.com":    `a\b \065 \\`,
		"tab.example.com":   "a\tb",
		"latin.example.com": "v=spf1 caf\xe9 -all",
		"utf8.example.com":  "v=spf1 café -all",
		"long.example.com":  long,
	}
	w := &spftest.Resolver{
		TXT: map[string][]string{},
		A:   map[string][]netip.Addr{},
		MX:  map[string][]string{"mx.example.com": {"A B.example.com", "ok.example.com"}},
		PTR: map[string][]string{"192.0.2.7": {"o'hara.Example.com", `back\slash.example.com.`}},
	}
	for n, txt := range texts {
		w.TXT[n] = []string{txt}
	}
	for _, n := range odd {
		w.TXT[n] = []string{"text of " + n}
		w.A[n] = []netip.Addr{netip.MustParseAddr("192.0.2.9")}
	}
	s := spftest.NewServer(t, w)
	c := newClient(t, Options{Servers: []string{s.Addr()}, CacheSize: -1})

	for n, want := range texts {
		got, err := c.LookupTXT(ctx(t), n)
		if err != nil || !slices.Equal(got, []string{want}) {
			t.Errorf("TXT %s = %q, %v; want %q", n, got, err, want)
		}
	}
	for _, n := range odd {
		got, err := c.LookupTXT(ctx(t), n)
		if err != nil || !slices.Equal(got, []string{"text of " + n}) {
			t.Errorf("TXT %q = %q, %v; want its record", n, got, err)
		}
		// Upper case on the way in, as a macro of a mixed-case sender gives.
		up := []byte(n)
		if 'a' <= up[0] && up[0] <= 'z' {
			up[0] -= 'a' - 'A'
		}
		if addrs, err := c.LookupA(ctx(t), string(up)); err != nil || len(addrs) != 1 {
			t.Errorf("A %q = %v, %v; want its address", n, addrs, err)
		}
	}
	// The server saw each name as its octets.
	seen := map[string]bool{}
	for _, q := range s.Log() {
		seen[q.Name] = true
	}
	for _, n := range odd {
		if !seen[n] {
			t.Errorf("server never asked for %q; asked %q", n, s.Queries())
		}
	}
	if mx, err := c.LookupMX(ctx(t), "mx.example.com"); err != nil || !slices.Equal(mx, []string{"a b.example.com", "ok.example.com"}) {
		t.Errorf("MX = %q, %v; want the exchange names as octets", mx, err)
	}
	if ptr, err := c.LookupPTR(ctx(t), netip.MustParseAddr("192.0.2.7")); err != nil || !slices.Equal(ptr, []string{"o'hara.example.com", `back\slash.example.com`}) {
		t.Errorf("PTR = %q, %v; want the names as octets", ptr, err)
	}
}

// A reply's question and owner names match ours as octets up to case,
// however the server escapes them; a different octet is another question.
func TestQuestionMatchedAsOctets(t *testing.T) {
	addr := handlerServer(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		switch q := req.Question[0].Name; {
		case strings.HasPrefix(q, `a\@b`):
			m.Question[0].Name = `\065\064B.Example.`
			m.Answer = []dns.RR{&dns.TXT{
				Hdr: dns.RR_Header{Name: `A\@\066.example.`, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{`it\"s`},
			}}
		case strings.HasPrefix(q, `c\@d`):
			m.Question[0].Name = `c\@e.example.`
		}
		w.WriteMsg(m)
	})
	c := newClient(t, Options{Servers: []string{addr}})
	if txt, err := c.LookupTXT(ctx(t), "a@b.example"); err != nil || !slices.Equal(txt, []string{`it"s`}) {
		t.Errorf("TXT a@b.example = %q, %v; want the answer, matched however escaped", txt, err)
	}
	if _, err := c.LookupTXT(ctx(t), "c@d.example"); err == nil {
		t.Error("an answer to another name was taken")
	}
}
