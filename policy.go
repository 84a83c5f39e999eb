package main

import (
	"cmp"

	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
)

// policy turns the reject lists into the milter's table. A temperror is
// deferred for MAIL FROM when defer_temperror is on, and for HELO only when
// HELO results are acted on at all (reject_helo is set): a HELO that is never
// enforced must not hold mail back because its DNS is down.
func policy(c *Config) milter.Policy {
	p := milter.Policy{
		MailFrom: map[spf.Result]milter.Action{},
		HELO:     map[spf.Result]milter.Action{},
	}
	for _, r := range c.Reject {
		p.MailFrom[r] = milter.ActionReject
	}
	for _, r := range c.RejectHELO {
		p.HELO[r] = milter.ActionReject
	}
	if c.DeferTemperror {
		p.MailFrom[spf.Temperror] = milter.ActionTempfail
		if len(c.RejectHELO) > 0 {
			p.HELO[spf.Temperror] = milter.ActionTempfail
		}
	}
	return p
}

// milterConfig is the milter's reloadable configuration for c, checking with
// r.
func milterConfig(c *Config, r spf.Resolver) *milter.Config {
	return &milter.Config{
		Checker: &spf.Checker{
			Resolver: r,
			Timeout:  c.CheckTimeout,
			Receiver: receiverName(c),
		},
		Policy:            policy(c),
		AuthservID:        c.AuthservID,
		Receiver:          c.Receiver,
		HideReceiver:      c.HideReceiver,
		TrustedNetworks:   c.TrustedNetworks,
		SkipAuthenticated: c.SkipAuthenticated,
		DryRun:            c.DryRun,
		RejectText:        c.RejectText,
	}
}

// receiverName is the receiver setting, else the host name, else "unknown"
// (the word RFC 7208 §7.3 gives %{r} when the name is not known).
func receiverName(c *Config) string {
	if c.Receiver != "" {
		return c.Receiver
	}
	h, _ := hostname()
	return cmp.Or(h, "unknown")
}
