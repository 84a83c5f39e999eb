package milter

import (
	"cmp"
	"net/netip"
	"strings"

	"github.com/spfmilter/spfmilter/spf"
)

// DefaultRejectText is the reply text used when Config.RejectText is empty.
const DefaultRejectText = "SPF {result} for {domain}: {explanation}"

// maxReplyText caps the reply text (after escaping). With the status codes
// and the address Sendmail puts in front, the reply line stays well within
// the 512 octets of RFC 5321 §4.5.3.1.5.
const maxReplyText = 200

// replyFacts are the values a reply template can use.
type replyFacts struct {
	out  *spf.Outcome
	ip   netip.Addr
	helo string
}

// expandReply fills the placeholders of tmpl:
//
//	{result}       the SPF result, e.g. "fail"
//	{identity}     "helo" or "mailfrom"
//	{domain}       the domain checked
//	{sender}       the identity checked, e.g. "alice@example.com"
//	{ip}           the SMTP client's address
//	{helo}         the HELO/EHLO name
//	{explanation}  the record's explanation (RFC 7208 §6.2) for fail, else
//	               the reason for permerror and temperror, else a fixed phrase
//
// Unknown placeholders stay as they are.
func expandReply(tmpl string, f replyFacts) string {
	o := f.out
	ip := "unknown"
	if f.ip.IsValid() {
		ip = f.ip.String()
	}
	domain := cmp.Or(o.Domain, "unknown")
	expl := o.Explanation
	if expl == "" {
		expl = o.Problem
	}
	if expl == "" {
		expl = defaultExplanation(o.Result, domain, ip)
	}
	return strings.NewReplacer(
		"{result}", string(o.Result),
		"{identity}", string(o.Identity),
		"{domain}", domain,
		"{sender}", o.Sender,
		"{ip}", ip,
		"{helo}", f.helo,
		"{explanation}", expl,
	).Replace(cmp.Or(tmpl, DefaultRejectText))
}

func defaultExplanation(r spf.Result, domain, ip string) string {
	switch r {
	case spf.None:
		return domain + " publishes no SPF policy"
	case spf.Permerror:
		return "the SPF record of " + domain + " is invalid"
	case spf.Temperror:
		return "the SPF record of " + domain + " could not be read"
	case spf.Pass:
		return domain + " designates " + ip + " as permitted sender"
	}
	return domain + " does not designate " + ip + " as permitted sender"
}

// sectionSign spells out the section sign that problem texts use ("RFC
// 7208 §2.3" becomes "RFC 7208 section 2.3").
var sectionSign = strings.NewReplacer("§ ", "section ", "§", "section ")

// sanitizeReply makes s safe as the text of one SMTP reply line sent with
// SMFIR_REPLYCODE: printable ASCII only (CR, LF, tabs and other controls
// become spaces, '§' the word "section", other characters '?'), runs of
// spaces collapsed, '%' doubled because Sendmail uses the reply as a format
// string and Postfix turns "%%" back into "%" (postfix milter8.c), and at
// most maxReplyText bytes without splitting a "%%".
//
// Reply text is US-ASCII (RFC 5321 §4.2, textstring); RFC 6531 allows UTF-8
// only in a transaction whose MAIL command carried SMTPUTF8. The milter
// cannot know that: the MTAs send the MAIL parameters after the address in
// SMFIC_MAIL, but go-milter v0.5.0 hands MailFrom the address alone
// (TestLibraryMailArgument), and neither MTA has a macro for it. So every
// reply is ASCII.
func sanitizeReply(s string) string {
	s = sectionSign.Replace(s)
	var b strings.Builder
	space := true // drops leading spaces
	for _, r := range s {
		var c byte
		switch {
		case r <= ' ' || r == 0x7f:
			if space {
				continue
			}
			space = true
			c = ' '
		case r > 0x7e:
			space = false
			c = '?'
		default:
			space = false
			c = byte(r)
		}
		n := 1
		if c == '%' {
			n = 2
		}
		if b.Len()+n > maxReplyText {
			break
		}
		b.WriteByte(c)
		if c == '%' {
			b.WriteByte('%')
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// replyFor is the full SMFIR_REPLYCODE text for a reject or tempfail.
func replyFor(v verdict, tmpl string, ip netip.Addr, helo string) string {
	text := sanitizeReply(expandReply(tmpl, replyFacts{out: v.Outcome, ip: ip, helo: helo}))
	if text == "" {
		text = sanitizeReply(expandReply(DefaultRejectText, replyFacts{out: v.Outcome, ip: ip, helo: helo}))
	}
	return replyCode(v) + " " + text
}

// quarantineReason is the reason sent with SMFIR_QUARANTINE, which Postfix
// logs with the hold and Sendmail keeps in the queue file: the result, its
// cause for a permerror, the identity and its domain, on one sanitised line.
func quarantineReason(o *spf.Outcome) string {
	r := "SPF " + string(o.Result)
	if o.Cause != "" {
		r += " (" + string(o.Cause) + ")"
	}
	r += " for " + string(o.Identity)
	if o.Domain != "" {
		r += " " + o.Domain
	}
	return strings.ReplaceAll(sanitizeReply(r), "%%", "%")
}
