package main

import (
	"cmp"
	"os"
	"slices"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
)

// policy turns the reject lists into the milter's table. A temperror is
// deferred for MAIL FROM when defer_temperror is on, and for HELO only when
// HELO results are acted on at all (reject_helo is set): a HELO that is never
// enforced must not hold mail back because its DNS is down.
func policy(c *config.Config) milter.Policy {
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
	// The actions setting comes last and overrides: a later rule for the
	// same key wins.
	for _, r := range c.Actions {
		results, causes := p.MailFrom, &p.MailFromPermerror
		if r.Identity == spf.IdentityHELO {
			results, causes = p.HELO, &p.HELOPermerror
		}
		if r.Cause == "" {
			results[r.Result] = r.Action
			continue
		}
		if *causes == nil {
			*causes = map[spf.Cause]milter.Action{}
		}
		(*causes)[r.Cause] = r.Action
	}
	return p
}

// milterConfig is the milter's reloadable configuration for c, checking with
// r and caching parsed records in records (nil: spf's shared cache). The
// check command builds the same, so that it answers as the daemon.
func milterConfig(c *config.Config, r spf.Resolver, records *spf.RecordCache) *milter.Config {
	mc := liveConfig(c, r, records)
	if sc := config.ShadowConfig(c); sc != nil {
		// The same checker: one engine, cache, limits and deadline.
		sh := liveConfig(sc, r, records)
		sh.Checker = mc.Checker
		mc.Shadow = sh
	}
	return mc
}

func liveConfig(c *config.Config, r spf.Resolver, records *spf.RecordCache) *milter.Config {
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
		// The milter's own copy: a *milter.Config is never modified.
		NeverRejectRecipients: slices.Clone(c.NeverReject),
		ForwarderDomains:      slices.Clone(c.ForwarderDomains),
		AllowHELO:             slices.Clone(c.AllowHELO),
		TrustedRelays:         slices.Clone(c.TrustedRelays),
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

// hostname is os.Hostname, replaceable in tests.
var hostname = os.Hostname
