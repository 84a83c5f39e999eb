package milter

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/internal/lazyctx"
	"github.com/spfmilter/spfmilter/spf"
)

// Facts are what the MTA tells the milter about one MAIL command.
type Facts struct {
	IP     netip.Addr // the SMTP client; invalid when the MTA gave none
	HELO   string     // the last HELO/EHLO argument, "" when none was sent
	Sender string     // the MAIL FROM address without angle brackets; "" is the null sender
	// MTAName is the MTA's own name (macro j), "" when it sent none.
	MTAName string
	// Authenticated is set for a SASL-authenticated session (macro
	// {auth_authen}).
	Authenticated bool
	// Trace asks the checks for a step-by-step trace (spf.Args.Trace); the
	// check command sets it, the milter never does.
	Trace bool
}

// Decision is the milter's answer to one MAIL command.
type Decision struct {
	// Skip is the reason SPF was not evaluated (SkipTrustedNetwork, …); ""
	// when it was. A skipped message gets no SPF headers.
	Skip string
	// HELO is the HELO identity's outcome; its NotChecked is set when the
	// HELO names no domain. nil when SPF was skipped.
	HELO     *spf.Outcome
	MailFrom *spf.Outcome // nil when SPF was skipped
	Action   Action
	// Identity is the identity whose result decided a reject, tempfail or
	// quarantine; "" for accept.
	Identity spf.Identity
	// Reply is the SMTP reply for a reject or tempfail ("" otherwise).
	// Under Config.DryRun it is the reply that would have been sent.
	Reply string
	// Rescuable is set when the reject waits for the end of message, where
	// Config.Rescue decides it from the message's DKIM signatures.
	Rescuable bool
	// DKIM is the verification of the message's signatures; nil when the
	// message was not verified.
	DKIM *dkim.Outcome
	// Rescued is the signature that rescued the message; nil when none did.
	Rescued *dkim.Signature
	// RescueOutcome is what Rescue found (RescueLabels); "" before it ran.
	RescueOutcome string
	// Quarantine is the reason given to the MTA with a quarantine (""
	// otherwise); under Config.DryRun the one that would have been given.
	Quarantine string
	// Exempt is why a verdict other than accept was turned into accept
	// (ExemptForwarder, ExemptAllowHELO), "" otherwise; ExemptBy is the
	// forwarder domain or the HELO name that passed.
	Exempt   string
	ExemptBy string
	// Relay is the trusted relay the client was read behind (Facts.IP is
	// then the relay's client); invalid otherwise.
	Relay netip.Addr
	// Shadow is the verdict of Config.Shadow on the same outcomes (its
	// Action, Identity, Reply, Quarantine, Exempt); nil without a shadow
	// policy or when SPF was skipped.
	Shadow *Decision
}

// ShadowDiffers says whether the shadow policy's action differs from the
// live one.
func (d *Decision) ShadowDiffers() bool {
	return d.Shadow != nil && d.Shadow.Action != d.Action
}

// Evaluate answers one MAIL command as the milter does, with no earlier
// HELO result to reuse. The check command uses it to say what the daemon
// would do.
func (cfg *Config) Evaluate(ctx context.Context, f Facts) Decision {
	var hc *heloCheck
	return cfg.evaluate(ctx, f, &hc, nil)
}

// stageBudget is the one deadline of an SMTP stage: the HELO and MAIL FROM
// checks of one MAIL command share the checker's timeout, so that the MTA
// gets its answer within check_timeout of sending MAIL, whatever DNS does.
// Each check's own deadline (its start plus Checker.Timeout) falls later,
// so the stage's is the one that counts.
func stageBudget(c *spf.Checker) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return spf.DefaultTimeout
}

// evaluate is Evaluate with the connection's HELO result: *hc is reused
// when it holds the same HELO name checked by the same checker, and is
// replaced otherwise. obs, when not nil, is told about each identity
// actually evaluated (a reused HELO result is not reported again).
func (cfg *Config) evaluate(ctx context.Context, f Facts, hc **heloCheck, obs Observer) Decision {
	var d Decision
	switch {
	case !f.IP.IsValid():
		d.Skip = SkipNoClientIP
	case trusted(cfg.TrustedNetworks, f.IP):
		d.Skip = SkipTrustedNetwork
	case cfg.SkipAuthenticated && f.Authenticated:
		d.Skip = SkipAuthenticated
	}
	if d.Skip != "" {
		d.Action = ActionAccept
		return d
	}
	ctx, cancel := lazyctx.WithDeadline(ctx, time.Now().Add(stageBudget(cfg.Checker)))
	defer cancel()

	// RFC 7208 §2.3: the HELO identity first, then MAIL FROM (§2.4).
	if c := *hc; c == nil || c.name != f.HELO || c.checker != cfg.Checker {
		out := cfg.Checker.CheckHELO(ctx, spf.Args{IP: f.IP, HELO: f.HELO, Trace: f.Trace})
		observe(obs, &out)
		*hc = &heloCheck{name: f.HELO, checker: cfg.Checker, out: out}
	}
	helo := (*hc).out
	d.HELO = &helo
	mf := cfg.Checker.CheckMailFrom(ctx, spf.Args{IP: f.IP, Sender: f.Sender, HELO: f.HELO, Trace: f.Trace})
	observe(obs, &mf)
	d.MailFrom = &mf

	cfg.apply(ctx, f, &d)
	if cfg.Shadow != nil {
		sd := Decision{HELO: d.HELO, MailFrom: d.MailFrom}
		sh := *cfg.Shadow
		sh.Checker = cfg.Checker
		sh.RejectText = cfg.RejectText
		sh.apply(ctx, f, &sd)
		sd.HELO, sd.MailFrom = nil, nil
		d.Shadow = &sd
	}
	return d
}

// apply fills in d's verdict from its outcomes: the policy's action, then
// the exemptions (forwarders, allowed HELO names), then the reply.
func (cfg *Config) apply(ctx context.Context, f Facts, d *Decision) {
	v := decide(cfg.Policy, d.HELO, d.MailFrom)
	if v.Action != ActionAccept {
		d.Exempt, d.ExemptBy = cfg.exempt(ctx, f, d.HELO)
		if d.Exempt != "" {
			v = verdict{Action: ActionAccept}
		}
	}
	d.Action = v.Action
	switch v.Action {
	case ActionReject, ActionTempfail:
		d.Identity = v.Outcome.Identity
		d.Reply = replyFor(v, cfg.RejectText, f.IP, f.HELO)
	case ActionQuarantine:
		d.Identity = v.Outcome.Identity
		d.Quarantine = quarantineReason(v.Outcome)
	}
	d.Rescuable = cfg.rescuable(*d)
}

// exempt says whether the client is spared a verdict other than accept,
// and by which name: ExemptAllowHELO when its HELO identity passed SPF and
// is one of AllowHELO; ExemptForwarder when it passes SPF for one of
// ForwarderDomains, checked in order with the same checker and under the
// same deadline as the message's own checks. A name that matches without
// a pass exempts nobody: anyone can say any HELO or MAIL FROM.
func (cfg *Config) exempt(ctx context.Context, f Facts, helo *spf.Outcome) (reason, by string) {
	if helo != nil && !helo.NotChecked && helo.Result == spf.Pass && slices.Contains(cfg.AllowHELO, helo.Domain) {
		return ExemptAllowHELO, helo.Domain
	}
	for _, dom := range cfg.ForwarderDomains {
		if ctx.Err() != nil {
			break
		}
		// check_host(<ip>, <forwarder>, postmaster@<forwarder>): the
		// forwarder's own record, as for mail it sends in its own name.
		out := cfg.Checker.CheckMailFrom(ctx, spf.Args{IP: f.IP, Sender: "postmaster@" + dom, HELO: f.HELO})
		if out.Result == spf.Pass {
			return ExemptForwarder, dom
		}
	}
	return "", ""
}

// observe tells obs, when not nil, about one evaluated identity.
func observe(obs Observer, o *spf.Outcome) {
	if obs == nil {
		return
	}
	obs.SPFResult(string(o.Identity), resultLabel(o), o.Duration)
	if o.Result == spf.Permerror && !o.NotChecked {
		obs.Permerror(string(o.Identity), string(o.Cause))
	}
}

// Fields are the header fields the milter adds to a message that got d, in
// top-to-bottom order; none when SPF was skipped.
func (cfg *Config) Fields(f Facts, d Decision) []headers.Field {
	if d.Skip != "" || d.MailFrom == nil {
		return nil
	}
	id := cfg.authservID(f.MTAName)
	in := headers.Input{
		AuthservID:   id,
		ClientIP:     f.IP,
		HELO:         f.HELO,
		EnvelopeFrom: f.Sender,
		MailFrom:     *d.MailFrom,
		Relay:        d.Relay,
	}
	if d.HELO != nil && !d.HELO.NotChecked {
		in.HELOResult = d.HELO
	}
	if !cfg.HideReceiver {
		in.Receiver = cmp.Or(cfg.Receiver, id)
	}
	if d.DKIM != nil {
		in.DKIM = d.DKIM.Signatures
	}
	in.Rescue = d.Rescued
	return headers.Fields(in)
}

// authservID is the configured name, else the MTA's name (macro j), else
// the host name, else "localhost": the one fallback for this host's name.
// A nil cfg has no setting and no host name.
func (cfg *Config) authservID(mtaName string) string {
	if cfg == nil {
		return cmp.Or(mtaName, "localhost")
	}
	return cmp.Or(cfg.AuthservID, mtaName, cfg.HostName, "localhost")
}

// resultLabel is an outcome's result as the Observer and the log report
// it: the RFC 7208 result, or ResultNotChecked.
func resultLabel(o *spf.Outcome) string {
	switch {
	case o == nil:
		return ""
	case o.NotChecked:
		return ResultNotChecked
	}
	return string(o.Result)
}
