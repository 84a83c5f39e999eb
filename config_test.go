package main

import (
	"bytes"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
)

// loadArgs parses serve flags and loads the configuration.
func loadArgs(t *testing.T, args ...string) (*config.Config, error) {
	t.Helper()
	fset := flag.NewFlagSet("test", flag.ContinueOnError)
	cl := config.AddFlags(fset)
	if err := parseFlags(fset, args); err != nil {
		return nil, err
	}
	return cl.Load()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spfmilter.yml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicy(t *testing.T) {
	c := config.Defaults()
	if p := policy(c); len(p.MailFrom) != 0 || len(p.HELO) != 0 {
		t.Errorf("default policy %v, want accept everything", p)
	}
	c.Reject = []spf.Result{spf.Fail, spf.Permerror}
	c.DeferTemperror = true
	p := policy(c)
	want := map[spf.Result]milter.Action{spf.Fail: milter.ActionReject, spf.Permerror: milter.ActionReject, spf.Temperror: milter.ActionTempfail}
	if !reflect.DeepEqual(p.MailFrom, want) {
		t.Errorf("MAIL FROM policy %v, want %v", p.MailFrom, want)
	}
	if len(p.HELO) != 0 {
		t.Errorf("HELO policy %v, want empty while reject_helo is empty", p.HELO)
	}
	c.RejectHELO = []spf.Result{spf.Fail}
	p = policy(c)
	if want := map[spf.Result]milter.Action{spf.Fail: milter.ActionReject, spf.Temperror: milter.ActionTempfail}; !reflect.DeepEqual(p.HELO, want) {
		t.Errorf("HELO policy %v, want %v", p.HELO, want)
	}
}

// The actions setting refines and overrides the reject lists; a bad rule is
// refused with the reason.
func TestActionsSetting(t *testing.T) {
	c, err := loadArgs(t, "--config", writeFile(t, `reject: [fail, permerror]
actions:
  - mailfrom.permerror.lookup_limit=mark
  - mailfrom.permerror.void_lookup_limit=mark
  - mailfrom.softfail=quarantine
  - helo.fail=defer
  - mailfrom.temperror=quarantine
`), "--actions", "mailfrom.fail=quarantine")
	if err != nil {
		t.Fatal(err)
	}
	p := policy(c)
	// The flag replaces the file's list.
	if want := map[spf.Result]milter.Action{spf.Fail: milter.ActionQuarantine, spf.Permerror: milter.ActionReject}; !reflect.DeepEqual(p.MailFrom, want) {
		t.Errorf("MAIL FROM policy %v, want %v", p.MailFrom, want)
	}
	if p.MailFromPermerror != nil || len(p.HELO) != 0 {
		t.Errorf("policy %+v", p)
	}

	c, err = loadArgs(t, "--reject", "fail,permerror", "--actions", "mailfrom.permerror.lookup_limit=mark,mailfrom.softfail=quarantine",
		"--actions", "helo.fail=defer", "--actions", "MailFrom.TempError=Quarantine", "--actions", "helo.permerror.loop=reject")
	if err != nil {
		t.Fatal(err)
	}
	p = policy(c)
	for _, tc := range []struct {
		got, want any
	}{
		{p.MailFrom, map[spf.Result]milter.Action{spf.Fail: milter.ActionReject, spf.Permerror: milter.ActionReject,
			spf.Softfail: milter.ActionQuarantine, spf.Temperror: milter.ActionQuarantine}},
		{p.MailFromPermerror, map[spf.Cause]milter.Action{spf.CauseLookupLimit: milter.ActionAccept}},
		{p.HELO, map[spf.Result]milter.Action{spf.Fail: milter.ActionTempfail}},
		{p.HELOPermerror, map[spf.Cause]milter.Action{spf.CauseLoop: milter.ActionReject}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}

	for v, why := range map[string]string{
		"mailfrom.fail":                  "want IDENTITY",
		"fail=reject":                    "want IDENTITY",
		"envelope.fail=reject":           "identity must be",
		"mailfrom.pass=reject":           "pass is never",
		"mailfrom.bad=reject":            "unknown result",
		"mailfrom.fail.syntax=reject":    "only permerror",
		"mailfrom.permerror.typo=reject": "unknown cause",
		"helo.temperror=reject":          "temperror takes",
		"mailfrom.fail=discard":          "action must be",
		"mailfrom.permerror.a.b=reject":  "want IDENTITY",
	} {
		_, err := loadArgs(t, "--actions", v)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.HasPrefix(err.Error(), "flag --actions: ") {
			t.Errorf("%q: %v, want %q", v, err, why)
		}
	}
}

func TestNeverRejectRecipientsSetting(t *testing.T) {
	c, err := loadArgs(t, "--config", writeFile(t, "never_reject_recipients: [Postmaster@, abuse@Example.ORG., \"@optout.example\", <x@y.example>]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"postmaster@", "abuse@example.org", "@optout.example", "x@y.example"}; !slices.Equal(c.NeverReject, want) {
		t.Errorf("got %q, want %q", c.NeverReject, want)
	}
	mc := milterConfig(c, nil, nil)
	if !mc.NeverReject("ABUSE@example.org") || mc.NeverReject("user@example.org") || mc.RcptStage() {
		t.Errorf("milter config %q, RCPT stage %v", mc.NeverRejectRecipients, mc.RcptStage())
	}
	c.Reject = []spf.Result{spf.Fail}
	if !milterConfig(c, nil, nil).RcptStage() {
		t.Error("reject with never_reject_recipients: no RCPT stage")
	}
	c, err = loadArgs(t, "--never-reject-recipients", "", "--reject", "fail")
	if err != nil {
		t.Fatal(err)
	}
	if mc := milterConfig(c, nil, nil); len(mc.NeverRejectRecipients) != 0 || mc.RcptStage() {
		t.Errorf("empty setting: %q, RCPT stage %v", mc.NeverRejectRecipients, mc.RcptStage())
	}
	for _, v := range []string{"@", "a b@example.org", "x@example..org", "x@.example.org", "x,y@example.org"} {
		if _, err := loadArgs(t, "--never-reject-recipients", v); err == nil || !strings.Contains(err.Error(), "flag --never-reject-recipients: bad recipient") {
			t.Errorf("%q: %v", v, err)
		}
	}
}

func TestForwarderSettings(t *testing.T) {
	c, err := loadArgs(t, "--config", writeFile(t, "forwarder_domains: [Fwd.Example.NET., bücher.example]\nallow_helo: [MX.Example.ORG]\n"))
	if err != nil {
		t.Fatal(err)
	}
	mc := milterConfig(c, nil, nil)
	if !slices.Equal(mc.ForwarderDomains, []string{"fwd.example.net", "xn--bcher-kva.example"}) || !slices.Equal(mc.AllowHELO, []string{"mx.example.org"}) {
		t.Errorf("forwarders %q, allow_helo %q", mc.ForwarderDomains, mc.AllowHELO)
	}
}

// The shadow policy is the live one with the shadow settings over it, from
// a mapping in the file or from the flags; only policy keys are allowed.
func TestShadowSettings(t *testing.T) {
	c, err := loadArgs(t, "--config", writeFile(t, `reject: [fail]
forwarder_domains: [fwd.example.net]
shadow:
  reject: [fail, softfail]
  actions: [mailfrom.permerror=quarantine]
`), "--shadow.allow-helo", "mx.example.org")
	if err != nil {
		t.Fatal(err)
	}
	mc := milterConfig(c, nil, nil)
	sh := mc.Shadow
	if sh == nil {
		t.Fatal("no shadow policy")
	}
	if want := map[spf.Result]milter.Action{spf.Fail: milter.ActionReject, spf.Softfail: milter.ActionReject, spf.Permerror: milter.ActionQuarantine}; !reflect.DeepEqual(sh.Policy.MailFrom, want) {
		t.Errorf("shadow MAIL FROM policy %v, want %v", sh.Policy.MailFrom, want)
	}
	if want := map[spf.Result]milter.Action{spf.Fail: milter.ActionReject}; !reflect.DeepEqual(mc.Policy.MailFrom, want) {
		t.Errorf("live MAIL FROM policy %v, want %v", mc.Policy.MailFrom, want)
	}
	if !slices.Equal(sh.ForwarderDomains, []string{"fwd.example.net"}) || !slices.Equal(sh.AllowHELO, []string{"mx.example.org"}) || len(mc.AllowHELO) != 0 {
		t.Errorf("shadow forwarders %q allow_helo %q, live allow_helo %q", sh.ForwarderDomains, sh.AllowHELO, mc.AllowHELO)
	}
	if sh.Checker != mc.Checker || sh.Shadow != nil {
		t.Error("the shadow policy must use the live checker and have no shadow of its own")
	}
	if c, _ := loadArgs(t); milterConfig(c, nil, nil).Shadow != nil {
		t.Error("a shadow policy by default")
	}
	for yml, want := range map[string]string{
		"shadow: [reject]\n":             `config key "shadow" (`,
		"shadow:\n  listen: inet:x:1\n":  `config key "shadow.listen" (`,
		"shadow:\n  reject: pass\n":      `config key "shadow.reject" (`,
		"shadow:\n  shadow:\n    a: b\n": `config key "shadow.shadow" (`,
	} {
		_, err := loadArgs(t, "--config", writeFile(t, yml))
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want %s…", yml, err, want)
		}
	}
}

func TestTrustedRelaysSetting(t *testing.T) {
	c, err := loadArgs(t, "--trusted-relays", "192.0.2.5, 2001:db8::/32=Backup-MX.Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	want := []milter.Relay{{Prefix: netip.MustParsePrefix("192.0.2.5/32")}, {Prefix: netip.MustParsePrefix("2001:db8::/32"), By: "backup-mx.example.com"}}
	if mc := milterConfig(c, nil, nil); !reflect.DeepEqual(mc.TrustedRelays, want) {
		t.Errorf("relays %v, want %v", mc.TrustedRelays, want)
	}
	if _, err := loadArgs(t, "--trusted-relays", "backup-mx.example.com"); err == nil || !strings.Contains(err.Error(), "bad relay") {
		t.Errorf("a name for a network: %v", err)
	}
}

func TestMilterConfig(t *testing.T) {
	c := config.Defaults()
	c.Receiver, c.AuthservID, c.HideReceiver, c.DryRun, c.SkipAuthenticated = "mx.example.org", "auth.example.org", true, true, false
	c.RejectText = "no"
	mc := milterConfig(c, nil, nil)
	if mc.Checker.Receiver != "mx.example.org" || mc.Checker.Timeout != c.CheckTimeout {
		t.Errorf("checker %+v", mc.Checker)
	}
	if mc.AuthservID != "auth.example.org" || mc.Receiver != "mx.example.org" || !mc.HideReceiver || !mc.DryRun || mc.SkipAuthenticated || mc.RejectText != "no" {
		t.Errorf("config %+v", mc)
	}
	if !slices.Equal(mc.TrustedNetworks, c.TrustedNetworks) {
		t.Errorf("trusted %v", mc.TrustedNetworks)
	}
	hostname = func() (string, error) { return "host.example.net", nil }
	t.Cleanup(func() { hostname = os.Hostname })
	c.Receiver = ""
	if r := milterConfig(c, nil, nil).Checker.Receiver; r != "host.example.net" {
		t.Errorf("receiver %q, want the host name", r)
	}
}

func TestRestartNeeded(t *testing.T) {
	// Every setting not marked reloadable must be reported when it changes,
	// and no reloadable one.
	changed := map[string]string{
		"listen": "inet:127.0.0.1:1", "listen_mode": "0600", "http_listen": "127.0.0.1:1",
		"idle_timeout": "1s", "packet_timeout": "2s", "session_timeout": "3h", "max_connections": "7", "log_format": "json",
	}
	for _, s := range config.Settings() {
		if s.Reloadable {
			if _, ok := changed[s.Key]; ok {
				t.Errorf("%s is reloadable but listed as needing a restart", s.Key)
			}
			continue
		}
		v, ok := changed[s.Key]
		if !ok {
			t.Errorf("%s needs a restart but the test has no other value for it", s.Key)
			continue
		}
		c, err := loadArgs(t, "--"+s.Flag+"="+v)
		if err != nil {
			t.Fatal(err)
		}
		if got := restartNeeded(config.Defaults(), c); !slices.Equal(got, []string{s.Key}) {
			t.Errorf("changing %s: restartNeeded = %v", s.Key, got)
		}
	}
	c := config.Defaults()
	c.Reject = []spf.Result{spf.Fail}
	if got := restartNeeded(config.Defaults(), c); len(got) != 0 {
		t.Errorf("reject changed: restartNeeded = %v", got)
	}
}

// TestConfigCheck runs --config.check through run and checks the exit
// status and the single line of output.
func TestConfigCheck(t *testing.T) {
	good := writeFile(t, "reject: fail\n")
	bad := writeFile(t, "reject: pass\n")
	for _, tc := range []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"--config.check"}, 0, ""},
		{[]string{"--config", good, "--config.check"}, 0, ""},
		{[]string{"serve", "--config", good, "--config.check"}, 0, ""},
		{[]string{"--config", bad, "--config.check"}, 2, `spfmilter: config key "reject" (` + bad + `:1): unknown result "pass"`},
		{[]string{"--config", good, "--config.check", "--listen", "tcp:x"}, 2, `spfmilter: flag --listen: unsupported scheme "tcp:x" (want inet:HOST:PORT or unix:PATH)`},
		{[]string{"--no-such-flag"}, 2, "spfmilter: unknown flag --no-such-flag (see --help)"},
		{[]string{"--config.check", "extra"}, 2, `spfmilter: unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		status := run(tc.args, &stdout, &stderr)
		if status != tc.status {
			t.Errorf("%q: status %d, want %d (stderr %q)", tc.args, status, tc.status, stderr.String())
		}
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if tc.stderr == "" && stderr.Len() != 0 || tc.stderr != "" && (len(lines) != 1 || !strings.HasPrefix(lines[0], tc.stderr)) {
			t.Errorf("%q: stderr %q, want one line starting %q", tc.args, stderr.String(), tc.stderr)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"check", "-h"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		if status := run(args, &stdout, &stderr); status != 0 || stdout.Len() == 0 || stderr.Len() != 0 {
			t.Errorf("%q: status %d, stdout %d bytes, stderr %q", args, status, stdout.Len(), stderr.String())
		}
	}
	var stdout bytes.Buffer
	run([]string{"serve", "--help"}, &stdout, &bytes.Buffer{})
	for _, s := range config.Settings() {
		if !strings.Contains(stdout.String(), "-"+s.Flag) {
			t.Errorf("serve --help lacks --%s", s.Flag)
		}
	}
}

func TestRemoveStaleSocket(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := removeStaleSocket(regular); err == nil {
		t.Error("a regular file was taken for a socket")
	}
	if _, err := os.Stat(regular); err != nil {
		t.Errorf("regular file removed: %v", err)
	}
	if err := removeStaleSocket(filepath.Join(dir, "absent")); err != nil {
		t.Errorf("absent path: %v", err)
	}
}

func TestListenUnixMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.sock")
	a := config.Listen{Network: "unix", Address: path}
	for _, mode := range []fs.FileMode{0o660, 0o600} {
		ln, err := listen(a, mode)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != mode {
			t.Errorf("socket mode %v, want socket %v", fi.Mode(), mode)
		}
		// A live socket is not taken over.
		if _, err := listen(a, mode); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("second listen on a live socket: %v", err)
		}
		ln.Close()
	}
}

// TestDNSClientReconfigure: a reload keeps the resolver (and its cache)
// unless a DNS setting changed.
func TestDNSClientReconfigure(t *testing.T) {
	c := config.Defaults()
	c.Resolvers = []string{"127.0.0.1:5353"}
	dc, err := newDNSClient(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	same := config.Defaults()
	same.Resolvers = []string{"127.0.0.1:5353"}
	same.Reject = []spf.Result{spf.Fail}
	if got, err := dc.reconfigure(same, nil); err != nil || got != dc {
		t.Errorf("unchanged DNS settings: %p, %v; want the same client %p", got, err, dc)
	}
	for name, change := range map[string]func(*config.Config){
		"resolver":        func(c *config.Config) { c.Resolvers = []string{"127.0.0.2:5353"} },
		"dns_timeout":     func(c *config.Config) { c.DNSTimeout = time.Second },
		"cache_size":      func(c *config.Config) { c.CacheSize = 5 },
		"cache_max_bytes": func(c *config.Config) { c.CacheMaxBytes = 2 << 20 },
	} {
		n := config.Defaults()
		n.Resolvers = []string{"127.0.0.1:5353"}
		change(n)
		got, err := dc.reconfigure(n, nil)
		if err != nil || got == dc {
			t.Errorf("%s changed: %p, %v; want a new client", name, got, err)
			continue
		}
		if h := got.resolver.Health(); name == "resolver" && (len(h) != 1 || h[0].Addr != "127.0.0.2:5353") {
			t.Errorf("servers %+v", h)
		}
	}
}
