package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostfixLoad is a bounded load run through Postfix on loopback with
// smtp-source: the same messages without a milter, with spfmilter
// enforcing (--reject fail), with spfmilter marking only, and with
// --dkim-rescue mailfrom for passing and for rescued failing senders, each printed as
// messages per second accepted by Postfix. It measures; it asserts only that
// every message was accepted and delivered. bench/postfix-load.sh runs it;
// it is skipped unless SPFMILTER_LOAD=1.
func TestPostfixLoad(t *testing.T) {
	if os.Getenv("SPFMILTER_LOAD") != "1" {
		t.Skip("load run; set SPFMILTER_LOAD=1 (bench/postfix-load.sh does)")
	}
	needRoot(t)
	source := needProgram(t, "smtp-source")
	needProgram(t, "postfix")
	msgs := envInt(t, "SPFMILTER_LOAD_MESSAGES", 2000)
	sessions := envInt(t, "SPFMILTER_LOAD_SESSIONS", 20)
	size := envInt(t, "SPFMILTER_LOAD_SIZE", 2048)

	dir := openRunDir(t)
	dns := startDNS(t)
	ns := newNamespace(t, dir, strings.Split(dns.Addr(), ":")[0])
	enforce := startMilter(t, "enforce", dns.Addr(), "--reject", "fail")
	mark := startMilter(t, "mark", dns.Addr())
	rescue := startMilter(t, "rescue", dns.Addr(), "--reject", "fail", "--dkim-rescue", "mailfrom")
	s := startSink(t, dir)

	// A message of about size bytes signed by failDomain, LF line ends
	// (smtp-source -F adds CR).
	signedFile := filepath.Join(dir, "signed.eml")
	m := message{ID: "load-signed", From: "load@" + failDomain}
	m.Raw = strings.Replace(m.data(), bodyMarker, strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", size/64)+bodyMarker, 1)
	if err := os.WriteFile(signedFile, []byte(strings.ReplaceAll(signed(t, m), "\r\n", "\n")), 0o644); err != nil {
		t.Fatal(err)
	}

	type variant struct {
		name   string
		milter string
		from   string
		addr   string
		file   string // smtp-source -F: a whole message instead of -l bytes
	}
	variants := []variant{
		{name: "no milter", from: "load@" + passDomain},
		// Senders that pass: the enforcing milter checks, marks and
		// accepts every message.
		{name: "spfmilter enforcing (--reject fail), pass", milter: enforce.Addr, from: "load@" + passDomain},
		// Senders that fail: the marking milter only adds headers.
		{name: "spfmilter mark only, fail", milter: mark.Addr, from: "load@" + failDomain},
		// dkim_rescue on: passing senders (the body stage is negotiated
		// and each chunk dropped), then failing senders whose signature
		// of failDomain rescues every message (collected and verified).
		{name: "spfmilter enforcing + dkim_rescue, pass", milter: rescue.Addr, from: "load@" + passDomain},
		{name: "spfmilter enforcing + dkim_rescue, fail rescued", milter: rescue.Addr, from: "load@" + failDomain, file: signedFile},
	}
	var listeners []postfixListener
	for i := range variants {
		variants[i].addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		listeners = append(listeners, postfixListener{Addr: variants[i].addr, Milter: variants[i].milter})
	}
	startPostfix(t, dir, ns, s.Port, listeners)

	delivered := 0
	var report strings.Builder
	for _, v := range variants {
		host, port, _ := strings.Cut(v.addr, ":")
		start := time.Now()
		args := []string{"-s", strconv.Itoa(sessions), "-m", strconv.Itoa(msgs),
			"-f", v.from, "-t", rcptAddr, "-M", mtaHost}
		if v.file != "" {
			args = append(args, "-F", v.file)
		} else {
			args = append(args, "-l", strconv.Itoa(size), "-S", "spfmilter load "+v.name)
		}
		out, err := runCmd(10*time.Minute, source, append(args, host+":"+port)...)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("%s: smtp-source: %v\n%s", v.name, err, out)
		}
		// Let the queue drain into the sink before the next run, so that
		// runs do not compete with each other's deliveries.
		delivered += msgs
		waitFiles(t, s.dir, delivered, 5*time.Minute)
		line := fmt.Sprintf("%-45s %d messages, %d sessions, %d bytes: %.2fs, %.1f msgs/s",
			v.name, msgs, sessions, size, elapsed.Seconds(), float64(msgs)/elapsed.Seconds())
		report.WriteString(line + "\n")
	}
	fmt.Print("\n" + report.String())
}

// waitFiles waits until dir holds n complete messages.
func waitFiles(t *testing.T, dir string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := 0
		filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error { //nolint:errcheck
			if err == nil && !e.IsDir() {
				got++
			}
			return nil
		})
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages delivered to the sink after %v", got, n, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}
