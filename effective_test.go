package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

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
	for _, s := range config.Settings() {
		if _, ok := start[s.Key]; !ok {
			t.Errorf("start-up log lacks %s", s.Key)
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
	attrs := configAttrs("", config.Defaults(), []string{"192.0.2.53:53"})
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
	c := config.Defaults()
	c.Resolvers = []string{"127.0.0.1:5353", "[::1]:53"}
	dc, err := newDNSClient(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := dc.asked(); !slices.Equal(got, c.Resolvers) {
		t.Errorf("asked %q, want %q", got, c.Resolvers)
	}
}
