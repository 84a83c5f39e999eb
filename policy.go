package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

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

// actionRule is one entry of the actions setting.
type actionRule struct {
	Identity spf.Identity
	Result   spf.Result
	Cause    spf.Cause // only with permerror; "" for every permerror
	Action   milter.Action
}

// actionWords are the actions setting's words for the milter's actions.
var actionWords = map[string]milter.Action{
	"reject":     milter.ActionReject,
	"defer":      milter.ActionTempfail,
	"quarantine": milter.ActionQuarantine,
	"mark":       milter.ActionAccept,
}

// parseActionRule reads IDENTITY.RESULT[.CAUSE]=ACTION.
func parseActionRule(v string) (actionRule, error) {
	bad := func(why string) (actionRule, error) {
		return actionRule{}, fmt.Errorf("bad action %q (%s)", v, why)
	}
	lhs, word, ok := strings.Cut(strings.ToLower(strings.TrimSpace(v)), "=")
	if !ok {
		return bad("want IDENTITY.RESULT[.CAUSE]=ACTION, e.g. mailfrom.fail=quarantine")
	}
	parts := strings.Split(strings.TrimSpace(lhs), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("want IDENTITY.RESULT[.CAUSE]=ACTION, e.g. mailfrom.fail=quarantine")
	}
	var r actionRule
	switch id := spf.Identity(parts[0]); id {
	case spf.IdentityHELO, spf.IdentityMailFrom:
		r.Identity = id
	default:
		return bad("identity must be helo or mailfrom")
	}
	r.Result = spf.Result(parts[1])
	switch {
	case r.Result == spf.Pass:
		return bad("pass is never acted on")
	case !slices.Contains(spf.Results(), r.Result):
		return bad("unknown result; want fail, softfail, neutral, none, temperror or permerror")
	}
	if len(parts) == 3 {
		r.Cause = spf.Cause(parts[2])
		switch {
		case r.Result != spf.Permerror:
			return bad("only permerror has causes")
		case !slices.Contains(spf.Causes(), r.Cause):
			return bad("unknown cause; want syntax, lookup_limit, void_lookup_limit, no_record, loop or multiple_records")
		}
	}
	a, ok := actionWords[strings.TrimSpace(word)]
	switch {
	case !ok:
		return bad("action must be reject, defer, quarantine or mark")
	case r.Result == spf.Temperror && a == milter.ActionReject:
		// RFC 7208 §8.6: a temperror is a transient failure.
		return bad("temperror takes defer, quarantine or mark")
	}
	r.Action = a
	return r, nil
}

// milterConfig is the milter's reloadable configuration for c, checking with
// r and caching parsed records in records (nil: spf's shared cache). The
// check command builds the same, so that it answers as the daemon.
func milterConfig(c *Config, r spf.Resolver, records *spf.RecordCache) *milter.Config {
	mc := liveConfig(c, r, records)
	if sc := shadowConfig(c); sc != nil {
		// The same checker: one engine, cache, limits and deadline.
		sh := liveConfig(sc, r, records)
		sh.Checker = mc.Checker
		mc.Shadow = sh
	}
	return mc
}

func liveConfig(c *Config, r spf.Resolver, records *spf.RecordCache) *milter.Config {
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
