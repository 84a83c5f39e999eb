package main

import (
	"bytes"
	"flag"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
)

// loadArgs parses serve flags and loads the configuration.
func loadArgs(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	fset := flag.NewFlagSet("test", flag.ContinueOnError)
	cl := addConfigFlags(fset)
	if err := parseFlags(fset, args); err != nil {
		return nil, err
	}
	return cl.load()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spfmilter.yml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDefaults checks every default against the documented interface.
func TestDefaults(t *testing.T) {
	c, err := loadArgs(t)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen:            listenAddr{Network: "tcp", Address: "127.0.0.1:8895"},
		ListenMode:        0o660,
		HTTPListen:        "127.0.0.1:9466",
		Resolvers:         nil, // /etc/resolv.conf
		DNSTimeout:        2 * time.Second,
		CacheSize:         10000,
		CacheMaxBytes:     32 << 20,
		CheckTimeout:      20 * time.Second, // RFC 7208 §4.6.4
		AuthservID:        "",
		Receiver:          "",
		HideReceiver:      false,
		TrustedNetworks:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		SkipAuthenticated: true,
		Reject:            []spf.Result{},
		RejectHELO:        []spf.Result{},
		DeferTemperror:    false,
		DKIMRescue:        milter.RescueOff,
		DKIMMaxBytes:      1 << 20,
		Actions:           []actionRule{},
		NeverReject:       []string{"postmaster@"},
		ForwarderDomains:  []string{},
		AllowHELO:         []string{},
		TrustedRelays:     []milter.Relay{},
		DryRun:            false,
		RejectText:        "SPF {result} for {domain}: {explanation}",
		IdleTimeout:       10 * time.Minute,
		PacketTimeout:     30 * time.Second,
		SessionTimeout:    time.Hour,
		MaxConnections:    1000,
		ShutdownTimeout:   30 * time.Second,
		LogFormat:         "text",
		LogLevel:          slog.LevelInfo,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

// TestEveryFieldHasASetting makes sure no Config field lacks a table entry
// (and so a key, a flag, a default and a README line).
func TestEveryFieldHasASetting(t *testing.T) {
	// The shadow.* settings share the one Shadow field.
	live := 0
	for _, s := range settings {
		if !s.shadow {
			live++
		}
	}
	if n := reflect.TypeFor[Config]().NumField(); n != live+1 || len(settings) != live+len(shadowKeys) {
		t.Errorf("Config has %d fields, the settings table %d entries (%d live)", n, len(settings), live)
	}
	seen := map[string]bool{}
	for _, s := range settings {
		if seen[s.key] {
			t.Errorf("key %q twice", s.key)
		}
		seen[s.key] = true
		if key := strings.TrimPrefix(s.key, shadowPrefix); key != strings.ToLower(key) || strings.ContainsAny(key, "-.") {
			t.Errorf("key %q is not snake_case", s.key)
		}
	}
}

func TestFixedFlagsExist(t *testing.T) {
	fset := flag.NewFlagSet("test", flag.ContinueOnError)
	addConfigFlags(fset)
	for _, name := range []string{
		"config", "config.check", "listen", "listen-mode", "resolver", "authserv-id", "trusted-networks",
		"reject", "reject-helo", "defer-temperror", "dry-run", "http-listen",
	} {
		if fset.Lookup(name) == nil {
			t.Errorf("no flag --%s", name)
		}
	}
}

func TestFlags(t *testing.T) {
	c, err := loadArgs(t,
		"--listen", "unix:/run/spfmilter/spfmilter.sock", "--listen-mode", "0600",
		"--resolver", "127.0.0.1:5353", "--resolver", "::1",
		"--authserv-id", "mx.example.org", "--trusted-networks", "",
		"--reject", "fail,SoftFail,permerror", "--reject-helo", "fail",
		"--defer-temperror", "--dry-run", "--http-listen", "",
		"--log-format=json", "--log-level", "debug", "--dns-timeout", "2s",
		"--skip-authenticated=false", "--max-connections", "0", "--idle-timeout", "0",
	)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != (listenAddr{"unix", "/run/spfmilter/spfmilter.sock"}) || c.ListenMode != 0o600 {
		t.Errorf("listen = %v %v", c.Listen, c.ListenMode)
	}
	if !slices.Equal(c.Resolvers, []string{"127.0.0.1:5353", "[::1]:53"}) {
		t.Errorf("resolvers = %q", c.Resolvers)
	}
	if c.AuthservID != "mx.example.org" {
		t.Errorf("authserv-id = %q", c.AuthservID)
	}
	if c.TrustedNetworks == nil || len(c.TrustedNetworks) != 0 {
		t.Errorf(`--trusted-networks "" = %v, want empty (trust nothing)`, c.TrustedNetworks)
	}
	if !slices.Equal(c.Reject, []spf.Result{spf.Fail, spf.Softfail, spf.Permerror}) || !slices.Equal(c.RejectHELO, []spf.Result{spf.Fail}) {
		t.Errorf("reject = %v, reject-helo = %v", c.Reject, c.RejectHELO)
	}
	if !c.DeferTemperror || !c.DryRun || c.SkipAuthenticated {
		t.Errorf("booleans: defer %v dry %v skip-auth %v", c.DeferTemperror, c.DryRun, c.SkipAuthenticated)
	}
	if c.HTTPListen != "" || c.LogFormat != "json" || c.LogLevel != slog.LevelDebug || c.DNSTimeout != 2*time.Second {
		t.Errorf("http %q format %q level %v dns %v", c.HTTPListen, c.LogFormat, c.LogLevel, c.DNSTimeout)
	}
	if c.MaxConnections != 0 || c.IdleTimeout != 0 {
		t.Errorf("max-connections %d idle %v", c.MaxConnections, c.IdleTimeout)
	}
}

func TestYAML(t *testing.T) {
	p := writeFile(t, `
listen: inet:[::1]:10025
listen_mode: 0o640
resolver:
  - 127.0.0.1:5353
  - 127.0.0.2
trusted_networks: 10.0.0.0/8, 192.0.2.7
reject: [fail, permerror]
defer_temperror: true
dkim_rescue: From
dkim_max_bytes: 2MiB
authserv_id:
check_timeout: 30s
cache_size: 0
log_level: warn
`)
	c, err := loadArgs(t, "--config", p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != (listenAddr{"tcp", "[::1]:10025"}) || c.ListenMode != 0o640 {
		t.Errorf("listen = %v %v", c.Listen, c.ListenMode)
	}
	if !slices.Equal(c.Resolvers, []string{"127.0.0.1:5353", "127.0.0.2:53"}) {
		t.Errorf("resolvers = %q", c.Resolvers)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}; !slices.Equal(c.TrustedNetworks, want) {
		t.Errorf("trusted = %v", c.TrustedNetworks)
	}
	if !slices.Equal(c.Reject, []spf.Result{spf.Fail, spf.Permerror}) || !c.DeferTemperror {
		t.Errorf("reject %v defer %v", c.Reject, c.DeferTemperror)
	}
	if c.DKIMRescue != milter.RescueFrom || c.DKIMMaxBytes != 2<<20 {
		t.Errorf("dkim_rescue %q dkim_max_bytes %d", c.DKIMRescue, c.DKIMMaxBytes)
	}
	if c.CheckTimeout != 30*time.Second || c.CacheSize != 0 || c.LogLevel != slog.LevelWarn {
		t.Errorf("check %v cache %d level %v", c.CheckTimeout, c.CacheSize, c.LogLevel)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	p := writeFile(t, "reject: fail\nresolver: [127.0.0.1:5353, 127.0.0.2:5353]\ndry_run: true\nlisten: unix:/tmp/x.sock\n")
	c, err := loadArgs(t, "--config", p, "--reject", "softfail", "--resolver", "127.0.0.9:53", "--dry-run=false")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Reject, []spf.Result{spf.Softfail}) {
		t.Errorf("reject = %v, want the flag's", c.Reject)
	}
	// A list flag replaces the file's list rather than adding to it.
	if !slices.Equal(c.Resolvers, []string{"127.0.0.9:53"}) {
		t.Errorf("resolvers = %q, want the flag's only", c.Resolvers)
	}
	if c.DryRun {
		t.Error("dry_run from the file survived --dry-run=false")
	}
	if c.Listen.Address != "/tmp/x.sock" {
		t.Errorf("listen = %v, want the file's (no flag given)", c.Listen)
	}
	// Flag order does not matter: --config after the flags still loses.
	c, err = loadArgs(t, "--reject", "softfail", "--config", p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Reject, []spf.Result{spf.Softfail}) {
		t.Errorf("reject = %v with --config last, want the flag's", c.Reject)
	}
}

// TestEmptyFile: a file that sets nothing is refused, at start as on a
// reload (see errNoSettings); an explicit empty mapping means the defaults.
func TestEmptyFile(t *testing.T) {
	for _, content := range []string{"", "\n  \n", "# nothing\n", "---\n", "--- # settings follow\n", "~\n", "null\n"} {
		p := writeFile(t, content)
		_, err := loadArgs(t, "--config", p)
		if err == nil {
			t.Errorf("%q: accepted", content)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, p) || !strings.Contains(msg, "no settings") || strings.Contains(msg, "\n") {
			t.Errorf("%q: error %q, want one line naming the file and saying it has no settings", content, msg)
		}
	}
	for _, content := range []string{"{}\n", "# all defaults\n{}\n", "--- {}\n"} {
		c, err := loadArgs(t, "--config", writeFile(t, content))
		if err != nil {
			t.Errorf("%q: %v", content, err)
			continue
		}
		if !reflect.DeepEqual(c, defaults()) {
			t.Errorf("%q: not the defaults", content)
		}
	}
}

func TestParseSize(t *testing.T) {
	for v, want := range map[string]int64{
		"1048576": 1 << 20, "512KiB": 512 << 10, "32MiB": 32 << 20, "2GiB": 2 << 30, "0": 0,
	} {
		if got, err := parseSize(v); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"", "32MB", "32 MiB", "-1MiB", "1.5GiB", "MiB", "9223372036854775807GiB", "32mib"} {
		if got, err := parseSize(v); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", v, got)
		}
	}
}

// TestBadValues gives each key a bad value, in the file and as a flag, and
// expects one line naming the key (or flag) and the value.
func TestBadValues(t *testing.T) {
	bad := map[string]string{
		"listen":                  "tcp:127.0.0.1:8895",
		"listen_mode":             "0999",
		"http_listen":             "localhost",
		"resolver":                "dns.example.net:53",
		"dns_timeout":             "5 seconds",
		"cache_size":              "-1",
		"cache_max_bytes":         "512KiB",
		"check_timeout":           "0s",
		"authserv_id":             "mx;example",
		"receiver":                "mx example",
		"hide_receiver":           "maybe",
		"trusted_networks":        "10.0.0.0/33",
		"skip_authenticated":      "sometimes",
		"reject":                  "pass",
		"reject_helo":             "temperror",
		"defer_temperror":         "yes please",
		"dkim_rescue":             "dmarc",
		"dkim_max_bytes":          "1KiB",
		"actions":                 "mailfrom.fail=drop",
		"never_reject_recipients": "postmaster",
		"forwarder_domains":       "forwarder",
		"allow_helo":              "mx..example.org",
		"trusted_relays":          "192.0.2.0/24=bad name",
		"dry_run":                 "2",
		"reject_text":             "line\nbreak",
		"idle_timeout":            "-1s",
		"packet_timeout":          "soon",
		"session_timeout":         "-5m",
		"max_connections":         "many",
		"shutdown_timeout":        "forever",
		"log_format":              "xml",
		"log_level":               "loud",
	}
	for _, s := range settings {
		// A shadow setting takes what its live setting takes.
		v, ok := bad[strings.TrimPrefix(s.key, shadowPrefix)]
		if !ok {
			t.Errorf("no bad value tested for %s", s.key)
			continue
		}
		t.Run(s.key, func(t *testing.T) {
			quoted := strings.ReplaceAll(v, "\n", `\n`)
			_, err := loadArgs(t, "--"+s.flag()+"="+v)
			if err == nil {
				t.Fatalf("flag --%s %q accepted", s.flag(), v)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "flag --"+s.flag()+": ") || !strings.Contains(msg, quoted) || strings.Contains(msg, "\n") {
				t.Errorf("flag error %q: want one line naming --%s and %q", msg, s.flag(), v)
			}
			yml := s.key + ": " + yamlQuote(v) + "\n"
			_, err = loadArgs(t, "--config", writeFile(t, yml))
			if err == nil {
				t.Fatalf("file %q accepted", yml)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, `config key "`+s.key+`" (`) || !strings.Contains(msg, quoted) || strings.Contains(msg, "\n") {
				t.Errorf("file error %q: want one line naming key %q and %q", msg, s.key, v)
			}
		})
	}
}

func yamlQuote(v string) string {
	return `"` + strings.ReplaceAll(v, "\n", `\n`) + `"`
}

func TestUnknownKey(t *testing.T) {
	_, err := loadArgs(t, "--config", writeFile(t, "listen: inet:127.0.0.1:1\nrejct: fail\n"))
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	if msg := err.Error(); !strings.Contains(msg, `config key "rejct"`) || !strings.Contains(msg, "unknown key") || !strings.Contains(msg, ":2)") {
		t.Errorf("error %q: want the key, its line and 'unknown key'", msg)
	}
}

func TestBadFiles(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"syntax":            {"listen: [unclosed\n", "config file"},
		"list":              {"- listen\n", "want a mapping"},
		"duplicate":         {"reject: fail\nreject: softfail\n", `config key "reject"`},
		"mapping":           {"listen:\n  inet: 1\n", `config key "listen"`},
		"list for a scalar": {"dns_timeout: [1s, 2s]\n", `config key "dns_timeout"`},
		"two documents":     {"dry_run: true\n---\ndry_run: false\n", "single YAML document"},
	} {
		_, err := loadArgs(t, "--config", writeFile(t, tc.content))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q, want one line with %q", name, msg, tc.want)
		}
	}
	_, err := loadArgs(t, "--config", filepath.Join(t.TempDir(), "missing.yml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestListen(t *testing.T) {
	for in, want := range map[string]listenAddr{
		"inet:127.0.0.1:8895": {"tcp", "127.0.0.1:8895"},
		"inet:[::1]:8895":     {"tcp", "[::1]:8895"},
		"inet::8895":          {"tcp", ":8895"},
		"unix:/run/x.sock":    {"unix", "/run/x.sock"},
	} {
		got, err := parseListen(in)
		if err != nil || got != want {
			t.Errorf("parseListen(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("String() = %q, want %q", got.String(), in)
		}
	}
	// Sendmail's forms (INPUT_MAIL_FILTER's S=), and any case of the
	// scheme, come out as the canonical form.
	for in, want := range map[string]string{
		"inet:8895@127.0.0.1":      "inet:127.0.0.1:8895",
		"inet6:8895@::1":           "inet:[::1]:8895",
		"inet6:8895@[::1]":         "inet:[::1]:8895",
		"inet:8895@localhost":      "inet:localhost:8895",
		"local:/run/x.sock":        "unix:/run/x.sock",
		"INET:127.0.0.1:8895":      "inet:127.0.0.1:8895",
		"Unix:/run/x.sock":         "unix:/run/x.sock",
		"Inet6:10025@2001:db8::25": "inet:[2001:db8::25]:10025",
	} {
		got, err := parseListen(in)
		if err != nil || got.String() != want {
			t.Errorf("parseListen(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for in, hint := range map[string]string{
		"":                     "want inet:HOST:PORT or unix:PATH",
		"8895":                 "want inet:HOST:PORT or unix:PATH",
		"tcp:127.0.0.1:8895":   "want inet:HOST:PORT or unix:PATH",
		"inet:":                "inet:127.0.0.1:8895",
		"inet:127.0.0.1":       "inet:127.0.0.1:8895",
		"inet:8895":            "inet::PORT for every address",
		"inet:127.0.0.1:99999": "inet:127.0.0.1:8895",
		"inet:8895@":           "inet:8895@127.0.0.1",
		"inet:99999@127.0.0.1": `bad port "99999"`,
		"inet6:[::1]:1":        "inet6:8895@::1",
		"unix:":                "unix:PATH",
		"local:":               "unix:PATH",
	} {
		_, err := parseListen(in)
		if err == nil {
			t.Errorf("parseListen(%q) accepted", in)
			continue
		}
		// One message: the value once, one hint.
		msg := err.Error()
		if !strings.Contains(msg, hint) || strings.Count(msg, "(") != 1 || strings.Count(msg, strconv.Quote(in)) != 1 {
			t.Errorf("parseListen(%q): %q, want one message with the value once and %q", in, msg, hint)
		}
	}
}

// TestEnumerationsIgnoreCase: every value taken from a fixed set is
// case-insensitive, in the file as on the command line.
func TestEnumerationsIgnoreCase(t *testing.T) {
	c, err := loadArgs(t, "--reject", "FAIL,SoftFail", "--log-level", "INFO", "--log-format", "JSON",
		"--dry-run=TRUE", "--hide-receiver=True", "--listen", "INET:127.0.0.1:1", "--dkim-rescue", "MailFrom")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Reject, []spf.Result{spf.Fail, spf.Softfail}) || c.LogLevel != slog.LevelInfo || c.LogFormat != "json" ||
		!c.DryRun || !c.HideReceiver || c.Listen.String() != "inet:127.0.0.1:1" || c.DKIMRescue != milter.RescueMailFrom {
		t.Errorf("got reject %v level %v format %q dry %v hide %v listen %v", c.Reject, c.LogLevel, c.LogFormat, c.DryRun, c.HideReceiver, c.Listen)
	}
	c, err = loadArgs(t, "--config", writeFile(t, "log_level: Warn\nlog_format: Text\nreject_helo: [PermError]\nskip_authenticated: FALSE\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != slog.LevelWarn || c.LogFormat != "text" || !slices.Equal(c.RejectHELO, []spf.Result{spf.Permerror}) || c.SkipAuthenticated {
		t.Errorf("got level %v format %q reject_helo %v skip %v", c.LogLevel, c.LogFormat, c.RejectHELO, c.SkipAuthenticated)
	}
}

func TestPolicy(t *testing.T) {
	c := defaults()
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
	c := defaults()
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
	for _, s := range settings {
		if s.reload {
			if _, ok := changed[s.key]; ok {
				t.Errorf("%s is reloadable but listed as needing a restart", s.key)
			}
			continue
		}
		v, ok := changed[s.key]
		if !ok {
			t.Errorf("%s needs a restart but the test has no other value for it", s.key)
			continue
		}
		c := defaults()
		if err := s.set(c, []string{v}); err != nil {
			t.Fatal(err)
		}
		if got := restartNeeded(defaults(), c); !slices.Equal(got, []string{s.key}) {
			t.Errorf("changing %s: restartNeeded = %v", s.key, got)
		}
	}
	c := defaults()
	c.Reject = []spf.Result{spf.Fail}
	if got := restartNeeded(defaults(), c); len(got) != 0 {
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
	for _, s := range settings {
		if !strings.Contains(stdout.String(), "-"+s.flag()) {
			t.Errorf("serve --help lacks --%s", s.flag())
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
	a := listenAddr{Network: "unix", Address: path}
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
	c := defaults()
	c.Resolvers = []string{"127.0.0.1:5353"}
	dc, err := newDNSClient(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	same := defaults()
	same.Resolvers = []string{"127.0.0.1:5353"}
	same.Reject = []spf.Result{spf.Fail}
	if got, err := dc.reconfigure(same, nil); err != nil || got != dc {
		t.Errorf("unchanged DNS settings: %p, %v; want the same client %p", got, err, dc)
	}
	for name, change := range map[string]func(*Config){
		"resolver":        func(c *Config) { c.Resolvers = []string{"127.0.0.2:5353"} },
		"dns_timeout":     func(c *Config) { c.DNSTimeout = time.Second },
		"cache_size":      func(c *Config) { c.CacheSize = 5 },
		"cache_max_bytes": func(c *Config) { c.CacheMaxBytes = 2 << 20 },
	} {
		n := defaults()
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
