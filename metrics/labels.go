package metrics

import (
	"slices"

	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

// Every label value comes from one of these fixed sets. Anything else is
// counted as "other", so a caller's bug can never create new series, and no
// label ever carries a domain, address, HELO name or mail address.

// other replaces a label value outside its set.
const other = "other"

// reasonNone is the reason label of an action taken for no special reason
// (the Observer passes ""). Prometheus treats an empty label value as an
// absent label, so it gets a name.
const reasonNone = "none"

// The label sets come from the lists the libraries keep beside the
// constants they report with, so a value the milter or the resolver emits
// cannot be missing here (labels_test.go holds the lists to the constants).
var (
	identities = milter.IdentityLabels()
	// RFC 7208 §2.6; and not_checked, for a HELO that names no domain.
	results = append(strs(spf.Results()), milter.ResultNotChecked)
	actions = milter.ActionLabels()
	// policyActions are the actions a policy decides: every action but skip.
	policyActions = slices.DeleteFunc(slices.Clone(actions), func(a string) bool { return a == milter.ActionSkip })
	// causes of a permerror (spf.Causes).
	causes  = milter.CauseLabels()
	reasons = append(append([]string{reasonNone}, milter.SkipReasons()...), milter.ReasonDryRun, milter.ReasonNeverReject, milter.ExemptForwarder, milter.ExemptAllowHELO, milter.ReasonRelayNoReceived)
	stages  = milter.StageLabels()
	// rescueOutcomes of a message decided by its DKIM signatures.
	rescueOutcomes = milter.RescueLabels()
	qtypes         = resolver.QueryTypes()
	// outcomes of one DNS query: NOERROR with answers, NXDOMAIN, NOERROR
	// without answers, SERVFAIL, no answer in time, anything else.
	outcomes = resolver.Outcomes()
	// reloadResults are the values of spfmilter_config_reloads_total's label.
	reloadResults = []string{"success", "failure"}
)

// actionReasons are the combinations the milter reports, pre-set to zero so
// that rate() and absent-series alerts work from the first scrape: every
// action but skip with no reason and, in a dry run, dry_run; skip with each
// skip reason.
var actionReasons = func() [][2]string {
	var out [][2]string
	for _, a := range actions {
		if a != milter.ActionSkip {
			out = append(out, [2]string{a, reasonNone})
		}
	}
	for _, r := range milter.SkipReasons() {
		out = append(out, [2]string{milter.ActionSkip, r})
	}
	for _, a := range actions {
		if a != milter.ActionSkip {
			out = append(out, [2]string{a, milter.ReasonDryRun})
		}
	}
	for _, r := range []string{milter.ReasonNeverReject, milter.ExemptForwarder, milter.ExemptAllowHELO, milter.ReasonRelayNoReceived} {
		out = append(out, [2]string{string(milter.ActionAccept), r})
	}
	return out
}()

// identityResults are the identity and result combinations, pre-set to
// zero: every result for each identity, and not_checked for the HELO only.
var identityResults = func() [][2]string {
	var out [][2]string
	for _, id := range identities {
		for _, r := range results {
			if r == milter.ResultNotChecked && id != string(spf.IdentityHELO) {
				continue
			}
			out = append(out, [2]string{id, r})
		}
	}
	return out
}()

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// clamp returns v if it is in set, else "other".
func clamp(v string, set []string) string {
	for _, s := range set {
		if v == s {
			return v
		}
	}
	return other
}

// clampReason maps the Observer's "" to "none" before clamping.
func clampReason(r string) string {
	if r == "" {
		r = reasonNone
	}
	return clamp(r, reasons)
}
