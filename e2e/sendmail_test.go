package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sendmailRoot is where .ci/install-deps unpacks the Sendmail packages;
// Sendmail and Postfix conflict as packages, so it is not installed.
func sendmailRoot() string {
	if r := os.Getenv("SPFMILTER_SENDMAIL_ROOT"); r != "" {
		return r
	}
	return "/opt/spfmilter-ci/sendmail"
}

// needSendmail skips (fails under CI=true) when the unpacked Sendmail is
// missing.
func needSendmail(t testing.TB) {
	t.Helper()
	needFile(t, filepath.Join(sendmailRoot(), "usr/libexec/sendmail/sendmail"),
		"Sendmail (unpacked by .ci/install-deps into "+sendmailRoot()+")")
}

// sendmailFilter is one milter of the test Sendmail.
type sendmailFilter struct {
	Name   string
	Milter *milterProc
	// Timeouts is the filter's T= value; "" is defaultFilterTimeouts.
	Timeouts string
}

// defaultFilterTimeouts are well above the milter's own DNS and check
// timeouts.
const defaultFilterTimeouts = "C:10s;S:60s;R:60s;E:60s"

// sendmailDaemon is one listener of the test Sendmail.
type sendmailDaemon struct {
	Name   string
	Family string // inet or inet6
	Addr   string // 127.0.0.1 or ::1
	Port   int
	Filter string // the sendmailFilter it uses
}

// sendmailMC is the m4 source of the test configuration: relay everything
// to the sink, accept from loopback only, and send each daemon's mail
// through its own filter. The default filter (for sendmail -bs) is the
// first one.
func sendmailMC(root, dir string, sinkPort int, filters []sendmailFilter, daemons []sendmailDaemon) string {
	var b strings.Builder
	fmt.Fprintf(&b, "divert(-1)\ndivert(0)dnl\ninclude(`%s/usr/share/sendmail/cf/m4/cf.m4')dnl\n", root)
	b.WriteString("VERSIONID(`spfmilter e2e')dnl\nOSTYPE(`linux')dnl\n")
	for _, kv := range [][2]string{
		{"confSERVICE_SWITCH_FILE", dir + "/service.switch"},
		{"confHOSTS_FILE", "/etc/hosts"},
		{"QUEUE_DIR", dir + "/mqueue"},
		{"MSP_QUEUE_DIR", dir + "/mqueue-client"},
		{"STATUS_FILE", dir + "/sendmail.st"},
		{"confPID_FILE", dir + "/sendmail.pid"},
		{"ALIAS_FILE", dir + "/aliases"},
		{"confDOMAIN_NAME", mtaHost},
		{"confLOG_LEVEL", "14"},
		{"confMILTER_LOG_LEVEL", "14"},
		{"confDONT_PROBE_INTERFACES", "True"},
		{"confDELIVERY_MODE", "background"},
		{"confTO_CONNECT", "10s"},
		{"confTO_IDENT", "0s"},
		{"SMART_HOST", "relay:[127.0.0.1]"},
		{"RELAY_MAILER_ARGS", fmt.Sprintf("TCP $h %d", sinkPort)},
		{"confINPUT_MAIL_FILTERS", filters[0].Name},
		{"confSERVER_CERT", dir + "/cert.pem"},
		{"confSERVER_KEY", dir + "/key.pem"},
		{"confCACERT", dir + "/cert.pem"},
		{"confCACERT_PATH", dir},
	} {
		fmt.Fprintf(&b, "define(`%s', `%s')dnl\n", kv[0], kv[1])
	}
	b.WriteString("FEATURE(`promiscuous_relay')dnl\nFEATURE(`accept_unresolvable_domains')dnl\nFEATURE(`nocanonify')dnl\n")
	b.WriteString("FEATURE(`no_default_msa')dnl\n")
	for _, d := range daemons {
		fmt.Fprintf(&b, "DAEMON_OPTIONS(`Family=%s, Addr=%s, Port=%d, Name=%s, Listen=1024, I=%s')dnl\n",
			d.Family, d.Addr, d.Port, d.Name, d.Filter)
	}
	for _, f := range filters {
		timeouts := f.Timeouts
		if timeouts == "" {
			timeouts = defaultFilterTimeouts
		}
		fmt.Fprintf(&b, "MAIL_FILTER(`%s', `S=inet:%d@127.0.0.1, F=T, T=%s')dnl\n",
			f.Name, f.Milter.Port, timeouts)
	}
	b.WriteString("MAILER(`local')dnl\nMAILER(`smtp')dnl\n")
	return b.String()
}

// syslogReader stands in for a syslog daemon when /dev/log is absent:
// Sendmail logs only through syslog. The lines end up in the test log on
// failure.
func syslogReader(t *testing.T) *lockedBuffer {
	t.Helper()
	buf := &lockedBuffer{}
	if _, err := os.Stat("/dev/log"); err == nil {
		t.Log("/dev/log exists: Sendmail's log goes to the system's syslog")
		return buf
	}
	pc, err := net.ListenPacket("unixgram", "/dev/log")
	if err != nil {
		t.Logf("no /dev/log reader (%v): Sendmail's log is lost", err)
		return buf
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p := make([]byte, 8192)
		for {
			n, _, err := pc.ReadFrom(p)
			if err != nil {
				return
			}
			buf.Write(append(p[:n:n], '\n')) //nolint:errcheck
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
		os.Remove("/dev/log")
		if t.Failed() {
			t.Logf("syslog (Sendmail):\n%s", buf.String())
		}
	})
	return buf
}

// startSendmail builds sendmail.cf with m4 and runs the daemon in the
// namespace. It returns the path of the cf for other modes (-bs) and
// Sendmail's syslog lines (empty when /dev/log belongs to the system).
func startSendmail(t *testing.T, dir string, ns *namespace, sinkPort int,
	filters []sendmailFilter, daemons []sendmailDaemon) (string, *lockedBuffer) {
	t.Helper()
	root := sendmailRoot()
	bin := filepath.Join(root, "usr/libexec/sendmail/sendmail")
	m4 := needProgram(t, "m4")
	for _, d := range []string{"mqueue", "mqueue-client"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"service.switch": "hosts files dns\naliases files\n",
		"aliases":        "postmaster: root\n",
		"sendmail.mc":    sendmailMC(root, dir, sinkPort, filters, daemons),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// m4 prints the cf on stdout and FEATURE warnings on stderr.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cf, err := exec.CommandContext(ctx, m4, filepath.Join(dir, "sendmail.mc")).Output()
	if err != nil {
		t.Fatalf("m4: %v", err)
	}
	cfPath := filepath.Join(dir, "sendmail.cf")
	if err := os.WriteFile(cfPath, cf, 0o644); err != nil {
		t.Fatal(err)
	}
	log := syslogReader(t)
	// -bD: the daemon in the foreground, a child of ours.
	p := startProc(t, "sendmail", ns.command(bin, "-C", cfPath, "-bD", "-q30m"), nil)
	for _, d := range daemons {
		host := d.Addr
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		waitListening(t, p, fmt.Sprintf("%s:%d", host, d.Port), 90*time.Second)
	}
	return cfPath, log
}

// sendmailRun starts the DNS server, the three milters, the sink and Sendmail.
func sendmailRun(t *testing.T) (*mtaRun, *namespace, string) {
	t.Helper()
	needRoot(t)
	needSendmail(t)
	needProgram(t, "smtp-sink")
	dir := safeRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	mark, rej, dry := startMilters(t, dns.Addr())
	resc := startRescueMilter(t, dns.Addr())
	s := startSink(t, openRunDir(t))
	cert := newTestCert(t, dir)
	p1, p2, p3, p4 := freePort(t), freePort(t), freePort(t), freePort(t)
	r := &mtaRun{
		Name:    "sendmail",
		Mark4:   fmt.Sprintf("127.0.0.1:%d", p1),
		Mark6:   fmt.Sprintf("[::1]:%d", p1),
		Reject4: fmt.Sprintf("127.0.0.1:%d", p2),
		DryRun4: fmt.Sprintf("127.0.0.1:%d", p3),
		Rescue4: fmt.Sprintf("127.0.0.1:%d", p4),
		Rescue:  resc,
		Sink:    s,
		TLS:     cert.Config(),
		OwnReceived: func(f headerField) bool {
			return strings.Contains(f.Value, "by "+mtaHost+" (8.")
		},
		Mark: mark,
	}
	cf, _ := startSendmail(t, dir, ns, s.Port,
		[]sendmailFilter{{Name: "spfmark", Milter: mark}, {Name: "spfreject", Milter: rej}, {Name: "spfdryrun", Milter: dry}, {Name: "spfrescue", Milter: resc}},
		[]sendmailDaemon{
			{Name: "MTA-v4", Family: "inet", Addr: "127.0.0.1", Port: p1, Filter: "spfmark"},
			{Name: "MTA-v6", Family: "inet6", Addr: "::1", Port: p1, Filter: "spfmark"},
			{Name: "MTA-reject", Family: "inet", Addr: "127.0.0.1", Port: p2, Filter: "spfreject"},
			{Name: "MTA-dryrun", Family: "inet", Addr: "127.0.0.1", Port: p3, Filter: "spfdryrun"},
			{Name: "MTA-rescue", Family: "inet", Addr: "127.0.0.1", Port: p4, Filter: "spfrescue"},
		})
	return r, ns, cf
}

func TestSendmail(t *testing.T) {
	r, ns, cf := sendmailRun(t)
	runScenarios(t, r)
	runRescue(t, r)
	t.Run("sendmail -bs", func(t *testing.T) { testSendmailBS(t, r, ns, cf) })
}

// testSendmailBS drives `sendmail -bs` (SMTP on standard input, as local
// submission programs do) with swaks. Sendmail then connects to the milter
// with no client address at all. There is nothing to check SPF against, so
// the message must pass unmarked (no Received-SPF, no Authentication-Results
// of ours), a forged field with our authserv-id must still be removed, and
// the milter must keep serving.
func testSendmailBS(t *testing.T, r *mtaRun, ns *namespace, cf string) {
	swaks := needProgram(t, "swaks")
	bin := filepath.Join(sendmailRoot(), "usr/libexec/sendmail/sendmail")
	id := uniqueID(r.Name, "bs", 0)
	m := message{ID: id, From: "bob@" + failDomain, Header: []string{
		"Authentication-Results: " + authservID + "; spf=pass smtp.mailfrom=bob@" + failDomain,
	}}
	dataFile := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(dataFile, []byte(m.data()), 0o644); err != nil {
		t.Fatal(err)
	}
	var pipe []string
	for _, a := range ns.command(bin, "-C", cf, "-bs").Args {
		pipe = append(pipe, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	out, err := runCmd(2*time.Minute, swaks, "--pipe", strings.Join(pipe, " "),
		"--helo", clientHELO, "--from", m.From, "--to", m.rcpt(), "--data", "@"+dataFile)
	if testing.Verbose() {
		t.Logf("swaks:\n%s", out)
	}
	if err != nil {
		t.Fatalf("sendmail -bs did not accept the message: %v", err)
	}
	got := r.Sink.wait(t, id, 60*time.Second)
	for _, f := range got.Header {
		if strings.EqualFold(f.Name, "Received-SPF") {
			t.Errorf("Received-SPF added without a client address: %s", f.Value)
		}
		if strings.EqualFold(f.Name, "Authentication-Results") {
			t.Errorf("Authentication-Results left or added without a client address: %s", f.Value)
		}
	}
	// The marking milter still answers: a normal SMTP message goes through
	// and is checked.
	c := dialSMTP(t, r.Mark4, clientHELO)
	id2 := uniqueID(r.Name, "after-bs", 0)
	if err := c.send(t, message{ID: id2, From: "alice@" + passDomain}); err != nil {
		t.Fatalf("after sendmail -bs, a message was refused: %d %s", err.Code, err.Msg)
	}
	c.quit()
	checkHeaders(t, r, r.Sink.wait(t, id2, 60*time.Second).Header, clientHELO,
		spfWant{Result: "pass", ClientIP: "127.0.0.1", From: "alice@" + passDomain,
			Mailbox: "alice@" + passDomain, Mechanism: "ip4:127.0.0.1"})
}
