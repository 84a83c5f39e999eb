package spftest

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/spf"
)

func testWorld() *Resolver {
	return &Resolver{
		TXT: map[string][]string{
			"example.com":      {"v=spf1 ip4:192.0.2.0/24 -all", "other"},
			"long.example.com": {"v=spf1 " + strings.Repeat("ip4:192.0.2.1 ", 30) + "-all"},
			"Mixed.Example.":   {"mixed"},
		},
		A: map[string][]netip.Addr{
			"example.com":      {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
			"mail.example.com": {netip.MustParseAddr("192.0.2.10")},
		},
		AAAA: map[string][]netip.Addr{
			"example.com": {netip.MustParseAddr("2001:db8::1")},
		},
		MX: map[string][]string{
			"example.com": {"mail.example.com", "mx2.example.com."},
		},
		PTR: map[string][]string{
			"192.0.2.10":    {"mail.example.com"},
			"2001:db8::abc": {"v6.example.com"},
		},
		CNAME: map[string]string{
			"alias.example.com":  "alias2.example.com",
			"alias2.example.com": "example.com",
			"loop1.example.com":  "loop2.example.com",
			"loop2.example.com":  "loop1.example.com",
		},
		Fail: map[string]error{
			"TXT servfail.example.com": ErrServFail,
			"* refused.example.com":    ErrRefused,
			"TXT timeout.example.com":  ErrTimeout,
			"A gone.example.com":       spf.ErrNotFound,
		},
	}
}

func exchange(t *testing.T, s *Server, netw, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m, err := tryExchange(s, netw, name, qtype, edns, 2*time.Second)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", dns.TypeToString[qtype], name, netw, err)
	}
	return m
}

func tryExchange(s *Server, netw, name string, qtype uint16, edns bool, timeout time.Duration) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		q.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: netw, Timeout: timeout}
	m, _, err := c.Exchange(q, s.Addr())
	return m, err
}

func TestServerAnswers(t *testing.T) {
	s := NewServer(t, testWorld())
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want 127.0.0.1 and a real port", s.Addr())
	}
	tests := []struct {
		name  string
		qtype uint16
		want  []string // rdata, in order
	}{
		{"example.com", dns.TypeTXT, []string{`"v=spf1 ip4:192.0.2.0/24 -all"`, `"other"`}},
		{"EXAMPLE.com.", dns.TypeTXT, []string{`"v=spf1 ip4:192.0.2.0/24 -all"`, `"other"`}},
		{"mixed.example", dns.TypeTXT, []string{`"mixed"`}},
		{"example.com", dns.TypeA, []string{"192.0.2.1", "192.0.2.2"}},
		{"example.com", dns.TypeAAAA, []string{"2001:db8::1"}},
		{"example.com", dns.TypeMX, []string{"10 mail.example.com.", "20 mx2.example.com."}},
		{"10.2.0.192.in-addr.arpa", dns.TypePTR, []string{"mail.example.com."}},
		{"c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", dns.TypePTR, []string{"v6.example.com."}},
	}
	for _, tc := range tests {
		m := exchange(t, s, "udp", tc.name, tc.qtype, true)
		if m.Rcode != dns.RcodeSuccess {
			t.Errorf("%s %s: rcode %s", dns.TypeToString[tc.qtype], tc.name, dns.RcodeToString[m.Rcode])
			continue
		}
		var got []string
		for _, rr := range m.Answer {
			if rr.Header().Ttl != DefaultTTL {
				t.Errorf("%s: TTL %d, want %d", rr, rr.Header().Ttl, DefaultTTL)
			}
			got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s %s = %q, want %q", dns.TypeToString[tc.qtype], tc.name, got, tc.want)
		}
	}
}

func TestServerLongTXTIsSplit(t *testing.T) {
	w := testWorld()
	s := NewServer(t, w)
	m := exchange(t, s, "udp", "long.example.com", dns.TypeTXT, true)
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v, want one TXT", m.Answer)
	}
	txt := m.Answer[0].(*dns.TXT).Txt
	if len(txt) < 2 {
		t.Fatalf("%d character-strings, want several for a %d-byte record", len(txt), len(w.TXT["long.example.com"][0]))
	}
	for _, part := range txt {
		if len(part) > 255 {
			t.Errorf("character-string of %d bytes", len(part))
		}
	}
	if got := strings.Join(txt, ""); got != w.TXT["long.example.com"][0] {
		t.Errorf("joined = %q, want the record", got)
	}
}

func TestServerNegativeAnswers(t *testing.T) {
	s := NewServer(t, testWorld())
	s.SetNegativeTTL(60)
	tests := []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"nowhere.example.com", dns.TypeTXT, dns.RcodeNameError},
		{"mail.example.com", dns.TypeTXT, dns.RcodeSuccess}, // exists, no TXT
		{"example.com", dns.TypeSPF, dns.RcodeSuccess},
		{"1.1.1.1.in-addr.arpa", dns.TypePTR, dns.RcodeNameError},
		{"10.2.0.192.in-addr.arpa", dns.TypeA, dns.RcodeSuccess},
		{"gone.example.com", dns.TypeA, dns.RcodeNameError},
	}
	for _, tc := range tests {
		m := exchange(t, s, "udp", tc.name, tc.qtype, false)
		if m.Rcode != tc.rcode || len(m.Answer) != 0 {
			t.Errorf("%s %s: rcode %s, %d answers; want %s and none", dns.TypeToString[tc.qtype], tc.name,
				dns.RcodeToString[m.Rcode], len(m.Answer), dns.RcodeToString[tc.rcode])
		}
		if len(m.Ns) != 1 {
			t.Errorf("%s %s: authority %v, want one SOA", dns.TypeToString[tc.qtype], tc.name, m.Ns)
			continue
		}
		soa, ok := m.Ns[0].(*dns.SOA)
		if !ok || soa.Minttl != 60 || soa.Hdr.Ttl != 60 {
			t.Errorf("%s %s: authority %v, want an SOA with TTL and minimum 60", dns.TypeToString[tc.qtype], tc.name, m.Ns[0])
		}
	}
}

func TestServerCNAME(t *testing.T) {
	s := NewServer(t, testWorld())
	m := exchange(t, s, "udp", "alias.example.com", dns.TypeA, true)
	var types []string
	for _, rr := range m.Answer {
		types = append(types, dns.TypeToString[rr.Header().Rrtype]+" "+rr.Header().Name)
	}
	want := "CNAME alias.example.com.|CNAME alias2.example.com.|A example.com.|A example.com."
	if strings.Join(types, "|") != want {
		t.Errorf("answer %q, want %q", types, want)
	}

	// A loop ends after both CNAMEs; the client sees it.
	m = exchange(t, s, "udp", "loop1.example.com", dns.TypeTXT, true)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
		t.Errorf("loop: rcode %s, answer %v; want the two CNAMEs", dns.RcodeToString[m.Rcode], m.Answer)
	}

	// Without chasing, only the first link.
	s.ChaseCNAME(false)
	m = exchange(t, s, "udp", "alias.example.com", dns.TypeA, true)
	if len(m.Answer) != 1 || m.Answer[0].(*dns.CNAME).Target != "alias2.example.com." {
		t.Errorf("no chase: answer %v, want one CNAME to alias2", m.Answer)
	}
}

func TestServerFailures(t *testing.T) {
	s := NewServer(t, testWorld())
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"servfail.example.com", dns.TypeTXT, dns.RcodeServerFailure},
		{"servfail.example.com", dns.TypeA, dns.RcodeNameError}, // only TXT fails
		{"refused.example.com", dns.TypeMX, dns.RcodeRefused},
	} {
		m := exchange(t, s, "udp", tc.name, tc.qtype, false)
		if m.Rcode != tc.rcode {
			t.Errorf("%s %s: rcode %s, want %s", dns.TypeToString[tc.qtype], tc.name,
				dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
		}
	}
	if _, err := tryExchange(s, "udp", "timeout.example.com", dns.TypeTXT, false, 200*time.Millisecond); err == nil {
		t.Error("timeout.example.com answered, want no reply")
	}
	s.Malformed("example.com")
	if m, err := tryExchange(s, "udp", "example.com", dns.TypeTXT, false, time.Second); err == nil {
		t.Errorf("malformed answer parsed: %v", m)
	}
}

func TestServerTruncation(t *testing.T) {
	s := NewServer(t, testWorld())
	s.Truncate("example.com")
	m := exchange(t, s, "udp", "example.com", dns.TypeTXT, true)
	if !m.Truncated || len(m.Answer) != 0 {
		t.Errorf("udp: TC=%v with %d answers, want TC=1 and none", m.Truncated, len(m.Answer))
	}
	m = exchange(t, s, "tcp", "example.com", dns.TypeTXT, true)
	if m.Truncated || len(m.Answer) != 2 {
		t.Errorf("tcp: TC=%v with %d answers, want the full answer", m.Truncated, len(m.Answer))
	}
	log := s.Log()
	if len(log) != 2 || log[0].Net != "udp" || log[1].Net != "tcp" || log[1].Type != "TXT" || log[1].Name != "example.com" {
		t.Errorf("log %+v, want a UDP then a TCP query for TXT example.com", log)
	}
	if s.QueryCount() != 2 || strings.Join(s.Queries(), ",") != "TXT example.com,TXT example.com" {
		t.Errorf("QueryCount %d, Queries %q", s.QueryCount(), s.Queries())
	}
	s.ResetLog()
	if s.QueryCount() != 0 {
		t.Errorf("QueryCount after ResetLog = %d", s.QueryCount())
	}
}

func TestServerTruncatesToClientSize(t *testing.T) {
	w := &Resolver{TXT: map[string][]string{}}
	var big []string
	for range 20 {
		big = append(big, strings.Repeat("x", 100))
	}
	w.TXT["big.example"] = big // about 2 kB
	s := NewServer(t, w)
	if m := exchange(t, s, "udp", "big.example", dns.TypeTXT, false); !m.Truncated {
		t.Error("2 kB over UDP without EDNS0: TC=0")
	}
	if m := exchange(t, s, "udp", "big.example", dns.TypeTXT, true); !m.Truncated {
		t.Error("2 kB over UDP with a 1232-byte EDNS0 buffer: TC=0")
	}
	if m := exchange(t, s, "tcp", "big.example", dns.TypeTXT, false); m.Truncated || len(m.Answer) != 20 {
		t.Errorf("tcp: TC=%v, %d answers; want all 20", m.Truncated, len(m.Answer))
	}
}

func TestServerSetTTLAndFixedAddress(t *testing.T) {
	s, err := StartServerAt("127.0.0.1:0", testWorld())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTTL(7)
	m := exchange(t, s, "tcp", "example.com", dns.TypeA, false)
	if len(m.Answer) == 0 || m.Answer[0].Header().Ttl != 7 {
		t.Errorf("answer %v, want TTL 7", m.Answer)
	}
	m = exchange(t, s, "tcp", "nowhere.example", dns.TypeA, false)
	if len(m.Ns) != 1 || m.Ns[0].(*dns.SOA).Minttl != 7 {
		t.Errorf("authority %v, want SOA minimum 7", m.Ns)
	}
}
