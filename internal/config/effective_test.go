package config

import (
	"reflect"
	"testing"
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
		"--max-connections", "7", "--max-procs", "0",
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
	if got := changedSettings(Defaults(), changed); len(got) != len(settings) {
		t.Errorf("the test changes %d of %d settings", len(got), len(settings))
	}
	for name, c := range map[string]*Config{"defaults": Defaults(), "changed": changed} {
		for _, s := range settings {
			v := settingValue(c, s)
			if s.shadow && v == "" {
				continue // unset
			}
			vals := []string{v}
			if s.list {
				vals = SplitList(v)
			}
			back := Defaults()
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
