package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// namespace is a private view of /etc/hosts and /etc/resolv.conf plus a host
// name, in which an MTA runs so that every name it resolves stays on
// loopback.
type namespace struct {
	hosts, resolv, hostname string
}

// startDNSNamespace starts the test DNS server (startDNS) and writes a
// namespace into dir that resolves through it.
func startDNSNamespace(t *testing.T, dir string) (*spftest.Server, *namespace) {
	t.Helper()
	dns := startDNS(t)
	return dns, newNamespace(t, dir, strings.Split(dns.Addr(), ":")[0])
}

// newNamespace writes the private files into dir. The hosts file names the
// MTA and the client on both loopback addresses, one name per line; every
// other name goes to dnsAddr (a 127.x address, port 53).
func newNamespace(t *testing.T, dir, dnsHost string) *namespace {
	t.Helper()
	needProgram(t, "unshare")
	needProgram(t, "mount")
	needProgram(t, "hostname")
	ns := &namespace{
		hosts:    filepath.Join(dir, "hosts"),
		resolv:   filepath.Join(dir, "resolv.conf"),
		hostname: mtaHost,
	}
	var hosts strings.Builder
	for _, ip := range []string{"127.0.0.1", "::1"} {
		for _, name := range []string{"localhost", mtaHost, "mx", clientHELO} {
			fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
		}
	}
	if err := os.WriteFile(ns.hosts, []byte(hosts.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	resolv := fmt.Sprintf("nameserver %s\noptions timeout:2 attempts:1\n", dnsHost)
	if err := os.WriteFile(ns.resolv, []byte(resolv), 0o644); err != nil {
		t.Fatal(err)
	}
	return ns
}

// command runs name with args inside the private namespace.
func (ns *namespace) command(name string, args ...string) *exec.Cmd {
	script := `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && hostname "$3" && shift 3 && exec "$@"`
	argv := append([]string{"--mount", "--uts", "--propagation", "private", "sh", "-c", script, "sh",
		ns.hosts, ns.resolv, ns.hostname, name}, args...)
	return exec.Command("unshare", argv...)
}
