package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The time budget of one SMTP stage, end to end: the HELO and MAIL FROM
// checks of one MAIL command share one check_timeout, so an MTA whose
// milter timeout for MAIL is only a little longer gets spfmilter's answer,
// never its own timeout, even when neither the HELO's nor the sender's
// DNS ever answers.
//
// The milters run with check_timeout 3 s and DNS queries of 2 s tried
// twice, so each check on its own would run into the 3 s deadline; the MTAs
// wait 5 s. Two checks with a deadline each would take 6 s.
const (
	budgetCheckTimeout = "3s"
	budgetMTATimeout   = "5s"
)

// budgetMilters starts a marking milter and one that defers temperrors,
// HELO included, both with the short check_timeout.
func budgetMilters(t *testing.T, dnsAddr string) (mark, deferring *milterProc) {
	t.Helper()
	short := []string{"--check-timeout", budgetCheckTimeout}
	mark = startMilter(t, "budget-mark", dnsAddr, short...)
	deferring = startMilter(t, "budget-defer", dnsAddr,
		append(short, "--reject", "fail", "--reject-helo", "fail", "--defer-temperror", "--never-reject-recipients=")...)
	return mark, deferring
}

// milterTimeoutLine finds an MTA log line about a milter timing out or
// failing: Postfix's "milter inet:…: can't read SMFIC_MAIL reply packet
// header: Connection timed out", Sendmail's "Milter (name): timeout before
// data read" and "… to error state", and their kin. Setting names such as
// milter_command_timeout and the test's timeout.example.test do not match.
var milterTimeoutLine = regexp.MustCompile(`(?im)^.*milter.*(timed out|\btimeout\b(?:[^._]|$)|to error state|can't read).*$`)

// testBudget sends, from a HELO and a sender whose SPF records never
// arrive, one message through the deferring milter (451 4.7.24 from
// spfmilter at MAIL FROM) and one through the marking milter (delivered
// with temperror for both identities), then checks the MTA's log for a
// milter timeout. mtaLog returns the log so far; ok is false when the MTA's
// log cannot be read here.
func testBudget(t *testing.T, mta, markAddr, deferAddr string, sk *sink, mtaLog func() (log string, ok bool)) {
	from := "alice@" + timeoutDomain

	c := dialSMTP(t, deferAddr, slowHELO)
	err := c.send(t, message{ID: uniqueID(mta, "budget-defer", 0), From: from})
	c.quit()
	switch {
	case err == nil:
		t.Errorf("deferring milter: the message was accepted, want 451 4.7.24 at MAIL FROM")
	case err.Code != 451 || !strings.HasPrefix(err.Msg, "MAIL FROM: 4.7.24 ") || !strings.Contains(err.Msg, "SPF temperror for "+slowHELO):
		// 451 4.7.1 or 4.3.x with other words is the MTA's own default
		// action after a milter timeout.
		t.Errorf("deferring milter: got %d %s, want spfmilter's 451 4.7.24 SPF temperror for %s", err.Code, err.Msg, slowHELO)
	}

	id := uniqueID(mta, "budget-mark", 0)
	c = dialSMTP(t, markAddr, slowHELO)
	if err := c.send(t, message{ID: id, From: from}); err != nil {
		t.Fatalf("marking milter: refused with %d %s, want delivered with temperror", err.Code, err.Msg)
	}
	c.quit()
	got := sk.wait(t, id, 60*time.Second)
	var ar, rs string
	for _, f := range got.Header {
		switch {
		case strings.EqualFold(f.Name, "Authentication-Results") && ar == "":
			ar = f.Value
		case strings.EqualFold(f.Name, "Received-SPF") && rs == "":
			rs = f.Value
		}
	}
	a, perr := parseAuthResults(ar)
	if perr != nil || !strings.EqualFold(a.AuthservID, authservID) {
		t.Fatalf("no Authentication-Results of ours (%v):\n%s", perr, headerDump(got.Header))
	}
	want := map[string]string{"smtp.mailfrom": from, "smtp.helo": slowHELO}
	for _, res := range a.Results {
		for prop, v := range want {
			if res.Props[prop] == v {
				if res.Result != "temperror" {
					t.Errorf("spf=%s %s=%s, want temperror", res.Result, prop, v)
				}
				delete(want, prop)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("Authentication-Results lacks %v: %s", want, ar)
	}
	if s, err := parseReceivedSPF(rs); err != nil || s.Result != "temperror" {
		t.Errorf("Received-SPF %q (%v), want temperror", rs, err)
	}

	log, ok := mtaLog()
	if !ok {
		t.Logf("%s's log cannot be read here; the replies above are the proof", mta)
		return
	}
	if m := milterTimeoutLine.FindAllString(log, -1); len(m) > 0 {
		t.Errorf("%s timed out waiting for the milter:\n%s", mta, strings.Join(m, "\n"))
	}
}

func TestPostfixTimeBudget(t *testing.T) {
	needPostfixSink(t)
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	mark, deferring := budgetMilters(t, dns.Addr())
	sk := startSink(t, dir)
	p1, p2 := freePort(t), freePort(t)
	markAddr, deferAddr := fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2)
	startPostfix(t, dir, ns, sk.Port, []postfixListener{
		{Addr: markAddr, Milter: mark.Addr, CommandTimeout: budgetMTATimeout},
		{Addr: deferAddr, Milter: deferring.Addr, CommandTimeout: budgetMTATimeout},
	})
	testBudget(t, "postfix", markAddr, deferAddr, sk, func() (string, bool) {
		b, err := os.ReadFile(filepath.Join(dir, "maillog"))
		if err != nil {
			t.Errorf("Postfix log: %v", err)
			return "", false
		}
		return string(b), true
	})
}

func TestSendmailTimeBudget(t *testing.T) {
	needRoot(t)
	needSendmail(t)
	needProgram(t, "smtp-sink")
	dir := safeRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	mark, deferring := budgetMilters(t, dns.Addr())
	sk := startSink(t, openRunDir(t))
	newTestCert(t, dir)
	p1, p2 := freePort(t), freePort(t)
	timeouts := "C:10s;S:" + budgetMTATimeout + ";R:" + budgetMTATimeout + ";E:60s"
	_, log := startSendmail(t, dir, ns, sk.Port,
		[]sendmailFilter{
			{Name: "budgetmark", Milter: mark, Timeouts: timeouts},
			{Name: "budgetdefer", Milter: deferring, Timeouts: timeouts},
		},
		[]sendmailDaemon{
			{Name: "MTA-mark", Family: "inet", Addr: "127.0.0.1", Port: p1, Filter: "budgetmark"},
			{Name: "MTA-defer", Family: "inet", Addr: "127.0.0.1", Port: p2, Filter: "budgetdefer"},
		})
	testBudget(t, "sendmail", fmt.Sprintf("127.0.0.1:%d", p1), fmt.Sprintf("127.0.0.1:%d", p2), sk, func() (string, bool) {
		s := log.String()
		// With LogLevel 14 Sendmail logs every milter step; an empty
		// buffer means the log went to the system's syslog.
		return s, s != ""
	})
}

// The timeout lines both MTAs write (seen with milter timeouts below the
// check's deadline) match, the log lines of a good run do not.
func TestMilterTimeoutLine(t *testing.T) {
	for _, line := range []string{
		"Dec 01 15:21:49 mx postfix/smtpd[29641]: warning: milter inet:127.0.0.1:38419: can't read SMFIC_MAIL reply packet header: Connection timed out",
		"<19>Dec  1 15:22:46 sendmail[8965]: 6B1FMe7E008965: Milter (budgetdefer): timeout before data read, where=mail",
		"<22>Dec  1 15:22:46 sendmail[8965]: 6B1FMe7E008965: Milter (budgetdefer): to error state",
	} {
		if !milterTimeoutLine.MatchString(line) {
			t.Errorf("not found: %s", line)
		}
	}
	for _, line := range []string{
		"Dec 01 15:18:59 mx postfix/smtpd[17257]: NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 451 4.7.24 SPF temperror for slowhelo.example.test: check deadline exceeded during TXT slowhelo.example.test; from=<alice@timeout.example.test> proto=ESMTP helo=<slowhelo.example.test>",
		`<22>Dec  1 15:19:55 sendmail[29478]: 6B1FJp7r029478: Milter (budgetmark) insert (0): header: Received-SPF: temperror (mx.example.test: error in processing during lookup of\n\talice@timeout.example.test)`,
		"postconf: milter_command_timeout = 5s",
	} {
		if milterTimeoutLine.MatchString(line) {
			t.Errorf("found: %s", line)
		}
	}
}
