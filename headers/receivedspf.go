package headers

import (
	"net/netip"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/spf"
)

// ReceivedSPF is the content of a Received-SPF field (RFC 7208 §9.1). Its
// string fields may hold untrusted text: Value sanitizes them.
type ReceivedSPF struct {
	Result spf.Result
	// Receiver is this host's name for the comment and the receiver key; ""
	// leaves both out.
	Receiver string
	ClientIP netip.Addr // the client-ip key; left out when invalid
	// Relay is the x-relay key: the trusted relay ClientIP was learnt
	// from (RFC 7208 §9.1 allows further keys); left out when invalid.
	Relay netip.Addr
	// EnvelopeFrom is the MAIL FROM mailbox; "" is the null sender and is
	// written as envelope-from="".
	EnvelopeFrom string
	// Sender is the identity that was checked, named in the comment:
	// EnvelopeFrom, or postmaster@<HELO> for the null sender (RFC 7208 §2.4).
	Sender      string
	HELO        string       // the helo key; left out when ""
	Identity    spf.Identity // the identity key
	Mechanism   string       // the mechanism key, for pass, fail, softfail and neutral
	Problem     string       // the problem key, for none, temperror and permerror
	Explanation string       // for fail, appended to the comment
	// Rescue is the DKIM signing domain that vouched for the message
	// although its SPF result would have been rejected; "" when none.
	// The comment says so and a dkim-rescue key names the domain.
	Rescue string
}

// NewReceivedSPF returns the Received-SPF content for the MAIL FROM identity
// of in. For the null sender, envelope-from stays "" (the envelope carried no
// mailbox) while the comment names postmaster@<HELO>, the mailbox that was
// checked under identity=mailfrom (RFC 7208 §2.4).
func NewReceivedSPF(in Input) ReceivedSPF {
	o := in.MailFrom
	sender := o.Sender
	if sender == "" {
		sender = in.EnvelopeFrom
	}
	if sender == "" && in.HELO != "" {
		sender = "postmaster@" + in.HELO
	}
	id := o.Identity
	if id == "" {
		id = spf.IdentityMailFrom
	}
	return ReceivedSPF{
		Result:       o.Result,
		Receiver:     in.Receiver,
		ClientIP:     in.ClientIP,
		Relay:        in.Relay,
		EnvelopeFrom: in.EnvelopeFrom,
		Sender:       sender,
		HELO:         in.HELO,
		Identity:     id,
		Mechanism:    o.Mechanism,
		Problem:      problem(o),
		Explanation:  o.Explanation,
		Rescue:       rescueDomain(in.Rescue),
	}
}

func rescueDomain(s *dkim.Signature) string {
	if s == nil {
		return ""
	}
	return domainPvalue(s.Domain)
}

// problem is the problem key of o: for a permerror, its cause token first
// ("lookup_limit: more than 10 DNS-causing terms …"), so that the cause can
// be read back by splitting at the first ':'.
func problem(o spf.Outcome) string {
	if o.Result == spf.Permerror && o.Cause != "" {
		return string(o.Cause) + ": " + o.Problem
	}
	return o.Problem
}

// knownResult returns r if it is an RFC 7208 §2.6 result; anything else is
// reported as none, which claims nothing about the sender.
func knownResult(r spf.Result) spf.Result {
	switch r {
	case spf.None, spf.Neutral, spf.Pass, spf.Fail, spf.Softfail, spf.Temperror, spf.Permerror:
		return r
	}
	return spf.None
}

// Value returns the folded field value:
//
//	result (comment) client-ip=…; envelope-from=…; helo=…; receiver=…;
//	identity=…; mechanism=… | problem=…[; dkim-rescue=…]
//
// following RFC 7208 §9.1 (with erratum 5436) and the comment wording of its
// examples.
func (r ReceivedSPF) Value() string {
	res := knownResult(r.Result)
	ws := append([]string{string(res)}, words(r.comment(res))...)

	var kv []string
	if r.ClientIP.IsValid() {
		kv = append(kv, "client-ip="+atomOrQuoted(ipString(r.ClientIP)))
	}
	if r.Relay.IsValid() {
		kv = append(kv, "x-relay="+atomOrQuoted(ipString(r.Relay)))
	}
	kv = append(kv, "envelope-from="+atomOrQuoted(clean(r.EnvelopeFrom, maxMailbox)))
	if r.HELO != "" {
		kv = append(kv, "helo="+atomOrQuoted(clean(r.HELO, maxDomain)))
	}
	if r.Receiver != "" {
		kv = append(kv, "receiver="+atomOrQuoted(clean(r.Receiver, maxDomain)))
	}
	id := r.Identity
	if id == "" {
		id = spf.IdentityMailFrom
	}
	kv = append(kv, "identity="+atomOrQuoted(clean(string(id), maxText)))
	switch res {
	case spf.Pass, spf.Fail, spf.Softfail, spf.Neutral:
		if r.Mechanism != "" {
			kv = append(kv, "mechanism="+atomOrQuoted(clean(r.Mechanism, maxText)))
		}
	default:
		if r.Problem != "" {
			kv = append(kv, "problem="+atomOrQuoted(clean(r.Problem, maxText)))
		}
	}
	if r.Rescue != "" {
		kv = append(kv, "dkim-rescue="+atomOrQuoted(clean(r.Rescue, maxDomain)))
	}
	for i := range kv[:len(kv)-1] {
		kv[i] += ";"
	}
	return fold(NameReceivedSPF, append(ws, kv...))
}

// comment returns the text of the conventional comment, parentheses
// included, with the wording of RFC 7208 §9.1's examples and of the common
// implementations for the results the RFC shows no example of.
func (r ReceivedSPF) comment(res spf.Result) string {
	s := clean(r.Sender, maxMailbox)
	if s == "" {
		s = "<>"
	}
	ip := "an unknown address"
	if r.ClientIP.IsValid() {
		ip = ipString(r.ClientIP)
	}
	var text string
	switch res {
	case spf.Pass:
		text = "domain of " + s + " designates " + ip + " as permitted sender"
	case spf.Fail:
		text = "domain of " + s + " does not designate " + ip + " as permitted sender"
		if e := clean(r.Explanation, maxText); e != "" {
			text += "; explanation: " + e
		}
	case spf.Softfail:
		text = "domain of transitioning " + s + " does not designate " + ip + " as permitted sender"
	case spf.Neutral:
		text = ip + " is neither permitted nor denied by domain of " + s
	case spf.Temperror:
		text = "error in processing during lookup of " + s
	case spf.Permerror:
		text = "permanent error in processing domain of " + s
	default:
		text = "domain of " + s + " does not designate permitted sender hosts"
	}
	if d := clean(r.Rescue, maxDomain); d != "" {
		text += "; accepted: valid DKIM signature of " + d
	}
	if rcv := clean(r.Receiver, maxDomain); rcv != "" {
		text = rcv + ": " + text
	}
	return "(" + commentText(text) + ")"
}

// ipString writes IPv4-mapped IPv6 addresses as IPv4, as SPF evaluates them
// (RFC 7208 §5), and drops any zone.
func ipString(ip netip.Addr) string {
	return ip.Unmap().WithZone("").String()
}
