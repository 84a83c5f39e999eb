package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// Names of the test world. The MTA under test is mx.example.test; clients
// say HELO client.example.test and connect from 127.0.0.1 or ::1.
const (
	mtaHost    = "mx.example.test"
	authservID = "mx.example.test"
	clientHELO = "client.example.test"
	badHELO    = "badhelo.example.test" // a HELO name whose SPF fails
	rcptAddr   = "rcpt@dest.example.test"

	passDomain     = "pass.example.test"
	failDomain     = "fail.example.test"
	softfailDomain = "softfail.example.test"
	timeoutDomain  = "timeout.example.test"
	slowHELO       = "slowhelo.example.test" // a HELO name whose TXT query is never answered
	fwdDomain      = "fwd.example.test"      // a forwarding service whose hosts are the clients
	relayedDomain  = "relayed.example.test"  // a domain whose one host, 127.0.0.3, reaches us through a relay
)

var (
	loop4 = netip.MustParseAddr("127.0.0.1")
	loop6 = netip.MustParseAddr("::1")
)

// testWorld is the DNS the milter and the MTAs see. Every domain also has an
// address so that an MTA's own sender-domain checks never get in the way; the
// SPF records decide the results:
//
//	pass.example.test      pass for 127.0.0.1 and ::1 (ip4:127.0.0.1 / ip6:::1)
//	fail.example.test      fail (-all; only 192.0.2.10 is allowed)
//	softfail.example.test  softfail (~all)
//	timeout.example.test   its TXT query is never answered: temperror
//	slowhelo.example.test  the same, as a HELO name
//	client.example.test    the HELO name, pass like pass.example.test
//	badhelo.example.test   a HELO name that fails (-all)
//	fwd.example.test       a forwarder: pass for 127.0.0.1 and ::1
//	relayed.example.test   pass for 127.0.0.3 only, a client behind the relay
//
// fail.example.test also publishes a DKIM key (dkimSelector), so that
// its mail forwarded from 127.0.0.1 can be rescued.
func testWorld() *spftest.Resolver {
	addrs := func(as ...netip.Addr) []netip.Addr { return as }
	w := &spftest.Resolver{
		TXT: map[string][]string{
			passDomain:     {"v=spf1 ip4:127.0.0.1 ip6:::1 -all"},
			failDomain:     {"v=spf1 ip4:192.0.2.10 -all"},
			softfailDomain: {"v=spf1 ~all"},
			clientHELO:     {"v=spf1 ip4:127.0.0.1 ip6:::1 -all"},
			badHELO:        {"v=spf1 -all"},
			fwdDomain:      {"v=spf1 ip4:127.0.0.1 ip6:::1 -all"},
			relayedDomain:  {"v=spf1 ip4:127.0.0.3 -all"},
		},
		A: map[string][]netip.Addr{
			mtaHost:             addrs(loop4),
			clientHELO:          addrs(loop4),
			passDomain:          addrs(loop4),
			failDomain:          addrs(netip.MustParseAddr("192.0.2.10")),
			softfailDomain:      addrs(netip.MustParseAddr("192.0.2.11")),
			timeoutDomain:       addrs(netip.MustParseAddr("192.0.2.12")),
			slowHELO:            addrs(loop4),
			"dest.example.test": addrs(loop4),
			relayedDomain:       addrs(netip.MustParseAddr("127.0.0.3")),
		},
		AAAA: map[string][]netip.Addr{
			mtaHost:    addrs(loop6),
			clientHELO: addrs(loop6),
		},
		PTR: map[string][]string{
			"127.0.0.1": {"localhost"},
			"::1":       {"localhost"},
		},
		Fail: map[string]error{
			"TXT " + timeoutDomain: spftest.ErrTimeout,
			"TXT " + slowHELO:      spftest.ErrTimeout,
		},
	}
	// failDomain's DKIM key (rescue_test.go).
	w.TXT[dkimSelector+"._domainkey."+failDomain] = []string{dkimRecord()}
	return w
}

// startDNS serves testWorld on port 53 of a 127.x address of its own: glibc
// (and so the MTAs) can only talk to port 53. The address is random so that
// concurrent test runs do not collide.
func startDNS(t *testing.T) *spftest.Server {
	t.Helper()
	return startDNSWith(t, testWorld())
}

// startDNSWith is startDNS serving world, testWorld with additions.
func startDNSWith(t *testing.T, world *spftest.Resolver) *spftest.Server {
	t.Helper()
	var lastErr error
	for range 20 {
		addr := fmt.Sprintf("127.53.%d.%d:53", 1+rand.IntN(254), 1+rand.IntN(254))
		s, err := spftest.StartServerAt(addr, world)
		if err == nil {
			t.Cleanup(s.Close)
			return s
		}
		lastErr = err
	}
	t.Fatalf("no 127.53.x.y:53 address free for the test DNS server: %v", lastErr)
	return nil
}

// freePort returns a TCP port free on both 127.0.0.1 and ::1, for the
// programs that must be told a port.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port))
		l4.Close()
		if err != nil {
			continue
		}
		l6.Close()
		return port
	}
	t.Fatal("no TCP port free on both 127.0.0.1 and ::1")
	return 0
}
