package main

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// TestEverySettingHasAField: settingFields pairs every setting with exactly
// one Config field and no field is left out, so the log shows them all.
func TestEverySettingHasAField(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	used := map[int]string{}
	for _, s := range settings {
		if s.shadow {
			continue
		}
		i, ok := settingFields()[s.key]
		if !ok {
			t.Errorf("setting %s: no Config field named after it", s.key)
			continue
		}
		if other, dup := used[i]; dup {
			t.Errorf("settings %s and %s both map to Config.%s", other, s.key, typ.Field(i).Name)
		}
		used[i] = s.key
	}
	for i := range typ.NumField() {
		if _, ok := used[i]; !ok && typ.Field(i).Name != "Shadow" {
			t.Errorf("Config.%s: no setting maps to it", typ.Field(i).Name)
		}
	}
}

// TestSettingValuesRoundTrip: what the log shows for a setting, given back
// as that setting's value, gives the same configuration. Checked on the
// defaults and on a configuration that changes every setting.
func TestSettingValuesRoundTrip(t *testing.T) {
	changed, err := loadArgs(t,
		"--listen", "inet6:10025@::1", "--listen-mode", "0600", "--http-listen", "",
		"--resolver", "127.0.0.1:5353", "--resolver", "::1", "--dns-timeout", "1500ms", "--cache-size", "0", "--cache-max-bytes", "2MiB",
		"--check-timeout", "1m", "--authserv-id", "mx.example.org", "--receiver", "rcv.example.org",
		"--hide-receiver", "--trusted-networks", "10.0.0.0/8,192.0.2.7", "--skip-authenticated=false",
		"--reject", "FAIL,softfail", "--reject-helo", "fail", "--defer-temperror", "--dry-run",
		"--reject-text", "no, {result}", "--idle-timeout", "0", "--packet-timeout", "5s", "--session-timeout", "2h",
		"--max-connections", "7",
		"--shutdown-timeout", "1h", "--log-format", "JSON", "--log-level", "Debug",
		"--dkim-rescue", "From", "--dkim-max-bytes", "2MiB",
		"--actions", "mailfrom.fail=quarantine,helo.permerror.syntax=mark", "--never-reject-recipients", "abuse@,@example.org",
		"--forwarder-domains", "fwd.example.org", "--allow-helo", "mail.example.org",
		"--trusted-relays", "192.0.2.5/32=backup-mx.example.com,198.51.100.0/24",
		"--shadow.reject", "softfail", "--shadow.reject-helo", "fail", "--shadow.defer-temperror=true",
		"--shadow.actions", "mailfrom.fail=mark", "--shadow.forwarder-domains", "f.example.net", "--shadow.allow-helo", "h.example.net")
	if err != nil {
		t.Fatal(err)
	}
	if got := changedSettings(defaults(), changed); len(got) != len(settings) {
		t.Errorf("the test changes %d of %d settings", len(got), len(settings))
	}
	for name, c := range map[string]*Config{"defaults": defaults(), "changed": changed} {
		for _, s := range settings {
			v := settingValue(c, s)
			if s.shadow && v == "" {
				continue // unset
			}
			vals := []string{v}
			if s.list {
				vals = splitList(v)
			}
			back := defaults()
			if err := s.set(back, vals); err != nil {
				t.Errorf("%s: %s's logged value %q is refused: %v", name, s.key, v, err)
				continue
			}
			if got := settingValue(back, s); got != v {
				t.Errorf("%s: %s logged as %q reads back as %q", name, s.key, v, got)
			}
		}
	}
	if got := settingValue(changed, settingByKey("listen_mode")); got != "0600" {
		t.Errorf("listen_mode logged as %q, want 0600", got)
	}
	if got := settingValue(changed, settingByKey("log_level")); got != "debug" {
		t.Errorf("log_level logged as %q, want debug", got)
	}
}

// jsonLines parses a daemon's JSON log.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func findLine(lines []map[string]any, msg string) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// TestLogEffectiveSettings: the start-up log names the config file and
// every setting's effective value; a reload logs what it changed.
func TestLogEffectiveSettings(t *testing.T) {
	hostname = func() (string, error) { return "host.example.net", nil }
	t.Cleanup(func() { hostname = os.Hostname })
	srv := spftest.NewServer(t, testWorld())
	file := writeFile(t, "reject: fail\ntrusted_networks: 192.0.2.0/24\n")
	d, _, _, logs := startDaemon(t, "--config", file, "--listen", "inet:127.0.0.1:0", "--http-listen", "",
		"--resolver", srv.Addr(), "--log-format", "json")

	start := findLine(jsonLines(t, logs.String()), "configuration")
	if start == nil {
		t.Fatalf("no configuration line:\n%s", logs)
	}
	want := map[string]string{
		"config": file, "resolver": srv.Addr(), "reject": "fail", "trusted_networks": "192.0.2.0/24",
		"authserv_id": "(the MTA's j macro, else host.example.net)", "receiver": "host.example.net (the host name)",
		"listen":      "inet:127.0.0.1:0",
		"dns_timeout": "2s", "log_format": "json",
	}
	for _, s := range settings {
		if _, ok := start[s.key]; !ok {
			t.Errorf("start-up log lacks %s", s.key)
		}
	}
	for k, v := range want {
		if start[k] != v {
			t.Errorf("start-up log: %s = %v, want %q", k, start[k], v)
		}
	}

	if err := os.WriteFile(file, []byte("reject: []\ntrusted_networks: 192.0.2.0/24\nlog_level: DEBUG\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	reloaded := findLine(jsonLines(t, logs.String()), "config reloaded")
	if reloaded == nil {
		t.Fatalf("no reload line:\n%s", logs)
	}
	if reloaded["changed"] != 2.0 || reloaded["reject"] != `fail → ""` || reloaded["log_level"] != "info → debug" || reloaded["config"] != file {
		t.Errorf("reload line %v, want config, changed=2, reject and log_level", reloaded)
	}
	if _, ok := reloaded["trusted_networks"]; ok {
		t.Errorf("reload line names an unchanged setting: %v", reloaded)
	}
}

// TestConfigAttrsDefaults: with no file and no resolver given, the log says
// so, and shows the servers of resolv.conf.
func TestConfigAttrsDefaults(t *testing.T) {
	hostname = func() (string, error) { return "host.example.net", nil }
	t.Cleanup(func() { hostname = os.Hostname })
	attrs := configAttrs("", defaults(), []string{"192.0.2.53:53"})
	m := map[string]any{}
	for i := 0; i+1 < len(attrs); i += 2 {
		m[attrs[i].(string)] = attrs[i+1]
	}
	if m["config"] != "(none)" || m["resolver"] != "192.0.2.53:53 (from /etc/resolv.conf)" || m["receiver"] != "host.example.net (the host name)" || m["reject"] != "" {
		t.Errorf("attrs %v", m)
	}
}

// TestServersAsked: the log's list of servers is the resolver's own.
func TestServersAsked(t *testing.T) {
	c := defaults()
	c.Resolvers = []string{"127.0.0.1:5353", "[::1]:53"}
	dc, err := newDNSClient(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := dc.asked(); !slices.Equal(got, c.Resolvers) {
		t.Errorf("asked %q, want %q", got, c.Resolvers)
	}
}
