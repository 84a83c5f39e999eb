package main

import (
	"cmp"

	"github.com/spfmilter/spfmilter/dkim"
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
// r and caching parsed records in records (nil: spf's shared cache). The
// check command builds the same, so that it answers as the daemon.
func milterConfig(c *Config, r spf.Resolver, records *spf.RecordCache) *milter.Config {
	host := localHostName()
	return &milter.Config{
		Checker: &spf.Checker{
			Resolver: r,
			Records:  records,
			Timeout:  c.CheckTimeout,
			// %{r} (RFC 7208 §7.3); spf writes "unknown" when it is "".
			Receiver: cmp.Or(c.Receiver, host),
		},
		Policy:            policy(c),
		AuthservID:        c.AuthservID,
		HostName:          host,
		Receiver:          c.Receiver,
		HideReceiver:      c.HideReceiver,
		TrustedNetworks:   c.TrustedNetworks,
		SkipAuthenticated: c.SkipAuthenticated,
		DryRun:            c.DryRun,
		RejectText:        c.RejectText,
		DKIMRescue:        c.DKIMRescue,
		// Key lookups go through the same resolver as the SPF checks: its
		// cache, its timeouts, its DNS metrics.
		DKIM: &dkim.Verifier{Resolver: r, MaxBytes: c.DKIMMaxBytes, MaxSignatures: dkim.DefaultMaxSignatures},
	}
}

// localHostName is the system's host name, "" when it cannot be read. It is
// the one source of this host's name where the settings leave it open: the
// milter's authserv-id after the MTA's j macro (milter.Config.HostName),
// Received-SPF's receiver after the authserv-id, and %{r}.
func localHostName() string {
	h, err := hostname()
	if err != nil {
		return ""
	}
	return h
}
