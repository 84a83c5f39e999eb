package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/internal/testbin"
)

// milterBinary builds spfmilter from the repository root once per test run,
// with the race detector when the tests have it. SPFMILTER_E2E_BIN names a
// binary to use instead, e.g. another build for a before/after comparison
// in the load runs.
func milterBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SPFMILTER_E2E_BIN"); p != "" {
		return p
	}
	return testbin.Path(t, "..", raceEnabled)
}

func TestMain(m *testing.M) { testbin.Main(m) }

// milterProc is a running spfmilter.
type milterProc struct {
	*proc
	Addr string // 127.0.0.1:PORT
	Port int
}

// Milter DNS timings for the tests: well under the MTAs' milter timeouts
// (60 s, see the MTA configurations), so that a zone that never answers gives
// temperror rather than an MTA-side timeout.
const (
	milterDNSTimeout   = "2s"
	milterCheckTimeout = "5s"
)

// startMilters starts the three milters every MTA run uses: one that only
// marks, one that rejects MAIL FROM fails, HELO fails and HELO names
// without SPF (none), and defers temperrors, and the same in dry-run mode.
func startMilters(t *testing.T, dnsAddr string) (mark, rej, dry *milterProc) {
	t.Helper()
	// An empty never_reject_recipients keeps the refusals at MAIL FROM,
	// where the scenarios expect them; policy_test.go has them at RCPT TO.
	enforce := []string{"--reject", "fail", "--reject-helo", "fail,none", "--defer-temperror", "--never-reject-recipients="}
	// At debug level, it logs what it negotiated (see checkNegotiated).
	mark = startMilter(t, "mark", dnsAddr, "--log-level", "debug")
	rej = startMilter(t, "reject", dnsAddr, enforce...)
	dry = startMilter(t, "dry-run", dnsAddr, append(enforce, "--dry-run")...)
	return mark, rej, dry
}

// startRescueMilter starts the milter behind mtaRun.Rescue4.
func startRescueMilter(t *testing.T, dnsAddr string) *milterProc {
	t.Helper()
	return startMilter(t, "rescue", dnsAddr, "--reject", "fail", "--defer-temperror", "--dkim-rescue", "mailfrom", "--log-level", "debug")
}

// startMilter runs spfmilter against the test DNS server, trusting no
// network (the clients come from loopback), with our authserv-id. extra
// flags are appended (e.g. --reject fail).
func startMilter(t *testing.T, name, dnsAddr string, extra ...string) *milterProc {
	t.Helper()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := startMilterOn(t, name, dnsAddr, "inet:"+addr, extra...)
	return &milterProc{proc: p, Addr: addr, Port: port}
}

// startMilterOn is startMilter listening on listen, inet:HOST:PORT or
// unix:PATH (a socket any local user may connect to, such as Postfix's
// daemons).
func startMilterOn(t *testing.T, name, dnsAddr, listen string, extra ...string) *proc {
	t.Helper()
	return startMilterBinOn(t, milterBinary(t), name, dnsAddr, listen, extra...)
}

// startMilterBinOn is startMilterOn running the spfmilter binary bin.
func startMilterBinOn(t *testing.T, bin, name, dnsAddr, listen string, extra ...string) *proc {
	t.Helper()
	args := []string{
		"--listen", listen,
		"--listen-mode", "0666",
		"--resolver", dnsAddr,
		"--authserv-id", authservID,
		"--trusted-networks", "",
		"--http-listen", "",
		"--dns-timeout", milterDNSTimeout,
		"--check-timeout", milterCheckTimeout,
	}
	args = append(args, extra...)
	p := startProc(t, "spfmilter "+name, exec.Command(bin, args...), nil)
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		waitUnix(t, p, path, 30*time.Second)
	} else {
		waitListening(t, p, strings.TrimPrefix(listen, "inet:"), 30*time.Second)
	}
	return p
}
