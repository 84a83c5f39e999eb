package headers

import (
	"slices"
	"strings"
	"unicode"

	"github.com/emersion/go-msgauth/authres"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/internal/dnsname"
	"github.com/spfmilter/spfmilter/spf"
)

// authResultsValue returns the folded Authentication-Results value
//
//	authserv-id;
//		spf=<result> smtp.mailfrom=<mailbox or domain>;
//		spf=<result> smtp.helo=<domain>;
//		dkim=<result> header.b=<b> header.d=<d> header.s=<selector>
//
// formatted by authres.Format, one resinfo per line. ok is false when the
// authserv-id is unusable.
//
// Every property value passed to authres is one that authres writes unquoted
// and that authres.Parse, which splits on white space and does not unquote,
// reads back unchanged. So:
//   - smtp.mailfrom is the mailbox when its local-part is a dot-atom of
//     letters, digits and the punctuation authres leaves bare; otherwise
//     (quoted local-parts, SRS and BATV addresses with '=') only the domain,
//     which RFC 8601 §2.3's pvalue allows. The null sender is reported as
//     postmaster@<HELO>, the mailbox that was checked (RFC 7208 §2.4).
//   - Domains are A-labels (RFC 8616 allows them in any message).
//   - The HELO resinfo is left out when the HELO was not checked
//     (HELOResult nil or NotChecked: no SPF result exists, RFC 7208 §2.3)
//     and when the HELO is not a domain name (an address literal, garbage):
//     a bare "spf=<result>" could not be told from the MAIL FROM result.
//   - reason= is written for a permerror only, and only as its cause token
//     (spf.Cause, e.g. reason=lookup_limit), which authres writes unquoted
//     and reads back: free text would need quoting, and the problem is in
//     Received-SPF below.
func authResultsValue(in Input) (string, bool) {
	id := authservToken(in.AuthservID)
	if id == "" {
		return "", false
	}
	results := []authres.Result{&authres.SPFResult{
		Value:  resultValue(in.MailFrom.Result),
		Reason: reason(in.MailFrom),
		From:   mailfromPvalue(in),
	}}
	if in.HELOResult != nil && !in.HELOResult.NotChecked {
		if d := domainPvalue(in.HELO); d != "" {
			results = append(results, &authres.SPFResult{
				Value:  resultValue(in.HELOResult.Result),
				Reason: reason(*in.HELOResult),
				Helo:   d,
			})
		}
	}
	for _, sig := range in.DKIM {
		results = append(results, dkimResult(sig))
	}
	// The authserv-id and every value are free of spaces and ';', so the
	// formatted text splits back into its resinfos and words exactly.
	parts := strings.Split(authres.Format(id, results), ";")
	groups := make([][]string, len(parts))
	for i, p := range parts {
		groups[i] = words(p)
		for j, w := range groups[i] {
			// RFC 8601 §2.2: a pvalue without '@' is an RFC 2045 token or a
			// quoted-string, and '/' (base64 in header.b) is a tspecial;
			// authres writes it bare, as it would in a local-part.
			if b, ok := strings.CutPrefix(w, "header.b="); ok && strings.Contains(b, "/") {
				groups[i][j] = `header.b="` + b + `"`
			}
		}
		if i < len(parts)-1 && len(groups[i]) > 0 {
			groups[i][len(groups[i])-1] += ";"
		}
	}
	return fold(NameAuthenticationResults, groups...), true
}

// dkimResult is one signature's resinfo (RFC 8601 §2.7.1) with header.d,
// header.s and header.b (RFC 6008 §4); a property whose value is not a
// domain name (b= is kept to base64 characters by dkim) is left out.
func dkimResult(sig dkim.Signature) authres.Result {
	p := map[string]string{}
	if d := domainPvalue(sig.Domain); d != "" {
		p["header.d"] = d
	}
	if s := domainPvalue(sig.Selector); s != "" {
		p["header.s"] = s
	}
	if sig.B != "" && len(sig.B) <= dkim.BPrefix && strings.Trim(sig.B, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") == "" {
		p["header.b"] = sig.B
	}
	return &authres.GenericResult{Method: "dkim", Value: dkimValue(sig.Result), Params: p}
}

// dkimValue is r when it is an RFC 8601 §2.7.1 result, else permerror.
func dkimValue(r dkim.Result) authres.ResultValue {
	switch r {
	case dkim.Pass, dkim.Fail, dkim.Policy, dkim.Neutral, dkim.Temperror, dkim.Permerror:
		return authres.ResultValue(r)
	}
	return authres.ResultPermError
}

// reason is the reason of a permerror: its cause token, when it is one of
// spf.Causes (a token authres writes bare).
func reason(o spf.Outcome) string {
	if o.Result == spf.Permerror && slices.Contains(spf.Causes(), o.Cause) {
		return string(o.Cause)
	}
	return ""
}

// resultValue maps an SPF result to its RFC 8601 §2.7.2 result word, which
// for SPF is the same token.
func resultValue(r spf.Result) authres.ResultValue {
	return authres.ResultValue(knownResult(r))
}

// mailfromPvalue is the smtp.mailfrom property: see authResultsValue.
func mailfromPvalue(in Input) string {
	addr := in.EnvelopeFrom
	if addr == "" {
		addr = "postmaster@" + in.HELO
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return domainPvalue(addr)
	}
	d := domainPvalue(addr[at+1:])
	if d == "" {
		return ""
	}
	if local := addr[:at]; len(local) <= 64 && bareLocalPart(local) { // RFC 5321 §4.5.3.1.1
		return local + "@" + d
	}
	return d
}

// bareLocalPart reports whether authres writes local unquoted: a dot-atom
// whose characters are letters, digits, or punctuation in both RFC 5322 atext
// and authres's unquoted set.
func bareLocalPart(local string) bool {
	if !isDotAtom(local) {
		return false
	}
	for _, r := range local {
		if r != '.' && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("#$%&'*+-/^_`{|}~", r) {
			return false
		}
	}
	return true
}

// domainPvalue returns d as a lower-case A-label domain name without a
// trailing dot, or "" when d is not a domain name. Underscores are allowed:
// SPF names often carry them. The notion is the SPF engine's
// (internal/dnsname), so that the header names what was checked.
func domainPvalue(d string) string {
	a, ok := dnsname.Normalize(d)
	if !ok {
		return ""
	}
	return a
}

// authservToken returns the authserv-id as written: A-labels for an IDN
// domain, and only when the result is a MIME token without tspecials that
// authres.Format can write unquoted; "" otherwise.
func authservToken(id string) string {
	id = strings.TrimSpace(id)
	if id == "" {
		return ""
	}
	if d := domainPvalue(id); d != "" {
		return d
	}
	if len(id) > maxDomain || id == "." {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if !isTokenByte(id[i]) || id[i] >= 0x80 {
			return ""
		}
	}
	return id
}

// ValidAuthservID reports whether id can be used as this host's authserv-id:
// a domain name (U-labels are written as A-labels) or another RFC 2045 token.
// RFC 8601 §2.5 recommends the host's domain name.
func ValidAuthservID(id string) bool {
	return authservToken(id) != ""
}
