package lint

// Severity says how much a finding matters: an error makes receivers
// return permerror or temperror for some or all clients, a warning is a
// record that works but against the RFC's advice or the owner's likely
// intent, info is worth knowing.
type Severity string

// Severities, as written in the output.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// check describes one kind of finding: its severity and the advice given.
type check struct {
	severity Severity
	advice   string
}

// checks is every finding lint reports, by its stable identifier. The
// identifiers are part of the --json output and must not change.
var checks = map[string]check{
	// The record itself.
	"no-record":        {Error, `publish one TXT record starting with "v=spf1"; "v=spf1 -all" if the name never sends mail`},
	"multiple-records": {Error, "merge them into one: two SPF records make every check a permerror (RFC 7208 §4.5)"},
	"syntax":           {Error, "fix the term: a syntax error anywhere makes the record a permerror (RFC 7208 §4.6)"},
	"exp-only-macro":   {Error, "%{c}, %{r} and %{t} are only allowed in exp= text (RFC 7208 §7.1); remove them from domain-specs"},
	"dns-error":        {Error, "make the name answer: receivers get temperror while its lookup fails"},
	"long-record":      {Warning, "keep it under 255 bytes if you can; when split into several strings receivers join them without spaces (RFC 7208 §3.3)"},
	"udp-size":         {Warning, "shrink the TXT answer below 512 bytes (RFC 7208 §3.4): remove other TXT records at the name or flatten"},
	"spf-type99":       {Warning, "remove the type SPF (99) record: RFC 7208 §3.1 retired it and receivers only look at TXT"},

	// Limits of RFC 7208 §4.6.4.
	"dns-terms":    {Error, "use fewer include, a, mx, ptr, exists and redirect terms: the 11th is a permerror (RFC 7208 §4.6.4); replace some with ip4/ip6 (spfmilter flatten)"},
	"void-lookups": {Error, "remove or fix terms whose names do not resolve: the third void lookup is a permerror (RFC 7208 §4.6.4)"},
	"void-lookup":  {Info, "a term whose name has no record for the client's address family uses up one of the two void lookups"},
	"mx-names":     {Error, "an mx mechanism may look up at most 10 names (RFC 7208 §4.6.4); use ip4/ip6 or a for the senders"},
	"ptr-names":    {Warning, "only the first 10 PTR names are validated (RFC 7208 §4.6.4); the rest never match ptr or %{p}"},

	// Includes and redirects.
	"include-no-record":  {Error, "an include of a name without an SPF record is a permerror (RFC 7208 §5.2); remove it or fix the name"},
	"redirect-no-record": {Error, "a redirect to a name without an SPF record is a permerror (RFC 7208 §6.1); fix the name"},
	"invalid-target":     {Error, "fix the name: it cannot be a DNS name (an empty label, a label over 63 bytes); include and redirect of it are a permerror, and RFC 4408 receivers fail a, mx and exists with permerror too"},
	"loop":               {Error, "break the include/redirect cycle: receivers follow it until the lookup limit, a permerror"},
	"duplicate-include":  {Warning, "include the name once: each include costs DNS terms again"},
	"macro-target":       {Info, "the target depends on the sender or client and is not followed here; it may be void for most clients"},

	// Policy.
	"pass-all":          {Error, `"+all" (or "all") lets every host on the Internet pass; end with "-all" or "~all"`},
	"neutral-all":       {Warning, `"?all" says nothing about other hosts; end with "-all" or "~all"`},
	"no-all":            {Warning, `without "all" or redirect= other hosts get neutral; end with "-all" or "~all"`},
	"redirect-with-all": {Warning, "redirect= is ignored when the record has an all mechanism (RFC 7208 §6.1); remove one of them"},
	"terms-after-all":   {Warning, "terms after all are never evaluated; move them before it or remove them"},
	"wide-network":      {Warning, "an ip4 shorter than /8 or ip6 shorter than /16 that passes authorises a large part of the Internet; check the prefix length"},
	"ptr":               {Warning, "the ptr mechanism is slow and unreliable and SHOULD NOT be used (RFC 7208 §5.5); list the addresses with ip4/ip6 or a"},
	"p-macro":           {Warning, "the %{p} macro SHOULD NOT be used (RFC 7208 §7.3); it costs PTR lookups and depends on reverse DNS"},

	// Names that should say they send no mail.
	"nonsending-host": {Warning, `a name that never sends mail should publish "v=spf1 -all" so that it cannot be forged (RFC 7208 §2.3, §10.1.1)`},

	// The engine's verdicts for the probe clients.
	"permerror": {Error, "receivers return permerror for this client; see the other findings"},
	"temperror": {Error, "receivers return temperror for this client; check the name servers"},
}

// IDs returns the identifiers of every finding lint can report.
func IDs() []string {
	out := make([]string, 0, len(checks))
	for id := range checks {
		out = append(out, id)
	}
	return out
}
