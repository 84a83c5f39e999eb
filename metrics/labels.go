package metrics

// Every label value comes from one of these fixed sets. Anything else is
// counted as "other", so a caller's bug can never create new series, and no
// label ever carries a domain, address, HELO name or mail address.

// other replaces a label value outside its set.
const other = "other"

// reasonNone is the reason label of an action taken for no special reason
// (the Observer passes ""). Prometheus treats an empty label value as an
// absent label, so it gets a name.
const reasonNone = "none"

var (
	identities = []string{"helo", "mailfrom"}
	// RFC 7208 §2.6.
	results = []string{"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"}
	actions = []string{"accept", "reject", "tempfail", "skip"}
	reasons = []string{reasonNone, "trusted_network", "authenticated", "no_client_ip", "unconfigured", "dry_run"}
	stages  = []string{"connect", "helo", "mail", "header", "eom"}
	qtypes  = []string{"TXT", "A", "AAAA", "MX", "PTR"}
	// outcomes of one DNS query: NOERROR with answers, NXDOMAIN, NOERROR
	// without answers, SERVFAIL, no answer in time, anything else.
	outcomes = []string{"ok", "nxdomain", "nodata", "servfail", "timeout", "error"}
	// reloadResults are the values of spfmilter_config_reloads_total's label.
	reloadResults = []string{"success", "failure"}
)

// actionReasons are the combinations the milter reports, pre-set to zero so
// that rate() and absent-series alerts work from the first scrape.
var actionReasons = [][2]string{
	{"accept", reasonNone},
	{"reject", reasonNone},
	{"tempfail", reasonNone},
	{"skip", "trusted_network"},
	{"skip", "authenticated"},
	{"skip", "no_client_ip"},
	{"skip", "unconfigured"},
	{"accept", "dry_run"},
	{"reject", "dry_run"},
	{"tempfail", "dry_run"},
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
