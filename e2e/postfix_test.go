package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// postfixListener is one smtpd service of the test Postfix.
type postfixListener struct {
	Addr   string // 127.0.0.1:PORT or [::1]:PORT
	Milter string // host:port or unix:PATH of its milter; "" for none
	// CommandTimeout is its milter_command_timeout; "" keeps main.cf's.
	CommandTimeout string
}

// startPostfix runs a private Postfix instance (its own config directory,
// queue and log under dir, inside the test namespace) that relays
// everything to sinkPort and offers STARTTLS with a fresh certificate. It
// returns the client TLS configuration that trusts that certificate.
// Postfix is stopped when the test ends. extra lines are appended to
// main.cf, where a later setting overrides an earlier one.
func startPostfix(t *testing.T, dir string, ns *namespace, sinkPort int, listeners []postfixListener, extra ...string) *tls.Config {
	t.Helper()
	cert := newTestCert(t, dir)
	postfix := needProgram(t, "postfix")
	conf := filepath.Join(dir, "postfix")
	for _, d := range []string{conf, filepath.Join(dir, "spool"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix's data directory belongs to its mail_owner.
	uid, gid := postfixIDs(t)
	if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
		t.Fatal(err)
	}
	maillog := filepath.Join(dir, "maillog")
	main := fmt.Sprintf(`compatibility_level = 3.6
myhostname = %[1]s
mydomain = example.test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = all
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:%[2]d
smtp_dns_support_level = disabled
queue_directory = %[3]s/spool
data_directory = %[3]s/data
maillog_file = %[4]s
maillog_file_prefixes = %[3]s
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtputf8_enable = no
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 10s
milter_command_timeout = 60s
milter_content_timeout = 60s
smtpd_tls_security_level = may
smtpd_tls_cert_file = %[5]s
smtpd_tls_key_file = %[6]s
`, mtaHost, sinkPort, dir, maillog, cert.CertFile, cert.KeyFile)
	for _, l := range extra {
		main += l + "\n"
	}
	var master strings.Builder
	for _, l := range listeners {
		fmt.Fprintf(&master, "%s inet n - n - - smtpd", l.Addr)
		switch {
		case strings.HasPrefix(l.Milter, "unix:"):
			fmt.Fprintf(&master, " -o smtpd_milters=%s", l.Milter)
		case l.Milter != "":
			fmt.Fprintf(&master, " -o smtpd_milters=inet:%s", l.Milter)
		}
		if l.CommandTimeout != "" {
			fmt.Fprintf(&master, " -o milter_command_timeout=%s", l.CommandTimeout)
		}
		master.WriteString("\n")
	}
	// The services a relay needs, none chrooted.
	master.WriteString(`pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
showq unix n - n - - showq
tlsmgr unix - - n 1000? 1 tlsmgr
`)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), []byte(master.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(30*time.Second, postfix, "-c", conf, "check"); err != nil {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	stop := func() {
		if out, err := runCmd(30*time.Second, postfix, "-c", conf, "stop"); err != nil {
			t.Logf("postfix stop: %v\n%s", err, out)
		}
	}
	// start-fg keeps the master in the foreground, a child of ours.
	p := startProc(t, "postfix", ns.command(postfix, "-c", conf, "start-fg"), stop)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(maillog); err == nil {
				t.Logf("Postfix log:\n%s", b)
			}
		}
	})
	for _, l := range listeners {
		waitListening(t, p, l.Addr, 30*time.Second)
	}
	return cert.Config()
}

// postfixIDs is the uid and gid of the postfix user (Postfix's mail_owner,
// and the user smtp-sink runs as).
func postfixIDs(t *testing.T) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("postfix")
	if err != nil {
		unavailable(t, "no postfix user (is Postfix installed?): %v", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("postfix user %s:%s: not numeric", u.Uid, u.Gid)
	}
	return uid, gid
}

// needPostfixSink skips (fails under CI=true) unless the tests run as root
// with Postfix and smtp-sink at hand.
func needPostfixSink(t *testing.T) {
	t.Helper()
	needRoot(t)
	needProgram(t, "postfix")
	needProgram(t, "smtp-sink")
}

// postfixRun starts the DNS server, the three milters, the sink and Postfix.
func postfixRun(t *testing.T) *mtaRun {
	t.Helper()
	needPostfixSink(t)
	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	mark, rej, dry := startMilters(t, dns.Addr())
	resc := startRescueMilter(t, dns.Addr())
	s := startSink(t, dir)
	p1, p2, p3, p4 := freePort(t), freePort(t), freePort(t), freePort(t)
	r := &mtaRun{
		Name:    "postfix",
		Mark4:   fmt.Sprintf("127.0.0.1:%d", p1),
		Mark6:   fmt.Sprintf("[::1]:%d", p1),
		Reject4: fmt.Sprintf("127.0.0.1:%d", p2),
		DryRun4: fmt.Sprintf("127.0.0.1:%d", p3),
		Rescue4: fmt.Sprintf("127.0.0.1:%d", p4),
		Rescue:  resc,
		Sink:    s,
		OwnReceived: func(f headerField) bool {
			return strings.Contains(f.Value, "by "+mtaHost+" (Postfix)")
		},
		Mark: mark,
	}
	r.TLS = startPostfix(t, dir, ns, s.Port, []postfixListener{
		{Addr: r.Mark4, Milter: mark.Addr},
		{Addr: r.Mark6, Milter: mark.Addr},
		{Addr: r.Reject4, Milter: rej.Addr},
		{Addr: r.DryRun4, Milter: dry.Addr},
		{Addr: r.Rescue4, Milter: resc.Addr},
	})
	return r
}

func TestPostfix(t *testing.T) {
	r := postfixRun(t)
	runScenarios(t, r)
	runRescue(t, r)
}
