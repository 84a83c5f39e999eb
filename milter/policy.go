package milter

import (
	"github.com/spfmilter/spfmilter/spf"
)

// verdict is the policy's decision for one message.
type verdict struct {
	Action Action
	// Outcome is the result that decided a reject, tempfail or quarantine;
	// nil for accept.
	Outcome *spf.Outcome
}

// severity orders actions: a reject wins over a tempfail, which wins over
// quarantine, which wins over accept. A definite 5xx is more useful to the
// sender than a retry that will fail again; a retry may still end in a
// verdict that holds nothing back.
func severity(a Action) int {
	switch a {
	case ActionReject:
		return 3
	case ActionTempfail:
		return 2
	case ActionQuarantine:
		return 1
	}
	return 0
}

// action is the table's entry for out: for a permerror, the entry of its
// cause when there is one, else the entry of its result.
func action(results map[spf.Result]Action, causes map[spf.Cause]Action, out *spf.Outcome) Action {
	if out.Result == spf.Permerror {
		if a, ok := causes[out.Cause]; ok && out.Cause != "" {
			return a
		}
	}
	return results[out.Result]
}

// decide applies p to the results. helo is nil or NotChecked when the HELO
// identity was not checked: it has no result, and no entry of p.HELO
// matches it (not even None). HELO is considered first (RFC 7208 §2.3);
// when both identities call for the same action, HELO is reported as the
// reason.
func decide(p Policy, helo *spf.Outcome, mailFrom *spf.Outcome) verdict {
	v := verdict{Action: ActionAccept}
	for _, c := range []struct {
		table  map[spf.Result]Action
		causes map[spf.Cause]Action
		out    *spf.Outcome
	}{
		{p.HELO, p.HELOPermerror, helo},
		{p.MailFrom, p.MailFromPermerror, mailFrom},
	} {
		if c.out == nil || c.out.NotChecked {
			continue
		}
		a := action(c.table, c.causes, c.out)
		if severity(a) > severity(v.Action) {
			v = verdict{Action: a, Outcome: c.out}
		}
	}
	return v
}

// replyCode is the SMTP reply code and enhanced status code for a verdict
// (RFC 7372 §3.2): 5.7.23 "SPF validation failed" for a policy result,
// 5.7.24 "SPF validation error" for permerror and temperror; the class
// follows the action.
func replyCode(v verdict) string {
	errorResult := v.Outcome != nil &&
		(v.Outcome.Result == spf.Permerror || v.Outcome.Result == spf.Temperror)
	switch {
	case v.Action == ActionTempfail && errorResult:
		return "451 4.7.24"
	case v.Action == ActionTempfail:
		return "451 4.7.23"
	case errorResult:
		return "550 5.7.24"
	}
	return "550 5.7.23"
}
