package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

const checkUsage = `Usage: spfmilter check --ip IP --sender ADDR --helo NAME [--message FILE] [--json] [--trace] [settings]

Evaluates the HELO and MAIL FROM identities of one SMTP client once, as the
daemon does with the same settings, and prints the verdicts, the action and
SMTP reply the daemon would send, and the header fields it would add. The
exit status is 0 whatever the SPF results, 2 for bad arguments.

With --json it prints one object:
  {"helo": R, "mailfrom": R, "action": A, "reason": S, "reply": S,
   "dns_queries": N, "dns_cache_hits": N,
   "headers": {"Received-SPF": "…", "Authentication-Results": "…"}}
where R is {"identity", "domain", "result", "mechanism", "explanation",
"problem", "dns_lookups", "void_lookups", "duration_ms"} and, with --trace,
"trace". A HELO that names no domain (--helo empty, an address literal such
as [192.0.2.1], a name that is not a fully qualified domain) is not checked:
its result is "not_checked" and its problem says why. dns_lookups counts the
DNS-querying terms of RFC 7208 section 4.6.4 (at most 10), void_lookups the
lookups that found nothing (at most 2); dns_queries is the number of DNS
queries sent, dns_cache_hits the lookups answered from the cache. A is
accept, reject, tempfail or skip (reason: trusted_network; dry_run under
--dry-run); reply is the SMTP reply for reject and tempfail, else "". For a
client in trusted_networks the daemon checks nothing (action skip, headers
empty); helo and mailfrom still show the verdicts. Header values are folded
with CRLF and a tab.

With --message FILE (a stored message, LF or CRLF line ends) and dkim_rescue
on, a MAIL FROM result that is to be rejected is decided as at end of
message: the message's DKIM signatures are verified and the action is the
daemon's final one. The JSON object then also has "dkim": a list of
{"result", "domain", "selector", "b", "problem"}, one per signature, and
"rescue": rescued, not_rescued, temperror or oversized ("" when the message
was not needed: the MAIL FROM result is not rejected, or dkim_rescue is off).

Flags of check:`

// checkSettingsHelp follows check's own flags in --help.
const checkSettingsHelp = `
Settings: every setting of the daemon is accepted here too, from --config
FILE or as a flag, with the same meaning (e.g. --resolver, --check-timeout,
--reject, --reject-helo, --defer-temperror, --dry-run, --reject-text,
--authserv-id, --receiver, --trusted-networks). "spfmilter serve --help"
lists them all; README.md's settings table explains each.`

// checkArgs are the check command's own flags.
type checkArgs struct {
	ip, sender, helo string
	message          string
	json, trace      bool
}

// runCheck is the check command: it evaluates one client's HELO and MAIL
// FROM identities once, with the daemon's settings, and prints the verdicts,
// the action and the header fields the milter would add. The status is 0
// whatever the SPF results.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("check", flag.ContinueOnError)
	var ca checkArgs
	fset.StringVar(&ca.ip, "ip", "", "the SMTP client's `IP` address (required)")
	fset.StringVar(&ca.sender, "sender", "", "the MAIL FROM `ADDR`ess; empty is the null sender, checked as postmaster@HELO")
	fset.StringVar(&ca.helo, "helo", "", "the HELO/EHLO `NAME`; empty or without a domain: the HELO is not checked")
	fset.StringVar(&ca.message, "message", "", "a stored message `FILE` to decide as at end of message (dkim_rescue); - is standard input")
	fset.BoolVar(&ca.json, "json", false, "print one JSON object")
	fset.BoolVar(&ca.trace, "trace", false, "include the step-by-step evaluation")
	cl := config.AddFlags(fset)
	if err := parseFlags(fset, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCheckHelp(stdout, fset)
			return exitOK
		}
		return fail(stderr, err)
	}
	if fset.NArg() > 0 {
		return fail(stderr, fmt.Errorf("unexpected argument %q (see --help)", fset.Arg(0)))
	}
	c, err := cl.Load()
	if err != nil {
		return fail(stderr, err)
	}
	if cl.CheckOnly() {
		// Only the settings are checked: no client to evaluate.
		fmt.Fprintln(stdout, "spfmilter: configuration OK")
		return exitOK
	}
	ip, err := ca.validate()
	if err != nil {
		return fail(stderr, err)
	}
	var msg []byte
	if ca.message != "" {
		if msg, err = readMessage(ca.message, c.DKIMMaxBytes); err != nil {
			return fail(stderr, err)
		}
	}
	var queries queryCounter
	opts := resolverOptions(c)
	opts.Observer = &queries
	r, err := resolver.New(opts)
	if err != nil {
		return fail(stderr, err)
	}
	rep := evaluate(context.Background(), c, r, milter.Facts{IP: ip, Sender: ca.sender, HELO: ca.helo, Trace: ca.trace}, msg)
	rep.Queries, rep.CacheHits = queries.snapshot()
	if ca.json {
		err = rep.writeJSON(stdout, ca.trace)
	} else {
		err = rep.writeText(stdout, ca.trace)
	}
	if err != nil {
		fmt.Fprintln(stderr, "spfmilter:", err)
		return exitError
	}
	return exitOK
}

// readMessage reads a stored message for --message, keeping at most
// limit+1 bytes as the milter does, with CRLF line ends as on the wire.
func readMessage(name string, limit int64) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("flag --message: %v", err)
		}
		defer f.Close()
		r = f
	}
	// CRLF adds at most one byte per line: read twice the limit, then cut.
	data, err := io.ReadAll(io.LimitReader(r, 2*(limit+1)))
	if err != nil {
		return nil, fmt.Errorf("flag --message: %v", err)
	}
	m := dkim.NewMessage(limit)
	m.Raw(dkim.CRLF(data))
	return m.Bytes(), nil
}

// printCheckHelp writes check's usage with its own flags only, then points
// to the settings.
func printCheckHelp(w io.Writer, fset *flag.FlagSet) {
	own := flag.NewFlagSet("check", flag.ContinueOnError)
	fset.VisitAll(func(f *flag.Flag) {
		if _, ok := config.SettingFlag(f); !ok {
			own.Var(f.Value, f.Name, f.Usage)
		}
	})
	printFlags(w, own, checkUsage)
	fmt.Fprintln(w, checkSettingsHelp)
}

// queryCounter is check's resolver.Observer: it counts the queries sent and
// the lookups answered from the cache.
type queryCounter struct {
	mu        sync.Mutex
	queries   int
	cacheHits int
}

func (q *queryCounter) ObserveQuery(string, string, time.Duration) {
	q.mu.Lock()
	q.queries++
	q.mu.Unlock()
}

func (q *queryCounter) ObserveCache(event string) {
	if event != resolver.CacheHit {
		return
	}
	q.mu.Lock()
	q.cacheHits++
	q.mu.Unlock()
}

func (q *queryCounter) snapshot() (queries, cacheHits int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queries, q.cacheHits
}

// validate checks the client facts and returns the IP.
func (ca *checkArgs) validate() (netip.Addr, error) {
	if ca.ip == "" {
		return netip.Addr{}, errors.New("flag --ip: missing (want the client's IP address)")
	}
	ip, err := netip.ParseAddr(ca.ip)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("flag --ip: bad address %q (want e.g. 192.0.2.1 or 2001:db8::1)", ca.ip)
	}
	// Whatever an MTA can hand the milter is accepted: RFC 5321 allows
	// quoted local parts with spaces ("Macro Error"@example.com), and both
	// MTAs pass a HELO argument on as the client sent it. Only what no SMTP
	// command line carries (CR, LF) and what the milter protocol's C
	// strings cannot (NUL) is refused.
	for _, f := range []struct{ name, v string }{{"sender", ca.sender}, {"helo", ca.helo}} {
		if strings.ContainsAny(f.v, "\x00\r\n") {
			return netip.Addr{}, fmt.Errorf("flag --%s: bad value %q (no NUL, CR or LF: no SMTP command carries them)", f.name, f.v)
		}
	}
	// As the milter reads MAIL FROM: angle brackets (often copied along)
	// and a source route dropped.
	ca.sender = milter.EnvelopeAddress(ca.sender)
	return ip, nil
}

// checkReport is the outcome of one check command.
type checkReport struct {
	Facts    milter.Facts
	Decision milter.Decision
	DryRun   bool
	Fields   []headers.Field
	// Queries is the number of DNS queries sent, CacheHits the lookups
	// answered from the resolver's cache.
	Queries, CacheHits int
	// Message is set when a message was given (--message).
	Message bool
}

// evaluate answers for f as the milter does: the same configuration
// (milterConfig), the same decision (milter.Config.Evaluate: both checks
// under one check_timeout, the policy, the reply) and the same header
// fields (milter.Config.Fields). The check has no MTA, so the authserv-id
// is the configured one, else the host name, as the milter's when the MTA
// sends no j macro.
//
// For a client in trusted_networks the daemon checks nothing; the report
// says so (action skip, no header fields) but still shows the verdicts, as
// they would be without trusted_networks.
//
// msg, when not nil, is the message: a Rescuable decision is then decided
// as at end of message (milter.Config.Rescue).
func evaluate(ctx context.Context, c *config.Config, r spf.Resolver, f milter.Facts, msg []byte) checkReport {
	mc := milterConfig(c, r, nil)
	d := mc.Evaluate(ctx, f)
	if msg != nil {
		d = mc.Rescue(ctx, f, d, msg)
	}
	rep := checkReport{Facts: f, Decision: d, DryRun: mc.DryRun, Fields: mc.Fields(f, d), Message: msg != nil}
	if d.Skip == milter.SkipTrustedNetwork {
		untrusted := *mc
		untrusted.TrustedNetworks = nil
		v := untrusted.Evaluate(ctx, f)
		rep.Decision.HELO, rep.Decision.MailFrom = v.HELO, v.MailFrom
	}
	return rep
}

// reason is the report's reason word: the skip reason, "dry_run", the
// exemption, or "".
func (rep *checkReport) reason() string {
	switch {
	case rep.Decision.Skip != "":
		return rep.Decision.Skip
	case rep.DryRun:
		return milter.ReasonDryRun
	}
	return rep.Decision.Exempt
}

// action is the action as the daemon logs it.
func (rep *checkReport) action() string {
	if rep.Decision.Skip != "" {
		return milter.ActionSkip
	}
	return string(rep.Decision.Action)
}

// outcomeJSON is one identity's verdict in check --json.
type outcomeJSON struct {
	Identity    spf.Identity `json:"identity"`
	Domain      string       `json:"domain"`
	Result      spf.Result   `json:"result"`
	Mechanism   string       `json:"mechanism"`
	Explanation string       `json:"explanation"`
	Problem     string       `json:"problem"`
	Cause       spf.Cause    `json:"cause"`
	DNSLookups  int          `json:"dns_lookups"`
	VoidLookups int          `json:"void_lookups"`
	DurationMS  float64      `json:"duration_ms"`
	Trace       *[]string    `json:"trace,omitempty"`
}

func toJSON(o *spf.Outcome, trace bool) *outcomeJSON {
	if o == nil {
		return nil
	}
	j := &outcomeJSON{
		Identity:    o.Identity,
		Domain:      o.Domain,
		Result:      o.Result,
		Mechanism:   o.Mechanism,
		Explanation: o.Explanation,
		Problem:     o.Problem,
		Cause:       o.Cause,
		DNSLookups:  o.DNSLookups,
		VoidLookups: o.VoidLookups,
		DurationMS:  math.Round(float64(o.Duration.Microseconds())) / 1000,
	}
	if o.NotChecked {
		j.Result = milter.ResultNotChecked
	}
	if trace {
		t := append([]string{}, o.Trace...)
		j.Trace = &t
	}
	return j
}

// signatureJSON is one DKIM signature's verification in check --json.
type signatureJSON struct {
	Result   dkim.Result `json:"result"`
	Domain   string      `json:"domain"`
	Selector string      `json:"selector"`
	B        string      `json:"b"`
	Problem  string      `json:"problem"`
}

// shadowJSON is the shadow policy's verdict in check --json: null without
// a shadow policy or when SPF was skipped.
type shadowJSON struct {
	Action     string `json:"action"`
	Reason     string `json:"reason"`
	Reply      string `json:"reply"`
	Quarantine string `json:"quarantine"`
	ExemptBy   string `json:"exempt_by"`
	Differs    bool   `json:"differs"`
}

func (rep *checkReport) shadowJSON() *shadowJSON {
	d := rep.Decision
	if d.Shadow == nil {
		return nil
	}
	return &shadowJSON{string(d.Shadow.Action), d.Shadow.Exempt, d.Shadow.Reply, d.Shadow.Quarantine, d.Shadow.ExemptBy, d.ShadowDiffers()}
}

func (rep *checkReport) writeJSON(w io.Writer, trace bool) error {
	hdrs := map[string]string{}
	for _, f := range rep.Fields {
		if prev, ok := hdrs[f.Name]; ok {
			// Not expected from headers.Fields; keep both rather than lose one.
			hdrs[f.Name] = prev + "\r\n" + f.Name + ": " + f.Value
			continue
		}
		hdrs[f.Name] = f.Value
	}
	out := struct {
		HELO         *outcomeJSON      `json:"helo"`
		MailFrom     *outcomeJSON      `json:"mailfrom"`
		Action       string            `json:"action"`
		Reason       string            `json:"reason"`
		Reply        string            `json:"reply"`
		Quarantine   string            `json:"quarantine"`
		ExemptBy     string            `json:"exempt_by"`
		Shadow       *shadowJSON       `json:"shadow"`
		DNSQueries   int               `json:"dns_queries"`
		DNSCacheHits int               `json:"dns_cache_hits"`
		Headers      map[string]string `json:"headers"`
		DKIM         []signatureJSON   `json:"dkim,omitempty"`
		Rescue       *string           `json:"rescue,omitempty"`
	}{
		HELO: toJSON(rep.Decision.HELO, trace), MailFrom: toJSON(rep.Decision.MailFrom, trace),
		Action: rep.action(), Reason: rep.reason(), Reply: rep.Decision.Reply,
		Quarantine: rep.Decision.Quarantine, ExemptBy: rep.Decision.ExemptBy, Shadow: rep.shadowJSON(),
		DNSQueries: rep.Queries, DNSCacheHits: rep.CacheHits, Headers: hdrs,
	}
	if rep.Message {
		out.Rescue = &rep.Decision.RescueOutcome
		out.DKIM = []signatureJSON{}
		if rep.Decision.DKIM != nil {
			for _, s := range rep.Decision.DKIM.Signatures {
				out.DKIM = append(out.DKIM, signatureJSON{s.Result, s.Domain, s.Selector, s.B, s.Problem})
			}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

func (rep *checkReport) writeText(w io.Writer, trace bool) error {
	var b strings.Builder
	d := rep.Decision
	if d.MailFrom != nil {
		writeOutcome(&b, rep.Facts, d.HELO, trace)
		writeOutcome(&b, rep.Facts, d.MailFrom, trace)
		fmt.Fprintf(&b, "%-9s %s sent, %s answered from the cache\n", "DNS:",
			plural(rep.Queries, "query", "queries"), plural(rep.CacheHits, "lookup", "lookups"))
	}
	if rep.Message {
		writeDKIM(&b, d)
	}
	action := rep.action()
	switch {
	case d.Rescued != nil:
		action += fmt.Sprintf(" (mailfrom %s rescued by the DKIM signature of %s)", d.MailFrom.Result, d.Rescued.Domain)
	case d.Identity != "":
		var o *spf.Outcome
		if d.Identity == spf.IdentityHELO {
			o = d.HELO
		} else {
			o = d.MailFrom
		}
		action += fmt.Sprintf(" (%s %s)", d.Identity, o.Result)
	case d.Skip != "":
		action += " (" + d.Skip + "): " + skipText(d.Skip)
	case d.Exempt != "":
		action += fmt.Sprintf(" (%s %s passes SPF: exempt)", d.Exempt, d.ExemptBy)
	}
	if rep.DryRun && d.Skip == "" {
		action += "; dry run: logged, not applied"
	}
	fmt.Fprintf(&b, "%-9s %s\n", "action:", action)
	if d.Reply != "" {
		fmt.Fprintf(&b, "%-9s %s", "reply:", d.Reply)
		if rep.DryRun {
			b.WriteString(" (not sent: dry run)")
		}
		b.WriteString("\n")
	}
	if d.Quarantine != "" {
		fmt.Fprintf(&b, "%-9s held by the MTA: %s", "hold:", d.Quarantine)
		if rep.DryRun {
			b.WriteString(" (not asked: dry run)")
		}
		b.WriteString("\n")
	}
	if sh := d.Shadow; sh != nil {
		line := string(sh.Action)
		switch {
		case sh.Identity != "":
			line += fmt.Sprintf(" (%s)", sh.Identity)
		case sh.Exempt != "":
			line += fmt.Sprintf(" (%s %s passes SPF: exempt)", sh.Exempt, sh.ExemptBy)
		}
		if d.ShadowDiffers() {
			line += "; differs from the live policy (never applied)"
		} else {
			line += "; same as the live policy"
		}
		if sh.Reply != "" {
			line += "\n          reply: " + sh.Reply
		}
		if sh.Quarantine != "" {
			line += "\n          hold: " + sh.Quarantine
		}
		fmt.Fprintf(&b, "%-9s %s\n", "shadow:", line)
	}
	if len(rep.Fields) > 0 {
		b.WriteString("\n")
	}
	for _, f := range rep.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, strings.ReplaceAll(f.Value, "\r\n", "\n"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeDKIM writes the message's signatures and what the rescue found.
func writeDKIM(b *strings.Builder, d milter.Decision) {
	if d.DKIM == nil {
		fmt.Fprintf(b, "%-9s not verified: the MAIL FROM result is not rejected, or dkim_rescue is off\n", "dkim:")
		return
	}
	if len(d.DKIM.Signatures) == 0 {
		fmt.Fprintf(b, "%-9s no signature\n", "dkim:")
	}
	for _, s := range d.DKIM.Signatures {
		fmt.Fprintf(b, "%-9s %s d=%s s=%s b=%s\n", "dkim:", s.Result, s.Domain, s.Selector, s.B)
		if s.Problem != "" {
			fmt.Fprintf(b, "          problem: %s\n", s.Problem)
		}
	}
	fmt.Fprintf(b, "%-9s %s\n", "rescue:", d.RescueOutcome)
}

// skipText says why SPF is not evaluated for a skip reason.
func skipText(reason string) string {
	switch reason {
	case milter.SkipTrustedNetwork:
		return "the daemon checks nothing for a client in trusted_networks and adds no header fields"
	}
	return reason
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// writeOutcome writes one identity's verdict. It names what was checked:
// for the null sender, postmaster@HELO (RFC 7208 §2.4), even when that is
// no domain and nothing could be checked, as Received-SPF does.
func writeOutcome(b *strings.Builder, f milter.Facts, o *spf.Outcome, trace bool) {
	label := string(o.Identity) + ":"
	if o.NotChecked {
		name := f.HELO
		if name == "" {
			name = "(none given)"
		}
		fmt.Fprintf(b, "%-9s not checked: %s\n          problem: %s\n", label, name, o.Problem)
		return
	}
	checked := o.Sender
	if o.Identity == spf.IdentityMailFrom && f.Sender == "" {
		if checked == "" && f.HELO != "" {
			checked = "postmaster@" + f.HELO
		}
		checked = strings.TrimSpace(checked + " (null sender)")
	}
	fmt.Fprintf(b, "%-9s %s for %s", label, o.Result, cmp.Or(checked, f.Sender))
	if o.Mechanism != "" {
		fmt.Fprintf(b, " (mechanism %s)", o.Mechanism)
	}
	fmt.Fprintf(b, "\n          DNS-querying terms: %d of %d, void lookups: %d of %d, time: %s\n",
		o.DNSLookups, spf.MaxDNSTerms, o.VoidLookups, spf.MaxVoidLookups, o.Duration.Round(10*time.Microsecond))
	if o.Explanation != "" {
		fmt.Fprintf(b, "          explanation: %s\n", o.Explanation)
	}
	if o.Problem != "" {
		fmt.Fprintf(b, "          problem: %s\n", o.Problem)
	}
	if o.Cause != "" {
		fmt.Fprintf(b, "          cause: %s\n", o.Cause)
	}
	if trace {
		b.WriteString("          trace:\n")
		for _, t := range o.Trace {
			fmt.Fprintf(b, "            %s\n", t)
		}
	}
}
