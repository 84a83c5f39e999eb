package resolver

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzParseAnswer feeds arbitrary responses to the checks and the parser an
// upstream answer goes through: they must never panic, must never follow a
// CNAME chain past MaxCNAMEChain, and whatever they accept must be records of
// the type asked.
func FuzzParseAnswer(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("example.com.", dns.TypeTXT)
	for _, answer := range [][]string{
		{`example.com. 60 IN TXT "v=spf1 -all"`},
		{`example.com. 60 IN CNAME a.example.`, `a.example. 60 IN TXT "x" "y"`},
		{`example.com. 60 IN CNAME a.example.`, `a.example. 60 IN CNAME example.com.`},
		{`EXAMPLE.com. 60 IN TXT "upper"`, `other. 60 IN TXT "other"`, `example.com. 60 IN A 192.0.2.1`},
	} {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, s := range answer {
			rr, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	nx := new(dns.Msg)
	nx.SetRcode(q, dns.RcodeNameError)
	nx.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60}, Ns: "ns.", Mbox: "h.", Minttl: 30}}
	if b, err := nx.Pack(); err == nil {
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		r := new(dns.Msg)
		if r.Unpack(b) != nil {
			return
		}
		r.Id = q.Id
		if _, err := classify(q, r, nil); err != nil {
			return
		}
		seen := map[string]bool{"example.com.": true}
		a, err := parseAnswer(r, "example.com.", dns.TypeTXT, seen)
		if err != nil {
			return
		}
		if a.hops > MaxCNAMEChain {
			t.Fatalf("followed %d CNAMEs", a.hops)
		}
		if len(a.addrs) != 0 || len(a.names) != 0 {
			t.Fatalf("TXT question gave addresses %v or names %q", a.addrs, a.names)
		}
		if len(a.txt) > 0 && (a.nxdomain || a.next != "") {
			t.Fatalf("records and nxdomain %v / next %q at once", a.nxdomain, a.next)
		}
	})
}
