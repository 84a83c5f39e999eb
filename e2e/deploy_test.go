package e2e

// Checks of the deployment kit in deploy/: the systemd unit passes
// systemd-analyze verify and keeps its sandbox, the sample config passes the
// daemon's own check, the Postfix and Sendmail snippets are read by postconf
// and m4 the way they are meant to be and point at the address the daemon
// listens on, and the Kubernetes manifests pass their own module's tests.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const deployDir = "../deploy"

// mtaTimeoutMargin is what the README asks the MTA's milter timeout for
// MAIL to add to check_timeout.
const mtaTimeoutMargin = 5 * time.Second

// deploySample is the part of deploy/systemd/spfmilter.yaml the MTA snippets
// must agree with.
type deploySample struct {
	Listen       string `yaml:"listen"`
	CheckTimeout string `yaml:"check_timeout"`
}

func deployReadSample(t *testing.T) deploySample {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, "systemd/spfmilter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var s deploySample
	if err := yaml.Unmarshal(data, &s); err != nil {
		t.Fatalf("deploy/systemd/spfmilter.yaml: %v", err)
	}
	if s.Listen == "" || s.CheckTimeout == "" {
		t.Fatalf("deploy/systemd/spfmilter.yaml must set listen and check_timeout (the MTA snippets are checked against them)")
	}
	return s
}

// TestDeploySampleConfig runs the daemon's --config.check on the sample.
func TestDeploySampleConfig(t *testing.T) {
	bin := milterBinary(t)
	cmd := exec.Command(bin, "serve", "--config", filepath.Join(deployDir, "systemd/spfmilter.yaml"), "--config.check")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("spfmilter --config.check deploy/systemd/spfmilter.yaml: %v\n%s", err, out)
	}
}

// deployUnit parses a systemd unit into "Section.Key" -> values, in order.
func deployUnit(text string) map[string][]string {
	keys := map[string][]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, _ := strings.Cut(line, "=")
			k = section + "." + strings.TrimSpace(k)
			keys[k] = append(keys[k], strings.TrimSpace(v))
		}
	}
	return keys
}

func TestDeploySystemdUnit(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "systemd/spfmilter.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := deployUnit(string(text))
	want := map[string]string{
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	}
	for k, v := range want {
		if got := unit[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !slices.Equal(unit["Service.DynamicUser"], []string{"yes"}) && len(unit["Service.User"]) == 0 {
		t.Errorf("the unit runs as root: set DynamicUser=yes or User=")
	}
	if !slices.Contains(unit["Service.SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter = %q, want @system-service among them", unit["Service.SystemCallFilter"])
	}
	start := unit["Service.ExecStart"]
	if len(start) != 1 || !strings.Contains(start[0], "--config /etc/spfmilter.yaml") {
		t.Errorf("ExecStart = %q, want the daemon with --config /etc/spfmilter.yaml", start)
	}

	// systemd-analyze verify checks every key and value, and that the
	// programs exist: point the unit at a real binary and config.
	analyze := needProgram(t, "systemd-analyze")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "spfmilter.yaml")
	sample, err := os.ReadFile(filepath.Join(deployDir, "systemd/spfmilter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer(
		"/usr/local/bin/spfmilter", milterBinary(t),
		"/etc/spfmilter.yaml", cfg,
	).Replace(string(text))
	unitPath := filepath.Join(dir, "spfmilter.service")
	if err := os.WriteFile(unitPath, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 even for unknown keys and bad values, which it only
	// prints: any output is a failure.
	out, err := runCmd(time.Minute, analyze, "verify", "--man=no", unitPath)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The sandbox's exposure score (0 to 10, lower is better; 1.4 when
	// written) must stay within 2.0: --threshold counts in tenths.
	out, err = runCmd(time.Minute, analyze, "security", "--offline=yes", "--threshold=20", unitPath)
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 or error: %v\n%s", err, out)
	}
}

// deployPostfixParams reads "name = value" lines of a main.cf fragment.
func deployPostfixParams(t *testing.T, text string) map[string]string {
	t.Helper()
	params := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("main.cf.snippet: not a parameter line: %q", line)
		}
		params[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return params
}

// deployMilterAddr turns spfmilter's inet:HOST:PORT into the address forms
// of Postfix (inet:HOST:PORT) and Sendmail (inet:PORT@HOST).
func deployMilterAddr(t *testing.T, listen string) (postfix, sendmail string) {
	t.Helper()
	hostPort, ok := strings.CutPrefix(listen, "inet:")
	i := strings.LastIndex(hostPort, ":")
	if !ok || i < 0 {
		t.Fatalf("sample listen %q is not inet:HOST:PORT", listen)
	}
	return listen, "inet:" + hostPort[i+1:] + "@" + hostPort[:i]
}

func deployDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func TestDeployPostfixSnippet(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "postfix/main.cf.snippet"))
	if err != nil {
		t.Fatal(err)
	}
	params := deployPostfixParams(t, string(text))
	sample := deployReadSample(t)
	addr, _ := deployMilterAddr(t, sample.Listen)
	if params["smtpd_milters"] != addr {
		t.Errorf("smtpd_milters = %q, want the sample config's listen %q", params["smtpd_milters"], addr)
	}
	if v, ok := params["non_smtpd_milters"]; !ok || v != "" {
		t.Errorf("non_smtpd_milters = %q, want it set empty (no SMTP client to check)", v)
	}
	if a := params["milter_default_action"]; !slices.Contains([]string{"accept", "tempfail", "reject", "quarantine"}, a) {
		t.Errorf("milter_default_action = %q is not a Postfix action", a)
	}
	// The SPF checks run inside the MAIL FROM command, under one
	// check_timeout; the README asks for 5 s to spare.
	if c, chk := deployDuration(t, params["milter_command_timeout"]), deployDuration(t, sample.CheckTimeout); c < chk+mtaTimeoutMargin {
		t.Errorf("milter_command_timeout %s must be at least check_timeout %s + %s", c, chk, mtaTimeoutMargin)
	}

	// postconf reads the snippet as main.cf: every name must be a Postfix
	// parameter (an unknown one is reported as unused) and every value must
	// come back as written.
	postconf := needProgram(t, "postconf")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "master.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(postconf, "-c", dir, "-n")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("postconf -c %s -n: %v\n%s", dir, err, stderr.String())
	}
	got := deployPostfixParams(t, string(out))
	for k, v := range params {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("postconf reads %s = %q, the snippet says %q", k, g, v)
		}
	}
	// The macros spfmilter reads come with Postfix's defaults, which the
	// snippet leaves alone.
	out, err = exec.Command(postconf, "-c", dir, "-h", "milter_connect_macros", "milter_mail_macros").CombinedOutput()
	if err != nil {
		t.Fatalf("postconf milter macros: %v\n%s", err, out)
	}
	if m := strings.Fields(string(out)); !slices.Contains(m, "j") || !slices.Contains(m, "{auth_authen}") {
		t.Errorf("Postfix's milter macros %q lack j or {auth_authen}", m)
	}
	// Expansion: postconf -x resolves $myhostname, proving the reference
	// names a real parameter.
	out, err = exec.Command(postconf, "-c", dir, "-x", "-h", "milter_macro_daemon_name").CombinedOutput()
	if err != nil || strings.Contains(string(out), "$") {
		t.Errorf("postconf -x milter_macro_daemon_name: %v %q", err, out)
	}
}

func TestDeploySendmailSnippet(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(deployDir, "sendmail/sendmail.mc.snippet"))
	if err != nil {
		t.Fatal(err)
	}
	sample := deployReadSample(t)
	_, addr := deployMilterAddr(t, sample.Listen)

	// Expand the snippet with m4 as sendmail.cf's build does, with
	// INPUT_MAIL_FILTER and define recorded instead of applied, to check the
	// quoting and the arguments that reach the filter definition.
	m4 := needProgram(t, "m4")
	prelude := "define(`INPUT_MAIL_FILTER', `FILTER[$1][$2]')dnl\n" +
		"define(`define', `DEFINE[$1][$2]')dnl\n"
	cmd := exec.Command(m4)
	cmd.Stdin = strings.NewReader(prelude + string(text))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("m4: %v\n%s", err, out)
	}
	expanded := strings.TrimSpace(string(out))
	m := regexp.MustCompile(`FILTER\[([^]]*)\]\[([^]]*)\]`).FindStringSubmatch(expanded)
	if m == nil {
		t.Fatalf("m4 output has no INPUT_MAIL_FILTER: %q", expanded)
	}
	name, fields := m[1], map[string]string{}
	for _, f := range strings.Split(m[2], ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	if fields["S"] != addr {
		t.Errorf("S=%s, want the sample config's listen as %s", fields["S"], addr)
	}
	// The S= value can be given to spfmilter as it is.
	if out, err := exec.Command(milterBinary(t), "--listen", fields["S"], "--config.check").CombinedOutput(); err != nil {
		t.Errorf("spfmilter --listen %s --config.check: %v\n%s", fields["S"], err, out)
	}
	if fields["F"] != "T" {
		t.Errorf("F=%s, want T (temporary failure when the filter is unavailable)", fields["F"])
	}
	timeouts := map[string]string{}
	for _, tv := range strings.Split(fields["T"], ";") {
		k, v, _ := strings.Cut(tv, ":")
		timeouts[k] = v
	}
	for _, k := range []string{"C", "S", "R", "E"} {
		if timeouts[k] == "" {
			t.Errorf("T= has no %s: timeout (%q)", k, fields["T"])
		}
	}
	if r, chk := deployDuration(t, timeouts["R"]), deployDuration(t, sample.CheckTimeout); r < chk+mtaTimeoutMargin {
		t.Errorf("T=R:%s must be at least check_timeout %s + %s: the checks run before the reply to MAIL FROM", r, chk, mtaTimeoutMargin)
	}
	if !strings.Contains(expanded, "DEFINE[confINPUT_MAIL_FILTERS]["+name+"]") {
		t.Errorf("confINPUT_MAIL_FILTERS does not name the filter %q: %q", name, expanded)
	}
	// Everything else is dnl comments: nothing may leak into sendmail.cf.
	rest := regexp.MustCompile(`(FILTER|DEFINE)\[[^]]*\]\[[^]]*\]`).ReplaceAllString(expanded, "")
	if strings.TrimSpace(rest) != "" {
		t.Errorf("the snippet leaves text in sendmail.cf: %q", rest)
	}

	// Then the real thing: sendmail.cf built with Sendmail's own cf.m4.
	cfm4 := filepath.Join(sendmailRoot(), "usr/share/sendmail/cf/m4/cf.m4")
	needFile(t, cfm4, "Sendmail's cf.m4 (run .ci/install-deps)")
	mc := "divert(-1)\ndivert(0)dnl\ninclude(`" + cfm4 + "')dnl\nOSTYPE(`linux')dnl\n" +
		string(text) + "MAILER(`local')dnl\nMAILER(`smtp')dnl\n"
	cmd = exec.Command(m4)
	cmd.Stdin = strings.NewReader(mc)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cf, err := cmd.Output()
	if err != nil {
		t.Fatalf("m4 with cf.m4: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(string(cf), "\n")
	for _, want := range []string{
		"O InputMailFilters=" + name,
		"X" + name + ", " + m[2],
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("sendmail.cf lacks the line %q", want)
		}
	}
	// The macros spfmilter reads come with Sendmail's default lists.
	for _, want := range [][2]string{
		{"O Milter.macros.connect=", "j"},
		{"O Milter.macros.envfrom=", "{auth_authen}"},
	} {
		found := false
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, want[0]); ok {
				found = slices.Contains(strings.Split(strings.ReplaceAll(v, " ", ""), ","), want[1])
			}
		}
		if !found {
			t.Errorf("sendmail.cf: %s does not list %s", want[0], want[1])
		}
	}
}

// TestDeployKubernetes runs the manifest checks, which live in their own
// module (deploy/kubernetes/validate) to keep the Kubernetes libraries out
// of this one.
func TestDeployKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Kubernetes manifest checks; skipped in -short mode")
	}
	cmd := exec.Command("go", "test", "-count=1", "./...")
	cmd.Dir = filepath.Join(deployDir, "kubernetes/validate")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in deploy/kubernetes/validate: %v\n%s", err, out)
	}
	t.Logf("deploy/kubernetes/validate: %s", strings.TrimSpace(string(out)))
}
