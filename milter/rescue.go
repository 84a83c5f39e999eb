package milter

import (
	"context"
	"time"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/internal/lazyctx"
	"github.com/spfmilter/spfmilter/spf"
)

// Rescue is the dkim_rescue setting: which identifiers a DKIM signature may
// be aligned with to rescue a message whose MAIL FROM result is rejected.
//
// SPF fails for forwarded mail: the forwarder keeps the envelope sender and
// sends from its own address. Such mail usually still carries a valid DKIM
// signature of the sender's domain, and RFC 7489 §10.1 warns that rejecting
// on SPF before DMARC looks at DKIM loses it. With rescue on, a message
// whose MAIL FROM result calls for a reject is accepted at MAIL FROM and
// decided at end of message: it is rejected there, with the same reply,
// unless a valid signature is aligned (RFC 7489 §3.1.1, relaxed) with the
// MAIL FROM domain, or, for RescueFrom, with the RFC5322.From domain.
type Rescue string

// The dkim_rescue values.
const (
	RescueOff      Rescue = "off"
	RescueMailFrom Rescue = "mailfrom"
	RescueFrom     Rescue = "from"
)

// RescueLabels are the outcomes Observer.DKIMRescue reports.
func RescueLabels() []string {
	return []string{RescueRescued, RescueNotRescued, RescueTemperror, RescueOversized}
}

// Outcomes of a rescue, as the Observer counts them.
const (
	// RescueRescued: an aligned signature passed; the message is accepted.
	RescueRescued = "rescued"
	// RescueNotRescued: no aligned signature passed; the reject stands.
	RescueNotRescued = "not_rescued"
	// RescueTemperror: an aligned signature's key could not be fetched;
	// the message is deferred under defer_temperror, rejected otherwise.
	RescueTemperror = "temperror"
	// RescueOversized: the message was too large to verify; the reject
	// stands.
	RescueOversized = "oversized"
)

// rescueOn reports whether dkim_rescue is on; a nil cfg has it off.
func (cfg *Config) rescueOn() bool {
	return cfg != nil && cfg.DKIM != nil && (cfg.DKIMRescue == RescueMailFrom || cfg.DKIMRescue == RescueFrom)
}

// rescuable reports whether d waits for the end of message: rescue is on,
// and d rejects the message for its MAIL FROM result. A HELO rejection is
// not rescued: a signature speaks for a domain, not for a host's name.
func (cfg *Config) rescuable(d Decision) bool {
	return cfg.rescueOn() && d.Skip == "" && d.Action == ActionReject &&
		d.Identity == spf.IdentityMailFrom && d.MailFrom != nil
}

// Rescue decides at end of message a Decision whose Rescuable is set, from
// msg, the message in wire form (at most cfg.DKIM.Limit()+1 bytes of it:
// see dkim.Message). The result has DKIM set, and either Rescued with
// ActionAccept, or the MAIL FROM verdict as it was; when an aligned
// signature's key could not be fetched and the policy defers a MAIL FROM
// temperror (defer_temperror), ActionTempfail with a 451 reply. Key
// lookups share one check_timeout. A Decision that is not Rescuable is
// returned unchanged.
func (cfg *Config) Rescue(ctx context.Context, f Facts, d Decision, msg []byte) Decision {
	if !d.Rescuable {
		return d
	}
	ctx, cancel := lazyctx.WithDeadline(ctx, time.Now().Add(stageBudget(cfg.Checker)))
	defer cancel()
	out := cfg.DKIM.Verify(ctx, msg)
	d.DKIM = &out
	domains := []string{d.MailFrom.Domain}
	if cfg.DKIMRescue == RescueFrom {
		domains = append(domains, dkim.AuthorDomain(msg))
	}
	v := out.Vouches(domains...)
	switch {
	case v.OK:
		d.Rescued = v.Signature
		d.Action = ActionAccept
		d.Identity = ""
		d.Reply = ""
		d.RescueOutcome = RescueRescued
	case out.Oversized:
		d.RescueOutcome = RescueOversized
	case v.Temporary:
		d.RescueOutcome = RescueTemperror
		if cfg.Policy.MailFrom[spf.Temperror] == ActionTempfail {
			vd := verdict{Action: ActionTempfail, Outcome: d.MailFrom}
			d.Action = ActionTempfail
			d.Reply = replyFor(vd, cfg.RejectText, f.IP, f.HELO)
		}
	default:
		d.RescueOutcome = RescueNotRescued
	}
	return d
}
