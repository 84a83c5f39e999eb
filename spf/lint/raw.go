package lint

import (
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/internal/dnsname"
	"github.com/spfmilter/spfmilter/spf"
)

// checkRaw looks at the whole TXT answer of name once, and at its type SPF
// records: what the engine's lookups do not show.
func (w *walker) checkRaw(name string, path []string) {
	if w.raw[name] {
		return
	}
	w.raw[name] = true
	if m, err := w.res.Exchange(w.ctx, name, dns.TypeTXT); err == nil {
		// The size of the reply a client without EDNS0 would need
		// (RFC 7208 §3.4).
		plain := m.Copy()
		plain.Extra = slices.DeleteFunc(plain.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
		plain.Compress = true
		if n := plain.Len(); n > udpLimit {
			w.add("udp-size", path, "", "the TXT answer for %s is %d bytes, over the %d a UDP reply without EDNS0 holds; receivers must retry over TCP", name, n, udpLimit)
		}
		for _, rr := range m.Answer {
			t, ok := rr.(*dns.TXT)
			if !ok {
				continue
			}
			joined := joinTXT(t.Txt)
			if !spf.IsRecord(joined) {
				continue
			}
			w.octets[name] = joined
			w.pieces[name] = len(t.Txt)
			if len(joined) > maxString {
				w.add("long-record", path, "", "the SPF record of %s is %d bytes, published as %d strings", name, len(joined), len(t.Txt))
			}
		}
	}
	if m, err := w.res.Exchange(w.ctx, name, dns.TypeSPF); err == nil {
		for _, rr := range m.Answer {
			if s, ok := rr.(*dns.SPF); ok && spf.IsRecord(strings.Join(s.Txt, "")) {
				w.add("spf-type99", path, "", "%s publishes a type SPF (99) record", name)
				break
			}
		}
	}
}

// joinTXT is the octets of a TXT record's character-strings, given in
// miekg/dns presentation form, joined as RFC 7208 §3.3 says.
func joinTXT(strs []string) string {
	var b strings.Builder
	for _, t := range strs {
		b.WriteString(dnsname.UnescapeTXT(t))
	}
	return b.String()
}
