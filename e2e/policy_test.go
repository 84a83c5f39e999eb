package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A message whose MAIL FROM fails under --actions mailfrom.fail=quarantine
// is accepted, marked, and held in Postfix's hold queue (SMFIR_QUARANTINE);
// a passing one on the same connection is delivered.
func TestPostfixQuarantine(t *testing.T) {
	needPostfixSink(t)
	postcat := needProgram(t, "postcat")
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	m := startMilter(t, "quarantine", dns.Addr(), "--actions", "mailfrom.fail=quarantine", "--log-level", "debug")
	s := startSink(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startPostfix(t, dir, ns, s.Port, []postfixListener{{Addr: addr, Milter: m.Addr}})

	held := sendHeldAndPassing(t, "postfix", addr, s)

	// The hold queue is a directory of queue files; postcat reads one.
	hold := filepath.Join(dir, "spool", "hold")
	var file, content string
	for deadline := time.Now().Add(60 * time.Second); file == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		entries, _ := os.ReadDir(hold)
		for _, e := range entries {
			out, err := runCmd(30*time.Second, postcat, "-c", filepath.Join(dir, "postfix"), "-h", filepath.Join(hold, e.Name()))
			if err == nil && strings.Contains(out, held) {
				file, content = e.Name(), out
			}
		}
	}
	if file == "" {
		entries, _ := os.ReadDir(hold)
		t.Fatalf("message %s not in the hold queue %s (%d files)", held, hold, len(entries))
	}
	if !strings.Contains(content, "spf=fail smtp.mailfrom=bob@"+failDomain) || !strings.Contains(content, "Received-SPF: fail") {
		t.Errorf("held message lacks our fields:\n%s", content)
	}
	if n := s.count(t, held); n != 0 {
		t.Errorf("held message delivered %d times", n)
	}
	if out := m.out.String(); !strings.Contains(out, "action=quarantine") || !strings.Contains(out, `quarantine="SPF fail for mailfrom `+failDomain+`"`) {
		t.Errorf("milter log lacks the quarantine:\n%s", out)
	}
}

// sendHeldAndPassing sends, on one connection to addr, a message whose MAIL
// FROM fails (to be quarantined) and a passing one, waits for the passing
// one at s and returns the ID of the other.
func sendHeldAndPassing(t *testing.T, mta, addr string, s *sink) string {
	t.Helper()
	c := dialSMTP(t, addr, clientHELO)
	held, passed := uniqueID(mta, "quarantine", 0), uniqueID(mta, "quarantine", 1)
	if err := c.send(t, message{ID: held, From: "bob@" + failDomain}); err != nil {
		t.Fatalf("quarantined message refused: %d %s", err.Code, err.Msg)
	}
	if err := c.send(t, message{ID: passed, From: "alice@" + passDomain}); err != nil {
		t.Fatalf("passing message refused: %d %s", err.Code, err.Msg)
	}
	c.quit()
	s.wait(t, passed, 60*time.Second)
	return held
}

// With --reject fail and never_reject_recipients (postmaster@ by default,
// plus one address), a failing sender is refused at RCPT TO for an ordinary
// recipient while postmaster@ and the opted-out recipient of the same
// message get it, marked; a passing sender reaches every recipient.
func TestPostfixRcptOptOut(t *testing.T) {
	needPostfixSink(t)
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	optOut := "customer@dest.example.test"
	m := startMilter(t, "optout", dns.Addr(), "--reject", "fail",
		"--never-reject-recipients", "postmaster@", "--never-reject-recipients", optOut, "--log-level", "debug")
	s := startSink(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startPostfix(t, dir, ns, s.Port, []postfixListener{{Addr: addr, Milter: m.Addr}})
	testRcptOptOut(t, addr, s, optOut, postfixOwn)
	if out := m.out.String(); !strings.Contains(out, "rcpt=true") {
		t.Errorf("the RCPT stage was not negotiated:\n%s", out)
	}
}

func testRcptOptOut(t *testing.T, addr string, s *sink, optOut string, own func(headerField) bool) {
	t.Helper()
	c := dialSMTP(t, addr, clientHELO)
	id := uniqueID("rcpt", "optout", 0)
	if err := c.c.Mail("bob@" + failDomain); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	err := c.c.Rcpt(rcptAddr)
	if te, ok := err.(*textproto.Error); !ok || te.Code != 550 || !strings.HasPrefix(te.Msg, "5.7.23 ") {
		t.Errorf("RCPT TO:<%s>: %v, want 550 5.7.23", rcptAddr, err)
	}
	for _, r := range []string{"postmaster@dest.example.test", optOut} {
		if err := c.c.Rcpt(r); err != nil {
			t.Fatalf("RCPT TO:<%s>: %v", r, err)
		}
	}
	w, err := c.c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := w.Write([]byte(message{ID: id, From: "bob@" + failDomain}.data())); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	passID := uniqueID("rcpt", "optout", 1)
	if err := c.send(t, message{ID: passID, From: "alice@" + passDomain}); err != nil {
		t.Fatalf("passing sender refused: %d %s", err.Code, err.Msg)
	}
	c.quit()

	got := s.wait(t, id, 60*time.Second)
	s.wait(t, passID, 60*time.Second)
	rcpts := envelopeRcpts(got.Raw)
	slices.Sort(rcpts)
	if want := []string{optOut, "postmaster@dest.example.test"}; !slices.Equal(rcpts, want) {
		t.Errorf("delivered to %q, want %q", rcpts, want)
	}
	checkHeaders(t, &mtaRun{Name: "rcpt", OwnReceived: own}, got.Header, clientHELO,
		spfWant{Result: "fail", ClientIP: "127.0.0.1", From: "bob@" + failDomain, Mailbox: "bob@" + failDomain, Mechanism: "-all"})
}

// envelopeRcpts are the recipients smtp-sink noted (X-Rcpt-Args).
func envelopeRcpts(raw string) []string {
	var out []string
	for line := range strings.SplitSeq(raw, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "X-Rcpt-Args: "); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				out = append(out, strings.Trim(f[0], "<>"))
			}
		}
	}
	return out
}

// The same through Sendmail, which also reports RCPT TO to the milter.
func TestSendmailRcptOptOut(t *testing.T) {
	needRoot(t)
	needSendmail(t)
	needProgram(t, "smtp-sink")
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	optOut := "customer@dest.example.test"
	m := startMilter(t, "optout", dns.Addr(), "--reject", "fail",
		"--never-reject-recipients", "postmaster@,"+optOut, "--log-level", "debug")
	s := startSink(t, dir)
	port := freePort(t)
	startSendmail(t, dir, ns, s.Port, []sendmailFilter{{Name: "spfoptout", Milter: m}},
		[]sendmailDaemon{{Name: "MTA-optout", Family: "inet", Addr: "127.0.0.1", Port: port, Filter: "spfoptout"}})
	testRcptOptOut(t, fmt.Sprintf("127.0.0.1:%d", port), s, optOut, sendmailOwn)
	if out := m.out.String(); !strings.Contains(out, "rcpt=true") {
		t.Errorf("the RCPT stage was not negotiated:\n%s", out)
	}
}

// policyMTA starts the MTA under test, relaying to sinkPort, with one
// listener on loopback per milter; it returns the listeners' addresses in
// the milters' order.
type policyMTA func(t *testing.T, dir string, ns *namespace, sinkPort int, milters ...*milterProc) []string

func postfixPolicyMTA(t *testing.T, dir string, ns *namespace, sinkPort int, milters ...*milterProc) []string {
	t.Helper()
	var addrs []string
	var ls []postfixListener
	for _, m := range milters {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		ls = append(ls, postfixListener{Addr: addrs[len(addrs)-1], Milter: m.Addr})
	}
	startPostfix(t, dir, ns, sinkPort, ls)
	return addrs
}

func sendmailPolicyMTA(t *testing.T, dir string, ns *namespace, sinkPort int, milters ...*milterProc) []string {
	t.Helper()
	var addrs []string
	var fs []sendmailFilter
	var ds []sendmailDaemon
	for i, m := range milters {
		port := freePort(t)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
		name := fmt.Sprintf("spfpolicy%d", i)
		fs = append(fs, sendmailFilter{Name: name, Milter: m})
		ds = append(ds, sendmailDaemon{Name: fmt.Sprintf("MTA-policy%d", i), Family: "inet", Addr: "127.0.0.1", Port: port, Filter: name})
	}
	startSendmail(t, dir, ns, sinkPort, fs, ds)
	return addrs
}

// postfixOwn and sendmailOwn recognise the Received field the MTA under
// test adds.
func postfixOwn(f headerField) bool  { return strings.Contains(f.Value, "by "+mtaHost+" (Postfix)") }
func sendmailOwn(f headerField) bool { return strings.Contains(f.Value, "by "+mtaHost+" (8.") }

// A client that passes SPF for a listed forwarder gets a failing sender's
// message delivered (marked fail); listing the failing sender's own domain
// as a forwarder exempts nobody.
func TestPostfixForwarder(t *testing.T) {
	needRoot(t)
	needProgram(t, "postfix")
	testForwarder(t, "postfix", postfixOwn, postfixPolicyMTA)
}

// The same through Sendmail.
func TestSendmailForwarder(t *testing.T) {
	needRoot(t)
	needSendmail(t)
	testForwarder(t, "sendmail", sendmailOwn, sendmailPolicyMTA)
}

func testForwarder(t *testing.T, mta string, own func(headerField) bool, startMTA policyMTA) {
	t.Helper()
	needProgram(t, "smtp-sink")
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	enforce := []string{"--reject", "fail", "--never-reject-recipients="}
	fwd := startMilter(t, "forwarder", dns.Addr(), append(enforce, "--forwarder-domains", fwdDomain)...)
	named := startMilter(t, "named", dns.Addr(), append(enforce, "--forwarder-domains", failDomain)...)
	s := startSink(t, dir)
	addrs := startMTA(t, dir, ns, s.Port, fwd, named)

	c := dialSMTP(t, addrs[0], clientHELO)
	id := uniqueID(mta, "forwarder", 0)
	if err := c.send(t, message{ID: id, From: "bob@" + failDomain}); err != nil {
		t.Fatalf("forwarded message refused: %d %s", err.Code, err.Msg)
	}
	c.quit()
	got := s.wait(t, id, 60*time.Second)
	checkHeaders(t, &mtaRun{Name: mta, OwnReceived: own},
		got.Header, clientHELO, spfWant{Result: "fail", ClientIP: "127.0.0.1", From: "bob@" + failDomain, Mailbox: "bob@" + failDomain, Mechanism: "-all"})
	if out := fwd.out.String(); !strings.Contains(out, "reason=forwarder exempt=forwarder exempt_by="+fwdDomain) {
		t.Errorf("milter log lacks the exemption:\n%s", out)
	}

	c = dialSMTP(t, addrs[1], clientHELO)
	err := c.send(t, message{ID: uniqueID(mta, "forwarder", 1), From: "bob@" + failDomain})
	if err == nil || err.Code != 550 {
		t.Errorf("a forwarder named but not passed: %v, want 550", err)
	}
	c.quit()
}

// A shadow policy that would refuse what the live one marks: the message is
// delivered, and the difference shows in /metrics and the log.
func TestPostfixShadowMetrics(t *testing.T) {
	needRoot(t)
	needProgram(t, "postfix")
	testShadowMetrics(t, "postfix", postfixPolicyMTA)
}

// The same through Sendmail.
func TestSendmailShadowMetrics(t *testing.T) {
	needRoot(t)
	needSendmail(t)
	testShadowMetrics(t, "sendmail", sendmailPolicyMTA)
}

func testShadowMetrics(t *testing.T, mta string, startMTA policyMTA) {
	t.Helper()
	needProgram(t, "smtp-sink")
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	m := startMilter(t, "shadow", dns.Addr(), "--http-listen", httpAddr, "--shadow.reject", "fail")
	s := startSink(t, dir)
	addrs := startMTA(t, dir, ns, s.Port, m)

	c := dialSMTP(t, addrs[0], clientHELO)
	ids := []string{uniqueID(mta, "shadow", 0), uniqueID(mta, "shadow", 1)}
	for i, from := range []string{"bob@" + failDomain, "alice@" + passDomain} {
		if err := c.send(t, message{ID: ids[i], From: from}); err != nil {
			t.Fatalf("MAIL FROM:<%s> refused under a shadow policy: %d %s", from, err.Code, err.Msg)
		}
	}
	c.quit()
	for _, id := range ids {
		s.wait(t, id, 60*time.Second)
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	for series, want := range map[string]string{
		`spfmilter_shadow_differences_total{live_action="accept",shadow_action="reject"}`: "1",
		`spfmilter_shadow_differences_total{live_action="reject",shadow_action="accept"}`: "0",
		`spfmilter_milter_actions_total{action="accept",reason="none"}`:                   "2",
	} {
		if !strings.Contains(string(body), series+" "+want+"\n") {
			t.Errorf("/metrics lacks %s %s:\n%s", series, want, grepMetric(string(body), "spfmilter_shadow"))
		}
	}
	if out := m.out.String(); strings.Count(out, `msg="shadow policy differs"`) != 1 || !strings.Contains(out, "live_action=accept") {
		t.Errorf("milter log:\n%s", out)
	}
}

func grepMetric(body, prefix string) string {
	var out []string
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// A second Postfix on 127.0.0.2 is the trusted relay (a backup MX): a client
// on 127.0.0.3 hands it messages, it relays them to the Postfix under test,
// whose milter reads 127.0.0.3 from the relay's Received field. A failing
// sender is refused at end of message (the relay logs the 550 5.7.23); a
// passing one is delivered with Received-SPF naming the client and the relay.
func TestPostfixTrustedRelay(t *testing.T) {
	needRoot(t)
	needProgram(t, "postfix")
	testTrustedRelay(t, func(t *testing.T, dir string, ns *namespace, sinkPort, mtaPort int, m *milterProc) {
		startPostfix(t, dir, ns, sinkPort, []postfixListener{{Addr: fmt.Sprintf("127.0.0.1:%d", mtaPort), Milter: m.Addr}})
	})
}

// The same with Sendmail as the MTA under test (the relay is Postfix).
func TestSendmailTrustedRelay(t *testing.T) {
	needRoot(t)
	needProgram(t, "postfix")
	needSendmail(t)
	testTrustedRelay(t, func(t *testing.T, dir string, ns *namespace, sinkPort, mtaPort int, m *milterProc) {
		startSendmail(t, dir, ns, sinkPort, []sendmailFilter{{Name: "spfrelay", Milter: m}},
			[]sendmailDaemon{{Name: "MTA-relay", Family: "inet", Addr: "127.0.0.1", Port: mtaPort, Filter: "spfrelay"}})
	})
}

func testTrustedRelay(t *testing.T, startMTA func(t *testing.T, dir string, ns *namespace, sinkPort, mtaPort int, m *milterProc)) {
	needProgram(t, "smtp-sink")
	dns := startDNS(t)
	dir, relayDir := openRunDir(t), openRunDir(t)
	ns := newNamespace(t, dir, strings.Split(dns.Addr(), ":")[0])
	m := startMilter(t, "relay", dns.Addr(), "--reject", "fail", "--never-reject-recipients=", "--trusted-relays", "127.0.0.2/32")
	s := startSink(t, dir)
	mtaPort := freePort(t)
	startMTA(t, dir, ns, s.Port, mtaPort, m)
	relayAddr := fmt.Sprintf("127.0.0.2:%d", freePort(t))
	relayNS := newNamespace(t, relayDir, strings.Split(dns.Addr(), ":")[0])
	startPostfix(t, relayDir, relayNS, mtaPort, []postfixListener{{Addr: relayAddr}},
		"myhostname = relay.example.test", "smtp_bind_address = 127.0.0.2", "inet_protocols = ipv4")

	c := dialSMTPFrom(t, "127.0.0.3", relayAddr, clientHELO)
	failID, passID := uniqueID("relay", "fail", 0), uniqueID("relay", "pass", 1)
	for id, from := range map[string]string{failID: "bob@" + failDomain, passID: "alice@" + relayedDomain} {
		if err := c.send(t, message{ID: id, From: from}); err != nil {
			t.Fatalf("the relay refused MAIL FROM:<%s>: %d %s", from, err.Code, err.Msg)
		}
	}
	c.quit()

	got := s.wait(t, passID, 60*time.Second)
	var rspf string
	for _, f := range got.Header {
		if strings.EqualFold(f.Name, "Received-SPF") {
			rspf = strings.Join(strings.Fields(f.Value), " ")
		}
	}
	if !strings.HasPrefix(rspf, "pass ") || !strings.Contains(rspf, "client-ip=127.0.0.3; x-relay=127.0.0.2;") || !strings.Contains(rspf, "helo="+clientHELO+";") {
		t.Errorf("Received-SPF %q, want pass for 127.0.0.3 through 127.0.0.2 with HELO %s:\n%s", rspf, clientHELO, headerDump(got.Header))
	}
	// The relay tried the failing one and was refused at end of message.
	relayLog := filepath.Join(relayDir, "maillog")
	var logText string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(relayLog)
		if logText = string(b); strings.Contains(logText, "5.7.23") {
			break
		}
	}
	if !strings.Contains(logText, "said: 550 5.7.23 SPF fail for "+failDomain) || !strings.Contains(logText, "in reply to end of DATA command") {
		t.Errorf("the relay's log shows no 550 5.7.23 after the data:\n%s", logText)
	}
	if n := s.count(t, failID); n != 0 {
		t.Errorf("refused message delivered %d times", n)
	}
	if out := m.out.String(); !strings.Contains(out, "relay=127.0.0.2 relayed_client_ip=127.0.0.3") || !strings.Contains(out, "stage=eom") {
		t.Errorf("milter log:\n%s", out)
	}
}

// Sendmail quarantines the message: its queue file becomes hf<id> (held,
// never delivered) and keeps the reason on a q line; a passing message on
// the same connection is delivered.
func TestSendmailQuarantine(t *testing.T) {
	needRoot(t)
	needSendmail(t)
	needProgram(t, "smtp-sink")
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	m := startMilter(t, "quarantine", dns.Addr(), "--actions", "mailfrom.fail=quarantine", "--log-level", "debug")
	s := startSink(t, dir)
	port := freePort(t)
	startSendmail(t, dir, ns, s.Port, []sendmailFilter{{Name: "spfhold", Milter: m}},
		[]sendmailDaemon{{Name: "MTA-hold", Family: "inet", Addr: "127.0.0.1", Port: port, Filter: "spfhold"}})

	held := sendHeldAndPassing(t, "sendmail", fmt.Sprintf("127.0.0.1:%d", port), s)

	queue := filepath.Join(dir, "mqueue")
	var content string
	for deadline := time.Now().Add(60 * time.Second); content == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		entries, _ := os.ReadDir(queue)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "hf") {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(queue, e.Name())); err == nil && strings.Contains(string(b), held) {
				content = string(b)
			}
		}
	}
	if content == "" {
		entries, _ := os.ReadDir(queue)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("no quarantined queue file (hf*) for %s in %s: %q", held, queue, names)
	}
	if !strings.Contains(content, "\nqSPF fail for mailfrom "+failDomain+"\n") || !strings.Contains(content, "Received-SPF: fail") {
		t.Errorf("quarantined queue file lacks the reason or our fields:\n%s", content)
	}
	if n := s.count(t, held); n != 0 {
		t.Errorf("quarantined message delivered %d times", n)
	}
	if out := m.out.String(); !strings.Contains(out, "quarantine=true") || !strings.Contains(out, "action=quarantine") {
		t.Errorf("milter log:\n%s", out)
	}
}
