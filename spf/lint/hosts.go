package lint

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/spfmilter/spfmilter/spf"
)

// checkPTRNames looks at the reverse entries of the hosts the tree names,
// when it uses ptr or %{p}: names beyond the tenth are never validated.
func (w *walker) checkPTRNames(domain string) {
	if !w.usesPTR {
		return
	}
	seen := map[netip.Addr]bool{}
	for _, a := range w.hosts {
		if seen[a] || len(seen) >= maxPTRHost {
			continue
		}
		seen[a] = true
		names, err := w.res.LookupPTR(w.ctx, a)
		if err == nil && len(names) > spf.MaxPTRNames {
			w.add("ptr-names", []string{domain}, "", "%s has %d PTR names", a, len(names))
		}
	}
}

// checkNoMail checks the names that never send mail: those given, and the
// domain itself when its null MX (RFC 7505) says it takes no mail.
func (w *walker) checkNoMail(domain string, names []string) {
	mx, err := w.res.LookupMX(w.ctx, domain)
	if err == nil && len(mx) == 1 && strings.TrimSuffix(mx[0], ".") == "" && w.rep.Record != "" {
		if authorises(w.rep.Record) {
			w.add("nonsending-host", []string{domain}, "", "%s declares with a null MX that it takes no mail, yet its SPF record authorises senders", domain)
		}
	}
	for _, n := range names {
		txts, err := w.res.LookupTXT(w.ctx, n)
		if err != nil && !errors.Is(err, spf.ErrNotFound) {
			w.add("dns-error", []string{n}, "", "TXT %s: %v", n, err)
			continue
		}
		var recs []string
		for _, t := range txts {
			if spf.IsRecord(t) {
				recs = append(recs, t)
			}
		}
		switch {
		case len(recs) == 0:
			w.add("nonsending-host", []string{n}, "", "%s sends no mail but has no SPF record", n)
		case len(recs) > 1:
			w.add("multiple-records", []string{n}, "", "%s has %d SPF records", n, len(recs))
		case authorises(recs[0]):
			w.add("nonsending-host", []string{n}, "", "%s sends no mail but its SPF record %q authorises senders", n, recs[0])
		}
	}
}

// authorises reports whether a record can pass anyone: any mechanism or
// redirect before a non-pass all. A record that does not parse passes no
// one.
func authorises(txt string) bool {
	rec, err := spf.ParseRecord(txt)
	if err != nil {
		return false
	}
	for _, t := range rec.Terms {
		if t.Mechanism == "all" {
			return t.Qualifier == spf.Pass
		}
		if t.Qualifier == spf.Pass {
			return true
		}
	}
	return rec.Redirect != nil
}
