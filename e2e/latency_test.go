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
// interleaved rounds. It prints the median time per message of each, what
// the milter adds, and the milter's CPU time per message (from /proc); then
// the same with 20 concurrent sessions (SPFMILTER_LATENCY_LOAD messages).
// SPFMILTER_LATENCY_BASELINE may name another spfmilter binary (an earlier
// build) to run beside this one, over TCP and a unix socket, in the same
// rounds. It asserts only that every message was delivered. It is skipped
// unless SPFMILTER_LOAD=1.
func TestPostfixLatency(t *testing.T) {
	source := needLoadRun(t, "latency run; set SPFMILTER_LOAD=1")
	msgs := envInt(t, "SPFMILTER_LATENCY_MESSAGES", 100)
	rounds := envInt(t, "SPFMILTER_LATENCY_ROUNDS", 5)
	load := envInt(t, "SPFMILTER_LATENCY_LOAD", 1000)

	dir := openRunDir(t)
	dns, ns := startDNSNamespace(t, dir)
	type variant struct {
		name, milter, addr string
		pid                int
	}
	variants := []variant{{name: "no milter"}}
	run := func(name, bin string) {
		port := freePort(t)
		tcpAddr := fmt.Sprintf("127.0.0.1:%d", port)
		sock := filepath.Join(dir, name+".sock")
		for _, l := range []struct{ kind, listen, milter string }{
			{"tcp", "inet:" + tcpAddr, tcpAddr},
			{"unix", "unix:" + sock, "unix:" + sock},
		} {
			p := startProc(t, name+" "+l.kind, exec.Command(bin,
				"--listen", l.listen, "--listen-mode", "0666",
				"--resolver", dns.Addr(), "--authserv-id", authservID, "--trusted-networks", "",
				"--http-listen", "", "--dns-timeout", milterDNSTimeout, "--check-timeout", milterCheckTimeout), nil)
			if l.kind == "tcp" {
				waitListening(t, p, tcpAddr, 30*time.Second)
			} else {
				waitUnix(t, p, sock, 30*time.Second)
			}
			variants = append(variants, variant{name: name + " " + l.kind, milter: l.milter, pid: p.cmd.Process.Pid})
		}
	}
	run("spfmilter", milterBinary(t))
	if bin := os.Getenv("SPFMILTER_LATENCY_BASELINE"); bin != "" {
		run("baseline", bin)
	}
	s := startSink(t, dir)

	var listeners []postfixListener
	for i := range variants {
		variants[i].addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		listeners = append(listeners, postfixListener{Addr: variants[i].addr, Milter: variants[i].milter})
	}
	startPostfix(t, dir, ns, s.Port, listeners)

	perMsg := make([][]float64, len(variants)) // ms per message, per round
	cpu := make([]float64, len(variants))      // milter CPU ms, all rounds
	delivered := 0
	send := func(i, sessions, n int) time.Duration {
		v := variants[i]
		c0 := procCPU(t, v.pid)
		start := time.Now()
		out, err := runCmd(10*time.Minute, source, "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", "512",
			"-f", "lat@"+passDomain, "-t", rcptAddr, "-M", mtaHost, "-S", "spfmilter latency "+v.name, v.addr)
		if err != nil {
			t.Fatalf("%s: smtp-source: %v\n%s", v.name, err, out)
		}
		d := time.Since(start)
		cpu[i] += float64(procCPU(t, v.pid)-c0) / float64(time.Millisecond)
		delivered += n
		waitFiles(t, s.dir, delivered, 5*time.Minute)
		return d
	}
	for range rounds {
		for i := range variants {
			d := send(i, 1, msgs)
			perMsg[i] = append(perMsg[i], float64(d.Microseconds())/1000/float64(msgs))
		}
	}
	base := median(perMsg[0])
	var report strings.Builder
	for i, v := range variants {
		m := median(perMsg[i])
		fmt.Fprintf(&report, "%-15s %d rounds x %d messages, one session at a time: median %.2f ms/msg, added %.2f ms/msg, milter CPU %.3f ms/msg\n",
			v.name, rounds, msgs, m, m-base, cpu[i]/float64(rounds*msgs))
	}
	for i, v := range variants {
		cpu[i] = 0
		d := send(i, 20, load)
		fmt.Fprintf(&report, "%-15s %d messages, 20 sessions: %.1f msgs/s, milter CPU %.3f ms/msg\n",
			v.name, load, float64(load)/d.Seconds(), cpu[i]/float64(load))
	}
	fmt.Print("\n" + report.String())
}

// procCPU is the user and system CPU time process pid has used (0 for pid
// 0), from /proc/PID/stat, in clock ticks of 10 ms.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces; the fields after its ")" are
	// state, ppid, … with utime and stime the 12th and 13th.
	fs := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.Atoi(fs[11])
	st, _ := strconv.Atoi(fs[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
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
