package spf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/internal/testbin"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// The suites also run the way users run spfmilter: each scenario's zone is
// served by a real DNS server on loopback (spftest.Server, miekg/dns), and
// asked through the real client (spf/resolver) in this process, and through
// "spfmilter check" as a subprocess. A fake resolver that hands over
// ready-made strings would hide what the real client does to TXT strings and
// names (miekg/dns gives both in presentation form).

// suiteDNSTimeout bounds one query on the wire paths: the suites' TIMEOUT
// entries are a server that never answers (six cases a suite). It is far
// above a loopback answer's time even on a loaded machine, so that no
// other case can time out.
const suiteDNSTimeout = time.Second

// overWire checks cases through resolver.Client against the scenario's
// zone on a loopback server. Each scenario gets its own server and client,
// so nothing is cached across scenarios that reuse names.
var overWire = suitePath{name: "wire", start: func(t *testing.T, world *spftest.Resolver) func(*testing.T, spftest.SuiteCase, netip.Addr) spf.Outcome {
	srv := spftest.NewServer(t, world)
	rc, err := resolver.New(resolver.Options{Servers: []string{srv.Addr()}, Timeout: suiteDNSTimeout, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := &spf.Checker{Resolver: rc, Receiver: suiteReceiver}
	return func(t *testing.T, tc spftest.SuiteCase, ip netip.Addr) spf.Outcome {
		return c.CheckMailFrom(context.Background(), spf.Args{IP: ip, Sender: tc.MailFrom, HELO: tc.Helo, Trace: true})
	}
}}

// viaCheck runs "spfmilter check --json" for every case, against the
// scenario's zone on a loopback server, and reads the MAIL FROM verdict.
var viaCheck = suitePath{name: "check", start: func(t *testing.T, world *spftest.Resolver) func(*testing.T, spftest.SuiteCase, netip.Addr) spf.Outcome {
	bin := checkBinary(t)
	srv := spftest.NewServer(t, world)
	return func(t *testing.T, tc spftest.SuiteCase, ip netip.Addr) spf.Outcome {
		args := []string{"check", "--json", "--trace",
			"--ip", ip.String(), "--sender", tc.MailFrom, "--helo", tc.Helo,
			"--resolver", srv.Addr(), "--dns-timeout", suiteDNSTimeout.String(),
			"--cache-size", "0", "--receiver", suiteReceiver,
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("spfmilter %q: %v\nstderr: %s", args, err, stderr.Bytes())
		}
		var rep struct {
			MailFrom struct {
				Domain      string     `json:"domain"`
				Result      spf.Result `json:"result"`
				Mechanism   string     `json:"mechanism"`
				Explanation string     `json:"explanation"`
				Problem     string     `json:"problem"`
				Trace       []string   `json:"trace"`
			} `json:"mailfrom"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("spfmilter %q: output is not the JSON report: %v\n%s", args, err, stdout.Bytes())
		}
		m := rep.MailFrom
		return spf.Outcome{Result: m.Result, Domain: m.Domain, Mechanism: m.Mechanism,
			Explanation: m.Explanation, Problem: m.Problem, Trace: m.Trace}
	}
}}

// checkBinary builds spfmilter from the repository root once per test run.
func checkBinary(t *testing.T) string { return testbin.Path(t, "..", false) }

func TestMain(m *testing.M) { testbin.Main(m) }

// The wire runs spend most of their time waiting on the TIMEOUT cases and
// on subprocesses; they run alongside each other.

func TestRFC7208WireSuite(t *testing.T) {
	t.Parallel()
	runSuite(t, "rfc7208-tests.yml", 203, overWire)
}

func TestRFC4408WireSuite(t *testing.T) {
	t.Parallel()
	runSuite(t, "rfc4408-tests.yml", 191, overWire)
}

func TestRFC7208CheckSuite(t *testing.T) {
	t.Parallel()
	runSuite(t, "rfc7208-tests.yml", 203, viaCheck)
}

func TestRFC4408CheckSuite(t *testing.T) {
	t.Parallel()
	runSuite(t, "rfc4408-tests.yml", 191, viaCheck)
}
