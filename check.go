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
	"strings"
	"time"

	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/spf"
)

const checkUsage = `Usage: spfmilter check --ip IP --sender ADDR --helo NAME [--json] [--trace] [flags]

Evaluates the HELO and MAIL FROM identities of one SMTP client once, with the
daemon's settings (--config and the same flags), and prints the verdicts and
the header fields the milter would add. The exit status is 0 whatever the SPF
results, 2 for bad arguments.

With --json it prints one object:
  {"helo": R or null, "mailfrom": R,
   "headers": {"Received-SPF": "…", "Authentication-Results": "…"}}
where R is {"identity", "domain", "result", "mechanism", "explanation",
"problem", "dns_lookups", "void_lookups", "duration_ms"} and, with --trace,
"trace". "helo" is null when the HELO gives no domain to check: --helo empty,
an address literal such as [192.0.2.1], or a name that is not a fully
qualified domain. Header values are folded with CRLF and a tab.

Flags:`

// checkArgs are the check command's own flags.
type checkArgs struct {
	ip, sender, helo string
	json, trace      bool
}

// runCheck is the check command: it evaluates one client's HELO and MAIL
// FROM identities once, with the daemon's settings, and prints the verdicts
// and the header fields the milter would add. The status is 0 whatever the
// SPF results.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("check", flag.ContinueOnError)
	var ca checkArgs
	fset.StringVar(&ca.ip, "ip", "", "the SMTP client's `IP` address (required)")
	fset.StringVar(&ca.sender, "sender", "", "the MAIL FROM `ADDR`ess; empty is the null sender, checked as postmaster@HELO")
	fset.StringVar(&ca.helo, "helo", "", "the HELO/EHLO `NAME`; empty skips the HELO identity")
	fset.BoolVar(&ca.json, "json", false, "print one JSON object")
	fset.BoolVar(&ca.trace, "trace", false, "include the step-by-step evaluation")
	cl := addConfigFlags(fset)
	if err := parseFlags(fset, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlags(stdout, fset, checkUsage)
			return exitOK
		}
		return fail(stderr, err)
	}
	if fset.NArg() > 0 {
		return fail(stderr, fmt.Errorf("unexpected argument %q (see --help)", fset.Arg(0)))
	}
	ip, err := ca.validate()
	if err != nil {
		return fail(stderr, err)
	}
	c, err := cl.load()
	if err != nil {
		return fail(stderr, err)
	}
	if cl.configCheck {
		fmt.Fprintln(stdout, "spfmilter: configuration OK")
		return exitOK
	}
	dc, err := newDNSClient(c, nil)
	if err != nil {
		return fail(stderr, err)
	}
	rep := evaluate(context.Background(), c, dc.resolver, spf.Args{IP: ip, Sender: ca.sender, HELO: ca.helo, Trace: ca.trace})
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

// validate checks the client facts and returns the IP.
func (ca *checkArgs) validate() (netip.Addr, error) {
	if ca.ip == "" {
		return netip.Addr{}, errors.New("flag --ip: missing (want the client's IP address)")
	}
	ip, err := netip.ParseAddr(ca.ip)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("flag --ip: bad address %q (want e.g. 192.0.2.1 or 2001:db8::1)", ca.ip)
	}
	for _, f := range []struct{ name, v string }{{"sender", ca.sender}, {"helo", ca.helo}} {
		if strings.ContainsFunc(f.v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return netip.Addr{}, fmt.Errorf("flag --%s: bad value %q (no spaces or control characters)", f.name, f.v)
		}
	}
	// MAIL FROM:<addr> is often copied with its brackets.
	ca.sender = strings.TrimSuffix(strings.TrimPrefix(ca.sender, "<"), ">")
	return ip, nil
}

// checkReport is the outcome of one check command.
type checkReport struct {
	HELO     *spf.Outcome // nil when the HELO identity yields no check
	MailFrom spf.Outcome
	Fields   []headers.Field
}

// evaluate checks both identities and builds the header fields as the
// milter does: the same checks, the same headers.Input, the same
// headers.Fields. The authserv-id (also Received-SPF's receiver unless
// the receiver setting names another) is the configured one, else the host name, as the milter's when the MTA sends no
// j macro.
//
// The HELO identity is reported (checkReport.HELO) only when it names a
// domain: an empty HELO, an address literal or a name that is not a fully
// qualified domain gives check_host() no domain to check (RFC 7208 §2.3).
// The headers still get whatever outcome the milter would pass them.
func evaluate(ctx context.Context, c *Config, r spf.Resolver, a spf.Args) checkReport {
	ch := &spf.Checker{Resolver: r, Timeout: c.CheckTimeout, Receiver: receiverName(c)}
	var rep checkReport
	var heloOut *spf.Outcome
	if a.HELO != "" {
		o := ch.CheckHELO(ctx, a)
		heloOut = &o
		if o.Domain != "" {
			rep.HELO = heloOut
		}
	}
	rep.MailFrom = ch.CheckMailFrom(ctx, a)
	id := authservID(c)
	in := headers.Input{
		AuthservID:   id,
		ClientIP:     a.IP,
		HELO:         a.HELO,
		EnvelopeFrom: a.Sender,
		HELOResult:   heloOut,
		MailFrom:     rep.MailFrom,
	}
	if !c.HideReceiver {
		in.Receiver = cmp.Or(c.Receiver, id)
	}
	rep.Fields = headers.Fields(in)
	return rep
}

// authservID is the configured authserv-id, else the host name.
func authservID(c *Config) string {
	if c.AuthservID != "" {
		return c.AuthservID
	}
	h, _ := hostname()
	return cmp.Or(h, "localhost")
}

// outcomeJSON is one identity's verdict in check --json.
type outcomeJSON struct {
	Identity    spf.Identity `json:"identity"`
	Domain      string       `json:"domain"`
	Result      spf.Result   `json:"result"`
	Mechanism   string       `json:"mechanism"`
	Explanation string       `json:"explanation"`
	Problem     string       `json:"problem"`
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
		DNSLookups:  o.DNSLookups,
		VoidLookups: o.VoidLookups,
		DurationMS:  math.Round(float64(o.Duration.Microseconds())) / 1000,
	}
	if trace {
		t := append([]string{}, o.Trace...)
		j.Trace = &t
	}
	return j
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
		HELO     *outcomeJSON      `json:"helo"`
		MailFrom *outcomeJSON      `json:"mailfrom"`
		Headers  map[string]string `json:"headers"`
	}{toJSON(rep.HELO, trace), toJSON(&rep.MailFrom, trace), hdrs}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

func (rep *checkReport) writeText(w io.Writer, trace bool) error {
	var b strings.Builder
	if rep.HELO == nil {
		b.WriteString("helo:     not checked (no domain name to check)\n")
	} else {
		writeOutcome(&b, rep.HELO, trace)
	}
	writeOutcome(&b, &rep.MailFrom, trace)
	b.WriteString("\n")
	for _, f := range rep.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, strings.ReplaceAll(f.Value, "\r\n", "\n"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeOutcome(b *strings.Builder, o *spf.Outcome, trace bool) {
	fmt.Fprintf(b, "%-9s %s for %s", string(o.Identity)+":", o.Result, cmp.Or(o.Sender, o.Domain, "(none)"))
	if o.Mechanism != "" {
		fmt.Fprintf(b, " (mechanism %s)", o.Mechanism)
	}
	fmt.Fprintf(b, "\n          DNS lookups: %d, void lookups: %d, time: %s\n", o.DNSLookups, o.VoidLookups, o.Duration.Round(10*time.Microsecond))
	if o.Explanation != "" {
		fmt.Fprintf(b, "          explanation: %s\n", o.Explanation)
	}
	if o.Problem != "" {
		fmt.Fprintf(b, "          problem: %s\n", o.Problem)
	}
	if trace {
		b.WriteString("          trace:\n")
		for _, t := range o.Trace {
			fmt.Fprintf(b, "            %s\n", t)
		}
	}
}
