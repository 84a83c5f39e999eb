package spf_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// fuzzWorld is a fixed DNS world around the fuzzed record at example.com:
// includes and redirects back to it (loops), MX, PTR, void names and a
// failing name.
func fuzzWorld(record string) *spftest.Resolver {
	return &spftest.Resolver{
		TXT: map[string][]string{
			"example.com":        {record},
			"loop.example.com":   {"v=spf1 include:example.com redirect=example.com"},
			"pass.example.com":   {"v=spf1 +all"},
			"fail.example.com":   {"v=spf1 -all exp=exp.example.com"},
			"exp.example.com":    {"%{i} %{s} %{c} %{r} %{t} %{p}"},
			"two.example.com":    {"v=spf1 -all", "v=spf1 +all"},
			"mail.example.org":   {"v=spf1 a mx ptr -all"},
			"nodata.example.com": {"text"},
		},
		A: map[string][]netip.Addr{
			"mail.example.com":      {netip.MustParseAddr("192.0.2.1")},
			"mail.example.org":      {netip.MustParseAddr("192.0.2.1")},
			"3.2.0.192.example.com": {netip.MustParseAddr("127.0.0.2")},
		},
		AAAA: map[string][]netip.Addr{"mail.example.com": {netip.MustParseAddr("2001:db8::1")}},
		MX:   map[string][]string{"example.com": {"mail.example.com.", ""}, "mail.example.org": {"mail.example.com"}},
		PTR: map[string][]string{
			"192.0.2.1":   {"mail.example.com.", "other.example.net"},
			"2001:db8::1": {"mail.example.com"},
		},
		CNAME: map[string]string{"alias.example.com": "mail.example.com", "cl.example.com": "cl.example.com"},
		Fail:  map[string]error{"* down.example.com": spftest.ErrServFail, "A slow.example.com": spftest.ErrTimeout},
	}
}

var results = map[spf.Result]bool{
	spf.None: true, spf.Neutral: true, spf.Pass: true, spf.Fail: true,
	spf.Softfail: true, spf.Temperror: true, spf.Permerror: true,
}

// FuzzCheck runs whole checks of a fuzzed record, sender, HELO and client
// address. No input may panic or hang, and the outcome must respect the
// RFC 7208 §4.6.4 limits.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"v=spf1 mx a ptr -all",
		"v=spf1 include:loop.example.com -all",
		"v=spf1 include:fail.example.com include:pass.example.com -all",
		"v=spf1 redirect=fail.example.com",
		"v=spf1 exists:%{ir}.%{d} -all exp=exp.example.com",
		"v=spf1 a:nx1.example.com a:nx2.example.com a:nodata.example.com +all",
		"v=spf1 a:down.example.com a:slow.example.com",
		"v=spf1 ip6:2001:db8::/32 ip4:192.0.2.0/24 ~all",
		"v=spf1 include:two.example.com",
	} {
		f.Add(s, "user@example.com", "mail.example.org", []byte{192, 0, 2, 1})
		f.Add(s, "", "mail.example.org", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	}
	f.Fuzz(func(t *testing.T, record, sender, helo string, ipb []byte) {
		ip, ok := netip.AddrFromSlice(ipb)
		if !ok {
			ip = netip.MustParseAddr("192.0.2.1")
		}
		c := &spf.Checker{Resolver: fuzzWorld(record), Timeout: 5 * time.Second}
		args := spf.Args{IP: ip, Sender: sender, HELO: helo, Trace: len(ipb)%2 == 0}
		for _, o := range []spf.Outcome{c.CheckMailFrom(context.Background(), args), c.CheckHELO(context.Background(), args)} {
			if !results[o.Result] {
				t.Fatalf("result %q", o.Result)
			}
			if o.DNSLookups > spf.MaxDNSTerms || o.VoidLookups > spf.MaxVoidLookups {
				t.Fatalf("limits exceeded: %+v", o)
			}
			if (o.Result == spf.Fail) != (o.Explanation != "") {
				t.Fatalf("explanation %q with %s", o.Explanation, o.Result)
			}
			if (o.Result == spf.Permerror || o.Result == spf.Temperror || o.Result == spf.None) && o.Problem == "" {
				t.Fatalf("%s without a problem: %+v", o.Result, o)
			}
			if o.Result != spf.None && o.Mechanism == "" && o.Result != spf.Permerror && o.Result != spf.Temperror {
				t.Fatalf("%s without a mechanism", o.Result)
			}
		}
	})
}
