package e2e

import (
	"crypto/tls"
	"fmt"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// mtaRun is an MTA under test, running with three milter instances: one
// that only marks (headers, never rejects), one with --reject fail,
// --reject-helo fail and --defer-temperror, and the same in --dry-run.
type mtaRun struct {
	Name    string
	Mark4   string // SMTP address, 127.0.0.1, marking milter
	Mark6   string // SMTP address, [::1], marking milter
	Reject4 string // SMTP address, 127.0.0.1, rejecting milter
	DryRun4 string // SMTP address, 127.0.0.1, rejecting milter in dry-run mode
	// Rescue4 is an SMTP address, 127.0.0.1, with a milter that rejects
	// MAIL FROM fails unless DKIM rescues them (--dkim-rescue mailfrom).
	Rescue4 string
	Rescue  *milterProc
	Sink    *sink
	// TLS is the client configuration for STARTTLS with this MTA.
	TLS *tls.Config
	// OwnReceived tells the MTA's own Received field from the others.
	OwnReceived func(headerField) bool
	// Mark is the marking milter, which logs at debug level.
	Mark *milterProc
}

// spfWant is what a delivered message's headers must say.
type spfWant struct {
	Result   string
	ClientIP string
	From     string // envelope-from key; "" for the null sender
	Mailbox  string // the mailbox checked: smtp.mailfrom and the comment
	// Mechanism is the matched mechanism; "" means the problem key must be
	// present and non-empty instead.
	Mechanism string
}

type scenario struct {
	name string
	addr func(*mtaRun) string
	helo string
	// starttls upgrades the session before the first message. Postfix then
	// aborts the milter's message state and both MTAs pass the second EHLO.
	starttls bool
	msgs     []scenarioMsg
}

type scenarioMsg struct {
	from   string
	header []string
	// reject and status are the expected SMTP reply code and enhanced
	// status code at MAIL FROM; reject 0 means delivered with want's headers.
	reject int
	status string
	want   spfWant
	// check runs extra assertions on the delivered header.
	check func(t *testing.T, h []headerField)
}

var runSeq atomic.Int64

// uniqueID makes X-Test-ID values unique within the process.
func uniqueID(mta, name string, i int) string {
	return fmt.Sprintf("%s-%s-%d-%d", mta, strings.ReplaceAll(name, " ", "-"), i, runSeq.Add(1))
}

func mark4(r *mtaRun) string   { return r.Mark4 }
func mark6(r *mtaRun) string   { return r.Mark6 }
func reject4(r *mtaRun) string { return r.Reject4 }
func dryRun4(r *mtaRun) string { return r.DryRun4 }

// scenarios is the table every MTA runs. The expectations follow from
// testWorld's records and RFC 7208: the mechanism that matched, the client
// address as the MTA saw it, the envelope as sent.
func scenarios() []scenario {
	pass := func(from, ip, mech string) spfWant {
		return spfWant{Result: "pass", ClientIP: ip, From: from, Mailbox: from, Mechanism: mech}
	}
	return []scenario{
		{name: "pass", addr: mark4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "alice@" + passDomain, want: pass("alice@"+passDomain, "127.0.0.1", "ip4:127.0.0.1")},
		}},
		{name: "fail delivered with headers", addr: mark4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "bob@" + failDomain, want: spfWant{Result: "fail", ClientIP: "127.0.0.1",
				From: "bob@" + failDomain, Mailbox: "bob@" + failDomain, Mechanism: "-all"}},
		}},
		// RFC 7372 §3.2 (updating RFC 7208 §8.4, §8.6): X.7.23 "SPF
		// validation failed" for a fail, X.7.24 "SPF validation error" for
		// a temperror deferred with 451 (RFC 7208 §8.6).
		{name: "fail rejected", addr: reject4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "bob@" + failDomain, reject: 550, status: "5.7.23"},
		}},
		// RFC 7208 §2.3: a failing HELO identity is rejected on its own,
		// whatever the MAIL FROM domain says.
		{name: "helo fail rejected", addr: reject4, helo: badHELO, msgs: []scenarioMsg{
			{from: "alice@" + passDomain, reject: 550, status: "5.7.23"},
		}},
		// RFC 7208 §2.3: a HELO that names no domain cannot be checked.
		// The rejecting milter has --reject-helo fail,none; neither applies
		// to it, and Authentication-Results reports no smtp.helo.
		{name: "address-literal helo not checked", addr: reject4, helo: "[127.0.0.1]", msgs: []scenarioMsg{
			{from: "alice@" + passDomain, want: pass("alice@"+passDomain, "127.0.0.1", "ip4:127.0.0.1"),
				check: noHELOResult},
		}},
		{name: "temperror deferred", addr: reject4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "dave@" + timeoutDomain, reject: 451, status: "4.7.24"},
		}},
		// --dry-run: the verdicts of --reject fail --defer-temperror are
		// logged, never applied; the headers are added as usual.
		{name: "dry run fail delivered", addr: dryRun4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "ivan@" + failDomain, want: spfWant{Result: "fail", ClientIP: "127.0.0.1",
				From: "ivan@" + failDomain, Mailbox: "ivan@" + failDomain, Mechanism: "-all"}},
		}},
		{name: "softfail not rejected", addr: reject4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "carol@" + softfailDomain, want: spfWant{Result: "softfail", ClientIP: "127.0.0.1",
				From: "carol@" + softfailDomain, Mailbox: "carol@" + softfailDomain, Mechanism: "~all"}},
		}},
		{name: "temperror", addr: mark4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "dave@" + timeoutDomain, want: spfWant{Result: "temperror", ClientIP: "127.0.0.1",
				From: "dave@" + timeoutDomain, Mailbox: "dave@" + timeoutDomain}},
		}},
		{name: "null sender", addr: mark4, helo: clientHELO, msgs: []scenarioMsg{
			// RFC 7208 §2.4: the null sender's MAIL FROM identity is
			// postmaster@<HELO>; client.example.test allows 127.0.0.1.
			{from: "", want: spfWant{Result: "pass", ClientIP: "127.0.0.1", From: "",
				Mailbox: "postmaster@" + clientHELO, Mechanism: "ip4:127.0.0.1"}},
		}},
		{name: "ipv6 client", addr: mark6, helo: clientHELO, msgs: []scenarioMsg{
			{from: "erin@" + passDomain, want: pass("erin@"+passDomain, "::1", "ip6:::1")},
		}},
		{name: "forged authentication-results", addr: mark4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "bob@" + failDomain,
				header: []string{
					"Authentication-Results: " + authservID + "; spf=pass smtp.mailfrom=bob@" + failDomain,
					"Authentication-Results: other.example.net; spf=none smtp.mailfrom=bob@" + failDomain,
					"Authentication-Results: (a comment first) MX.Example.Test; spf=pass smtp.mailfrom=x@" + failDomain,
				},
				want: spfWant{Result: "fail", ClientIP: "127.0.0.1", From: "bob@" + failDomain,
					Mailbox: "bob@" + failDomain, Mechanism: "-all"},
				check: func(t *testing.T, h []headerField) {
					var ours, foreign int
					for _, f := range h {
						if !strings.EqualFold(f.Name, "Authentication-Results") {
							continue
						}
						ar, err := parseAuthResults(f.Value)
						if err != nil {
							t.Errorf("Authentication-Results %q: %v", f.Value, err)
							continue
						}
						switch strings.ToLower(ar.AuthservID) {
						case authservID:
							ours++
						case "other.example.net":
							foreign++
							if f.Value != "other.example.net; spf=none smtp.mailfrom=bob@"+failDomain {
								t.Errorf("foreign Authentication-Results changed: %q", f.Value)
							}
						}
					}
					if ours != 1 || foreign != 1 {
						t.Errorf("Authentication-Results: %d with our authserv-id (want 1, ours), %d foreign (want 1, kept)", ours, foreign)
					}
				}},
		}},
		{name: "starttls", addr: mark4, helo: clientHELO, starttls: true, msgs: []scenarioMsg{
			{from: "judy@" + passDomain, want: pass("judy@"+passDomain, "127.0.0.1", "ip4:127.0.0.1")},
			{from: "bob@" + failDomain, want: spfWant{Result: "fail", ClientIP: "127.0.0.1",
				From: "bob@" + failDomain, Mailbox: "bob@" + failDomain, Mechanism: "-all"}},
		}},
		{name: "three messages on one connection", addr: reject4, helo: clientHELO, msgs: []scenarioMsg{
			{from: "frank@" + passDomain, want: pass("frank@"+passDomain, "127.0.0.1", "ip4:127.0.0.1")},
			{from: "grace@" + failDomain, reject: 550, status: "5.7.23"},
			{from: "heidi@" + softfailDomain, want: spfWant{Result: "softfail", ClientIP: "127.0.0.1",
				From: "heidi@" + softfailDomain, Mailbox: "heidi@" + softfailDomain, Mechanism: "~all"}},
		}},
	}
}

// runScenarios sends every scenario through r, each on its own connection,
// and checks the delivered headers.
func runScenarios(t *testing.T, r *mtaRun) {
	t.Cleanup(func() { checkNegotiated(t, r) })
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			c := dialSMTP(t, sc.addr(r), sc.helo)
			if sc.starttls {
				c.startTLS(t, r.TLS)
			}
			type sent struct {
				id string
				m  scenarioMsg
			}
			var delivered []sent
			var refused []string
			for i, m := range sc.msgs {
				id := uniqueID(r.Name, sc.name, i)
				err := c.send(t, message{ID: id, From: m.from, Header: m.header})
				if m.reject != 0 {
					checkReject(t, m, err)
					if err != nil && testing.Verbose() {
						t.Logf("MAIL FROM:<%s> refused: %d %s", m.from, err.Code, err.Msg)
					}
					refused = append(refused, id)
					c.reset(t)
					continue
				}
				if err != nil {
					t.Fatalf("message %d (MAIL FROM:<%s>) refused: %d %s", i, m.from, err.Code, err.Msg)
				}
				delivered = append(delivered, sent{id, m})
			}
			c.quit()
			for _, d := range delivered {
				got := r.Sink.wait(t, d.id, 60*time.Second)
				if testing.Verbose() {
					t.Logf("delivered %s:\n%s", d.id, headerDump(got.Header))
				}
				checkHeaders(t, r, got.Header, sc.helo, d.m.want)
				if d.m.check != nil {
					d.m.check(t, got.Header)
				}
			}
			// A refused message must never reach the sink; by now the
			// accepted ones have, so a copy of it would be there too.
			for _, id := range refused {
				if n := r.Sink.count(t, id); n != 0 {
					t.Errorf("refused message %s was delivered %d times", id, n)
				}
			}
		})
	}
}

// checkReject checks a refusal at MAIL FROM. Both MTAs put the enhanced
// status code first.
func checkReject(t *testing.T, m scenarioMsg, err *textproto.Error) {
	t.Helper()
	if err == nil {
		t.Errorf("MAIL FROM:<%s> accepted, want %d %s", m.from, m.reject, m.status)
		return
	}
	text, atMail := strings.CutPrefix(err.Msg, "MAIL FROM: ")
	if err.Code != m.reject || !atMail {
		t.Errorf("MAIL FROM:<%s>: got %d %s, want %d %s at MAIL FROM", m.from, err.Code, err.Msg, m.reject, m.status)
		return
	}
	if !strings.HasPrefix(text, m.status+" ") {
		t.Errorf("MAIL FROM:<%s>: reply %d %s, want enhanced status %s", m.from, err.Code, text, m.status)
	}
}

// checkHeaders checks the top of a delivered header: our
// Authentication-Results and Received-SPF, in that order, directly above the
// MTA's own Received field and so above everything the client sent, with the
// values want says.
func checkHeaders(t *testing.T, r *mtaRun, h []headerField, helo string, want spfWant) {
	t.Helper()
	dump := func() string { return headerDump(h) }
	// Where ours are: both exactly once, adjacent, A-R first, and above
	// the client's first field (its fake Received from old.example.net).
	iAR, iSPF, iOwn, iClient := -1, -1, -1, -1
	nSPF := 0
	for i, f := range h {
		switch {
		case strings.EqualFold(f.Name, "Received-SPF"):
			nSPF++
			iSPF = i
		case strings.EqualFold(f.Name, "Authentication-Results"):
			if ar, err := parseAuthResults(f.Value); err == nil && strings.EqualFold(ar.AuthservID, authservID) && iAR < 0 {
				iAR = i
			}
		case strings.EqualFold(f.Name, "Received") && r.OwnReceived(f) && iOwn < 0:
			iOwn = i
		case strings.EqualFold(f.Name, "Received") && strings.Contains(f.Value, "old.example.net") && iClient < 0:
			iClient = i
		}
	}
	if nSPF != 1 || iAR < 0 || iOwn < 0 || iClient < 0 {
		t.Fatalf("want one Received-SPF (got %d), our Authentication-Results, %s's Received and the client's Received; header:\n%s",
			nSPF, r.Name, dump())
	}
	if iSPF != iAR+1 {
		t.Errorf("Received-SPF (field %d) is not right below our Authentication-Results (field %d):\n%s", iSPF, iAR, dump())
	}
	if iSPF > iClient || iAR > iClient {
		t.Errorf("our fields are below the client's own header fields:\n%s", dump())
	}
	// RFC 7208 §9.1: Received-SPF goes above the Received field of the
	// SMTP receiver; RFC 8601 §5 likewise wants Authentication-Results at
	// the top. Both MTAs put a milter's index-0 insertions above their own
	// Received, so ours come directly before it.
	if iOwn != iSPF+1 {
		t.Errorf("%s's Received (field %d) is not directly below our fields (%d, %d):\n%s", r.Name, iOwn, iAR, iSPF, dump())
	}

	// Received-SPF (RFC 7208 §9.1).
	spfv, err := parseReceivedSPF(h[iSPF].Value)
	if err != nil {
		t.Fatalf("Received-SPF: %v", err)
	}
	p := spfv.Params
	expect := map[string]string{
		"client-ip":     want.ClientIP,
		"envelope-from": want.From,
		"helo":          helo,
		"identity":      "mailfrom",
	}
	if want.Mechanism != "" {
		expect["mechanism"] = want.Mechanism
	}
	if spfv.Result != want.Result {
		t.Errorf("Received-SPF result %q, want %q: %s", spfv.Result, want.Result, h[iSPF].Value)
	}
	for k, v := range expect {
		got, ok := p[k]
		if !ok || got != v {
			t.Errorf("Received-SPF %s=%q (present %v), want %q: %s", k, got, ok, v, h[iSPF].Value)
		}
	}
	// The receiver key is optional (RFC 7208 §9.1); when given it names
	// this MTA.
	if got, ok := p["receiver"]; ok && got != mtaHost {
		t.Errorf("Received-SPF receiver=%q, want %q: %s", got, mtaHost, h[iSPF].Value)
	}
	if want.Mechanism == "" {
		if p["problem"] == "" {
			t.Errorf("Received-SPF has no problem key for %s: %s", want.Result, h[iSPF].Value)
		}
		if _, ok := p["mechanism"]; ok {
			t.Errorf("Received-SPF names a mechanism for %s: %s", want.Result, h[iSPF].Value)
		}
	}
	if !strings.Contains(spfv.Comment, want.Mailbox) {
		t.Errorf("Received-SPF comment %q does not name the checked mailbox %s", spfv.Comment, want.Mailbox)
	}

	// Authentication-Results (RFC 8601 §2.7.2): spf=<result>
	// smtp.mailfrom=<mailbox>, and for the HELO, if reported, smtp.helo.
	ar, err := parseAuthResults(h[iAR].Value)
	if err != nil {
		t.Fatalf("Authentication-Results: %v", err)
	}
	var sawMailFrom bool
	for _, res := range ar.Results {
		if res.Method != "spf" {
			t.Errorf("Authentication-Results method %q, want only spf: %s", res.Method, h[iAR].Value)
			continue
		}
		switch {
		case res.Props["smtp.mailfrom"] != "":
			sawMailFrom = true
			if res.Result != want.Result || res.Props["smtp.mailfrom"] != want.Mailbox {
				t.Errorf("Authentication-Results spf=%s smtp.mailfrom=%s, want spf=%s smtp.mailfrom=%s",
					res.Result, res.Props["smtp.mailfrom"], want.Result, want.Mailbox)
			}
		case res.Props["smtp.helo"] != "":
			// client.example.test allows both loopback addresses.
			if res.Result != "pass" || res.Props["smtp.helo"] != helo {
				t.Errorf("Authentication-Results spf=%s smtp.helo=%s, want spf=pass smtp.helo=%s",
					res.Result, res.Props["smtp.helo"], helo)
			}
		default:
			t.Errorf("Authentication-Results spf result without smtp.mailfrom or smtp.helo: %s", h[iAR].Value)
		}
	}
	if !sawMailFrom {
		t.Errorf("Authentication-Results has no smtp.mailfrom result: %s", h[iAR].Value)
	}
}

// noHELOResult checks that our Authentication-Results has no smtp.helo.
func noHELOResult(t *testing.T, h []headerField) {
	t.Helper()
	for _, f := range h {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		if ar, err := parseAuthResults(f.Value); err == nil && strings.EqualFold(ar.AuthservID, authservID) {
			for _, res := range ar.Results {
				if _, ok := res.Props["smtp.helo"]; ok {
					t.Errorf("a HELO that was not checked is reported: %s", f.Value)
				}
			}
		}
	}
}

func headerDump(h []headerField) string {
	var b strings.Builder
	for _, f := range h {
		fmt.Fprintf(&b, "\t%s: %s\n", f.Name, f.Value)
	}
	return b.String()
}

// checkNegotiated: the MTA offered, and the milter asked for, no answer to
// CONNECT and HELO (SMFIP_NR_CONN, SMFIP_NR_HELO) on every connection of
// the marking milter; the scenarios passing with it proves the MTA honours
// them at protocol version 2.
func checkNegotiated(t *testing.T, r *mtaRun) {
	t.Helper()
	out := r.Mark.out.String()
	n := strings.Count(out, `msg="milter negotiated"`)
	if n == 0 {
		t.Errorf("%s: the marking milter logged no negotiation:\n%s", r.Name, out)
	}
	if got := strings.Count(out, "no_reply_connect=true no_reply_helo=true"); got != n {
		t.Errorf("%s: %d of %d negotiations without answers to CONNECT and HELO:\n%s", r.Name, got, n, out)
	}
}
