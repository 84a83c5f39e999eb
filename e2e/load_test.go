package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loadSetup is one way Postfix runs in the load comparison.
type loadSetup struct {
	name   string
	index  int
	addr   string // the smtpd listener
	pid    int    // the milter's process, 0 for none
	header string // what the milter adds to every message it passes
	from   string // the envelope sender; "" is load@pass.example.test
	file   string // smtp-source -F: a whole message instead of -l bytes
	// loadOnly leaves the setup out of the one-session-at-a-time runs.
	loadOnly bool
}

// loadSubject starts the subject of every load message; the setup's index
// follows, so that the delivered messages can be told apart.
const loadSubject = "spfmilter-load"

// rescuedLoadID is the X-Test-ID of the signed message that dkim_rescue
// rescues.
const rescuedLoadID = "load-signed"

// TestPostfixLoad compares Postfix without a milter, with spfmilter over TCP,
// with spfmilter over a unix socket and with pyspf-milter (the Debian
// package), all against the same DNS server and zones, in interleaved
// rounds: smtp-source → Postfix → smtp-sink, one message per SMTP session.
// It prints, per setup, the median messages per second Postfix accepted, the
// ratio to no milter and the milter's CPU time per message (from
// /proc/PID/stat); then the time per message with sessions one at a time and
// what each milter adds to it. It measures; it asserts only that every
// message was accepted and delivered. It also runs spfmilter with
// --dkim-rescue mailfrom, 20 sessions only, for passing senders and for
// failing senders rescued by a signature. SPFMILTER_LOAD_BASELINE=PATH adds
// another spfmilter build over TCP and a unix socket to the same rounds.
// bench/postfix-load.sh and bench/postfix-syscalls.sh run it; it is skipped
// unless SPFMILTER_LOAD=1.
func TestPostfixLoad(t *testing.T) {
	source := needLoadRun(t, "load run; set SPFMILTER_LOAD=1 (bench/postfix-load.sh does)")
	pyspf := needProgram(t, "pyspf-milter")
	msgs := envInt(t, "SPFMILTER_LOAD_MESSAGES", 1000)
	sessions := envInt(t, "SPFMILTER_LOAD_SESSIONS", 20)
	size := envInt(t, "SPFMILTER_LOAD_SIZE", 2048)
	rounds := envInt(t, "SPFMILTER_LOAD_ROUNDS", 5)
	serial := envInt(t, "SPFMILTER_LOAD_SERIAL_MESSAGES", 200)

	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	// Both milters reject a failing MAIL FROM; the senders pass, so each
	// message is checked and marked.
	tcp := startMilter(t, "tcp", dns.Addr(), "--reject", "fail")
	sock := filepath.Join(dir, "spfmilter.sock")
	unix := startMilterOn(t, "unix", dns.Addr(), "unix:"+sock, "--reject", "fail")
	py, pyAddr := startPyspfMilter(t, pyspf, dir, ns)
	s := startSink(t, dir)

	setups := []loadSetup{
		{name: "no milter"},
		{name: "spfmilter, TCP", pid: tcp.cmd.Process.Pid, header: "Received-SPF: pass"},
		{name: "spfmilter, unix socket", pid: unix.cmd.Process.Pid, header: "Received-SPF: pass"},
		{name: "pyspf-milter, TCP", pid: py.cmd.Process.Pid, header: "spf=pass"},
	}
	milters := []string{"", tcp.Addr, "unix:" + sock, pyAddr}
	// Another build (an earlier one, say) runs in the same rounds, so that
	// before and after see the same machine load.
	if bin := os.Getenv("SPFMILTER_LOAD_BASELINE"); bin != "" {
		baseAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		baseTCP := startMilterBinOn(t, bin, "baseline tcp", dns.Addr(), "inet:"+baseAddr, "--reject", "fail")
		baseSock := filepath.Join(dir, "baseline.sock")
		baseUnix := startMilterBinOn(t, bin, "baseline unix", dns.Addr(), "unix:"+baseSock, "--reject", "fail")
		setups = append(setups,
			loadSetup{name: "baseline spfmilter, TCP", pid: baseTCP.cmd.Process.Pid, header: "Received-SPF: pass"},
			loadSetup{name: "baseline spfmilter, unix socket", pid: baseUnix.cmd.Process.Pid, header: "Received-SPF: pass"})
		milters = append(milters, baseAddr, "unix:"+baseSock)
	}
	// dkim_rescue on (20 sessions only): passing senders (the body stage is
	// negotiated and each chunk dropped), then failing senders whose
	// signature of failDomain rescues every message (collected and
	// verified). The signed message is about size bytes, with LF line ends
	// (smtp-source -F adds CR).
	rescue := startMilter(t, "rescue", dns.Addr(), "--reject", "fail", "--dkim-rescue", "mailfrom")
	signedFile := filepath.Join(dir, "signed.eml")
	m := message{ID: rescuedLoadID, From: "load@" + failDomain}
	m.Raw = strings.Replace(m.data(), bodyMarker, strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", size/64)+bodyMarker, 1)
	if err := os.WriteFile(signedFile, []byte(strings.ReplaceAll(signed(t, m), "\r\n", "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	setups = append(setups,
		loadSetup{name: "spfmilter + dkim_rescue, TCP, pass", pid: rescue.cmd.Process.Pid, header: "Received-SPF: pass", loadOnly: true},
		loadSetup{name: "spfmilter + dkim_rescue, TCP, fail rescued", pid: rescue.cmd.Process.Pid, header: "dkim-rescue=" + failDomain,
			from: "load@" + failDomain, file: signedFile, loadOnly: true})
	milters = append(milters, rescue.Addr, rescue.Addr)
	var listeners []postfixListener
	for i := range setups {
		setups[i].index = i
		setups[i].addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		listeners = append(listeners, postfixListener{Addr: setups[i].addr, Milter: milters[i]})
	}
	startPostfix(t, dir, ns, s.Port, listeners)

	delivered := 0
	// run sends n messages over the given number of parallel sessions and
	// waits until the sink has them, so that runs do not compete with each
	// other's deliveries. It returns the time smtp-source took and the
	// milter's CPU time meanwhile.
	run := func(su loadSetup, sessions, n int, what string) (time.Duration, time.Duration) {
		host, port, _ := strings.Cut(su.addr, ":")
		cpu0 := procCPU(t, su.pid)
		start := time.Now()
		from := su.from
		if from == "" {
			from = "load@" + passDomain
		}
		args := []string{"-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n),
			"-f", from, "-t", rcptAddr, "-M", clientHELO}
		if su.file != "" {
			args = append(args, "-F", su.file)
		} else {
			args = append(args, "-l", strconv.Itoa(size), "-S", fmt.Sprintf("%s %s %d", loadSubject, what, su.index))
		}
		out, err := runCmd(10*time.Minute, source, append(args, host+":"+port)...)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("%s: smtp-source: %v\n%s", su.name, err, out)
		}
		cpu := procCPU(t, su.pid) - cpu0
		delivered += n
		waitFiles(t, s.dir, delivered, 5*time.Minute)
		return elapsed, cpu
	}

	// One small unmeasured run each: the milters' caches and Postfix's
	// processes are warm before the first measured round.
	for _, su := range setups {
		run(su, sessions, min(msgs, 100), "warm-up")
	}
	rate := make([][]float64, len(setups))   // messages per second, per round
	cpu := make([][]float64, len(setups))    // milter CPU ms per message, per round
	perMsg := make([][]float64, len(setups)) // ms per message, one session
	added := make([][]float64, len(setups))  // perMsg minus no milter's, same round
	for r := range rounds {
		// Each round starts with a different setup, so that none always
		// runs first (or right after the same neighbour).
		for k := range setups {
			i := (r + k) % len(setups)
			d, c := run(setups[i], sessions, msgs, "load")
			rate[i] = append(rate[i], float64(msgs)/d.Seconds())
			cpu[i] = append(cpu[i], float64(c)/float64(time.Millisecond)/float64(msgs))
		}
		one := make([]float64, len(setups))
		for k := range setups {
			i := (r + k) % len(setups)
			if setups[i].loadOnly {
				continue
			}
			d, _ := run(setups[i], 1, serial, "serial")
			one[i] = float64(d) / float64(time.Millisecond) / float64(serial)
			perMsg[i] = append(perMsg[i], one[i])
		}
		for i := range setups {
			added[i] = append(added[i], one[i]-one[0])
		}
	}

	checkLoadMarked(t, s.dir, setups, delivered)

	var b strings.Builder
	fmt.Fprintf(&b, "\nPostfix load: %d messages of %d bytes per run, %d parallel sessions, one message per session, %d interleaved rounds (medians)\n\n",
		msgs, size, sessions, rounds)
	b.WriteString("| setup | msgs/s | range | ratio to no milter | milter CPU ms/msg |\n|---|---:|---:|---:|---:|\n")
	base := median(rate[0])
	for i, su := range setups {
		c := "–"
		if su.pid != 0 {
			c = fmt.Sprintf("%.3f", median(cpu[i]))
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f–%.1f | %.2f | %s |\n",
			su.name, median(rate[i]), slices.Min(rate[i]), slices.Max(rate[i]), median(rate[i])/base, c)
	}
	fmt.Fprintf(&b, "\nspfmilter TCP / pyspf-milter: %.2f×; spfmilter unix / pyspf-milter: %.2f×\n",
		median(rate[1])/median(rate[3]), median(rate[2])/median(rate[3]))
	if strings.HasPrefix(setups[4].name, "baseline") {
		fmt.Fprintf(&b, "spfmilter TCP / baseline TCP: %.2f×; spfmilter unix / baseline unix: %.2f×\n",
			median(rate[1])/median(rate[4]), median(rate[2])/median(rate[5]))
	}
	fmt.Fprintf(&b, "\nOne session at a time: %d messages per run, %d interleaved rounds (medians)\n\n", serial, rounds)
	b.WriteString("| setup | ms/msg | added ms/msg |\n|---|---:|---:|\n")
	for i, su := range setups {
		if su.loadOnly {
			continue
		}
		a := "–"
		if i > 0 {
			a = fmt.Sprintf("%.2f", median(added[i]))
		}
		fmt.Fprintf(&b, "| %s | %.2f | %s |\n", su.name, median(perMsg[i]), a)
	}
	fmt.Print(b.String())
}

// needLoadRun skips with the given message unless SPFMILTER_LOAD=1; then it
// needs root, Postfix and smtp-source, whose path it returns.
func needLoadRun(t *testing.T, skip string) string {
	t.Helper()
	if os.Getenv("SPFMILTER_LOAD") != "1" {
		t.Skip(skip)
	}
	needRoot(t)
	source := needProgram(t, "smtp-source")
	needProgram(t, "postfix")
	return source
}

// checkLoadMarked checks that the sink holds n load messages, every one of
// them with the header its setup's milter adds, and none of the milters'
// headers on the messages that went through no milter.
func checkLoadMarked(t *testing.T, dir string, setups []loadSetup, n int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int, len(setups))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// smtp-sink stores lines ending in LF.
		head, _, _ := strings.Cut(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n")
		i := -1
		if strings.Contains(head, "\nX-Test-ID: "+rescuedLoadID+"\n") {
			i = slices.IndexFunc(setups, func(su loadSetup) bool { return su.file != "" })
		}
		for l := range strings.SplitSeq(head, "\n") {
			if v, ok := strings.CutPrefix(l, "Subject: "+loadSubject+" "); ok {
				f := strings.Fields(v)
				if len(f) == 2 {
					i, _ = strconv.Atoi(f[1])
				}
			}
		}
		if i < 0 || i >= len(setups) {
			t.Fatalf("%s: not a load message of this run:\n%s", e.Name(), head)
		}
		su := setups[i]
		if su.header != "" && !strings.Contains(head, su.header) {
			t.Fatalf("%s: sent through %s, but without %q:\n%s", e.Name(), su.name, su.header, head)
		}
		if su.header == "" && (strings.Contains(head, "Received-SPF:") || strings.Contains(head, "spf=")) {
			t.Fatalf("%s: sent without a milter, but with an SPF verdict:\n%s", e.Name(), head)
		}
		got[i]++
	}
	if total := len(entries); total != n {
		t.Fatalf("the sink holds %d messages, want %d (per setup: %v)", total, n, got)
	}
}

// startPyspfMilter runs pyspf-milter inside the test namespace, so that it
// resolves (through dnspython and the private resolv.conf) only with the test
// DNS server. Its configuration is the package's, except for the socket, the
// pid file, and the skipped and internal addresses: the test clients come
// from 127.0.0.1, which the package would otherwise not check.
func startPyspfMilter(t *testing.T, bin, dir string, ns *namespace) (*proc, string) {
	t.Helper()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "pyspf-milter.conf")
	text := fmt.Sprintf(`debugLevel = 1
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.255/32
InternalHosts = 192.0.2.255/32
Socket = inet:%d@127.0.0.1
PidFile = %s
UserID = pyspf-milter
`, port, filepath.Join(dir, "pyspf-milter.pid"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "pyspf-milter", ns.command(bin, conf), nil)
	waitListening(t, p, addr, 30*time.Second)
	return p, addr
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
