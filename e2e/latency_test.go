package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostfixLatency measures the time spfmilter adds to one message when
// SMTP sessions run one at a time through Postfix on loopback: smtp-source
// sends one message per session, one session at a time, without a milter,
// through spfmilter over TCP and through spfmilter over a unix socket, in
// interleaved rounds. It prints the median time per message of each and
// what the milter adds; it asserts only that every message was delivered.
// It is skipped unless SPFMILTER_LOAD=1.
func TestPostfixLatency(t *testing.T) {
	if os.Getenv("SPFMILTER_LOAD") != "1" {
		t.Skip("latency run; set SPFMILTER_LOAD=1")
	}
	needRoot(t)
	source := needProgram(t, "smtp-source")
	needProgram(t, "postfix")
	msgs := envInt(t, "SPFMILTER_LATENCY_MESSAGES", 100)
	rounds := envInt(t, "SPFMILTER_LATENCY_ROUNDS", 5)

	dir := openRunDir(t)
	dns := startDNS(t)
	ns := newNamespace(t, dir, strings.Split(dns.Addr(), ":")[0])
	tcp := startMilter(t, "tcp", dns.Addr())
	sock := filepath.Join(dir, "spfmilter.sock")
	unixProc := startProc(t, "spfmilter unix", exec.Command(milterBinary(t),
		"--listen", "unix:"+sock, "--listen-mode", "0666",
		"--resolver", dns.Addr(), "--authserv-id", authservID, "--trusted-networks", "",
		"--http-listen", "", "--dns-timeout", milterDNSTimeout, "--check-timeout", milterCheckTimeout), nil)
	waitUnix(t, unixProc, sock, 30*time.Second)
	s := startSink(t, dir)

	variants := []struct{ name, milter, addr string }{
		{name: "no milter"},
		{name: "spfmilter tcp", milter: tcp.Addr},
		{name: "spfmilter unix", milter: "unix:" + sock},
	}
	var listeners []postfixListener
	for i := range variants {
		variants[i].addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		listeners = append(listeners, postfixListener{Addr: variants[i].addr, Milter: variants[i].milter})
	}
	startPostfix(t, dir, ns, s.Port, listeners)

	perMsg := make([][]float64, len(variants)) // ms per message, per round
	delivered := 0
	for range rounds {
		for i, v := range variants {
			start := time.Now()
			out, err := runCmd(5*time.Minute, source, "-s", "1", "-m", strconv.Itoa(msgs), "-l", "512",
				"-f", "lat@"+passDomain, "-t", rcptAddr, "-M", mtaHost, "-S", "spfmilter latency "+v.name, v.addr)
			if err != nil {
				t.Fatalf("%s: smtp-source: %v\n%s", v.name, err, out)
			}
			perMsg[i] = append(perMsg[i], float64(time.Since(start).Microseconds())/1000/float64(msgs))
			delivered += msgs
			waitFiles(t, s.dir, delivered, 5*time.Minute)
		}
	}
	base := median(perMsg[0])
	var report strings.Builder
	for i, v := range variants {
		m := median(perMsg[i])
		fmt.Fprintf(&report, "%-16s %d rounds x %d messages, one session at a time: median %.2f ms/msg, added %.2f ms/msg\n",
			v.name, rounds, msgs, m, m-base)
	}
	fmt.Print("\n" + report.String())
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// waitUnix waits until something accepts connections on the unix socket path.
func waitUnix(t *testing.T, p *proc, path string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
			return
		}
		if p.hasExited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no socket at %s after %v", path, d)
}
