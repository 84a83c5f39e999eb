package lint

import (
	"context"
	"errors"
	"strings"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/internal/dnsname"
	"github.com/spfmilter/spfmilter/spf"
)

// proposed answers the TXT questions for some names with records that are
// not published yet, in place of the SPF records that are, so that the walk
// and the engine both see them; everything else comes from DNS.
type proposed struct {
	Resolver
	records map[string]string // by lower-case name without the trailing dot
}

func (p *proposed) lookup(name string) (string, bool) {
	r, ok := p.records[strings.ToLower(strings.TrimSuffix(name, "."))]
	return r, ok
}

func (p *proposed) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := p.Resolver.LookupTXT(ctx, name)
	record, ok := p.lookup(name)
	if !ok {
		return txts, err
	}
	if err != nil && !errors.Is(err, spf.ErrNotFound) {
		return nil, err
	}
	out := []string{record}
	for _, t := range txts {
		if !spf.IsRecord(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Exchange gives the TXT answer as it will be once the record is published:
// the other TXT records, and the record cut into 255-byte strings.
func (p *proposed) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m, err := p.Resolver.Exchange(ctx, name, qtype)
	record, ok := p.lookup(name)
	if err != nil || qtype != dns.TypeTXT || !ok {
		return m, err
	}
	m = m.Copy()
	m.Rcode = dns.RcodeSuccess
	m.Ns = nil
	var ans []dns.RR
	for _, rr := range m.Answer {
		if t, ok := rr.(*dns.TXT); ok && spf.IsRecord(joinTXT(t.Txt)) {
			continue
		}
		ans = append(ans, rr)
	}
	var strs []string
	for r := record; r != ""; {
		n := min(len(r), maxString)
		strs = append(strs, dnsname.EscapeTXT(r[:n]))
		r = r[n:]
	}
	m.Answer = append(ans, &dns.TXT{
		Hdr: dns.RR_Header{Name: dns.Fqdn(strings.ToLower(name)), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 3600},
		Txt: strs,
	})
	return m, nil
}
