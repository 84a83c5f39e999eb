package config

import (
	"flag"
	"io"
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
	fset.SetOutput(io.Discard)
	cl := AddFlags(fset)
	if err := fset.Parse(args); err != nil {
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

// TestDefaults checks every default against the documented interface.
func TestDefaults(t *testing.T) {
	c, err := loadArgs(t)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen:            Listen{Network: "tcp", Address: "127.0.0.1:8895"},
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
		Actions:           []ActionRule{},
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
		MaxProcs:          1,
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
	AddFlags(fset)
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
	if c.Listen != (Listen{"unix", "/run/spfmilter/spfmilter.sock"}) || c.ListenMode != 0o600 {
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
	if c.Listen != (Listen{"tcp", "[::1]:10025"}) || c.ListenMode != 0o640 {
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
		if !reflect.DeepEqual(c, Defaults()) {
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
		"max_procs":               "-1",
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
	for in, want := range map[string]Listen{
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
