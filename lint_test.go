package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// toolWorld is the DNS the lint and flatten command tests run against.
func toolWorld() *spftest.Resolver {
	return &spftest.Resolver{
		TXT: map[string][]string{
			"good.example":   {"v=spf1 ip4:192.0.2.0/25 include:prov.example -all"},
			"prov.example":   {"v=spf1 ip4:192.0.2.128/25 ip6:2001:db8::/48 -all"},
			"v6void.example": {"v=spf1 a:h1.example a:h2.example a:h3.example -all"},
			"broken.example": {"v=spf1 include:nothing.example -all"},
		},
		A: map[string][]netip.Addr{
			"h1.example": {netip.MustParseAddr("198.51.100.1")},
			"h2.example": {netip.MustParseAddr("198.51.100.2")},
			"h3.example": {netip.MustParseAddr("198.51.100.3")},
		},
	}
}

func runTool(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	status := run(args, &stdout, &stderr)
	return status, stdout.String(), stderr.String()
}

func TestLintCommand(t *testing.T) {
	srv := spftest.NewServer(t, toolWorld())

	status, out, errOut := runTool("lint", "good.example", "--resolver", srv.Addr())
	if status != exitOK || errOut != "" {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	for _, want := range []string{
		"good.example: v=spf1 ip4:192.0.2.0/25 include:prov.example -all\n",
		"worst case: 1 DNS-causing terms (limit 10); void lookups: 0 for IPv4 clients, 0 for IPv6 clients (limit 2)\n",
		"0 error(s), 0 warning(s), 0 info\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A record before it is published.
	status, out, _ = runTool("lint", "good.example", "--resolver", srv.Addr(), "--record", "v=spf1 ip4:192.0.2.0/24 +all")
	if status != exitError || !strings.Contains(out, "good.example: v=spf1 ip4:192.0.2.0/24 +all\n") || !strings.Contains(out, "error   pass-all\n") {
		t.Errorf("--record: status %d, output:\n%s", status, out)
	}

	// Flags before the domain, JSON, and the exit status of an error.
	status, out, errOut = runTool("lint", "--json", "--resolver", srv.Addr(), "v6void.example")
	if status != exitError || errOut != "" {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("want one JSON line, got %q", out)
	}
	var rep struct {
		Domain      string `json:"domain"`
		Record      string `json:"record"`
		DNSTerms    int    `json:"dns_terms"`
		VoidIPv4    int    `json:"void_lookups_ipv4"`
		VoidIPv6    int    `json:"void_lookups_ipv6"`
		Evaluations []struct {
			Client, Result, Mechanism, Problem string
			DNSLookups                         int `json:"dns_lookups"`
			VoidLookups                        int `json:"void_lookups"`
		} `json:"evaluations"`
		Findings []struct {
			Severity, ID, Client, Message, Advice string
			Path                                  []string
		} `json:"findings"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if rep.Domain != "v6void.example" || rep.DNSTerms != 3 || rep.VoidIPv4 != 0 || rep.VoidIPv6 != 3 || len(rep.Evaluations) != 2 {
		t.Errorf("report %+v", rep)
	}
	if !slices.ContainsFunc(rep.Findings, func(f struct {
		Severity, ID, Client, Message, Advice string
		Path                                  []string
	}) bool {
		return f.ID == "void-lookups" && f.Severity == "error" && f.Client == "ipv6" &&
			slices.Equal(f.Path, []string{"v6void.example", "a:h3.example"})
	}) {
		t.Errorf("no void-lookups error for IPv6 clients at a:h3.example: %+v", rep.Findings)
	}
}

func TestToolUsage(t *testing.T) {
	for _, cmd := range []string{"lint", "flatten"} {
		status, out, errOut := runTool(cmd, "--help")
		if status != exitOK || errOut != "" || !strings.HasPrefix(out, "Usage: spfmilter "+cmd+" DOMAIN") || !strings.Contains(out, "--resolver") {
			t.Errorf("%s --help: status %d, stdout %q, stderr %q", cmd, status, out, errOut)
		}
		for _, args := range [][]string{
			{},
			{"a.example", "b.example"},
			{"a.example", "--resolver", "dns.example"},
			{"a.example", "--no-such-flag"},
			{"not a domain", "--resolver", "127.0.0.1:1"},
		} {
			status, out, errOut := runTool(append([]string{cmd}, args...)...)
			if status != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "spfmilter: ") {
				t.Errorf("%s %q: status %d, stdout %q, stderr %q", cmd, args, status, out, errOut)
			}
		}
	}
	for _, args := range [][]string{
		{"lint", "a.example", "--no-mail", "not a name", "--resolver", "127.0.0.1:1"},
		{"flatten", "a.example", "--max-lookups", "11"},
		{"flatten", "a.example", "--chunk-name", "_spf.a.example"},
		{"flatten", "a.example", "--chunk-name", "spf %d.a.example", "--resolver", "127.0.0.1:1"},
	} {
		if status, _, errOut := runTool(args...); status != exitUsage {
			t.Errorf("%q: status %d, stderr %q", args, status, errOut)
		}
	}
}

var zoneLine = regexp.MustCompile(`^([a-z0-9_.-]+)\. IN TXT ((?:"[^"]*" ?)+)$`)

func TestFlattenCommand(t *testing.T) {
	srv := spftest.NewServer(t, toolWorld())
	status, out, errOut := runTool("flatten", "good.example", "--resolver", srv.Addr())
	if status != exitOK || errOut != "" {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	var records []string
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, ";") {
			continue
		}
		m := zoneLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a zone-file line: %q", line)
		}
		records = append(records, m[1]+" "+m[2])
	}
	if want := []string{`good.example "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/48 -all"`}; !slices.Equal(records, want) {
		t.Errorf("records %q, want %q", records, want)
	}
	for _, want := range []string{"; smallest TTL met: 300 s\n", "stale"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	status, out, errOut = runTool("flatten", "broken.example", "--resolver", srv.Addr())
	if status != exitError || out != "" || !strings.Contains(errOut, "nothing.example") {
		t.Errorf("broken.example: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

// The command as users run it: a process of its own, its exit status.
func TestLintSubprocess(t *testing.T) {
	srv := spftest.NewServer(t, toolWorld())
	for domain, want := range map[string]int{"good.example": 0, "broken.example": 1} {
		cmd := exec.Command(os.Args[0], "lint", domain, "--resolver", srv.Addr())
		cmd.Env = append(os.Environ(), "SPFMILTER_TEST_MAIN=1")
		out, err := cmd.Output()
		status := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != want || !strings.HasPrefix(string(out), domain+": ") {
			t.Errorf("lint %s: status %d (want %d), output:\n%s", domain, status, want, out)
		}
	}
}
