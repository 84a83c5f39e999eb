package config

import (
	"fmt"
	"io/fs"
	"log/slog"
	"reflect"
	"strings"
	"sync"

	"github.com/spfmilter/spfmilter/milter"
)

// The effective settings, for the log: every setting's value in flag syntax,
// at start, and the ones a reload changed. No setting holds a secret today;
// one that does must be masked in settingValue.

// Value is the value of the setting key in c, in flag syntax ("" when empty
// or, for a shadow.* setting, unset; "?" for an unknown key).
func (c *Config) Value(key string) string {
	s := settingByKey(key)
	if s == nil {
		return "?"
	}
	return settingValue(c, s)
}

// Change is a setting whose value differs between two configurations.
type Change struct {
	Key, Old, New string // values in flag syntax
	Reloadable    bool   // takes effect on SIGHUP
}

// Changed lists the settings whose values differ from old to c, in the
// table's order.
func Changed(old, c *Config) []Change {
	var out []Change
	for _, ch := range changedSettings(old, c) {
		out = append(out, Change{Key: ch.s.key, Old: ch.old, New: ch.new, Reloadable: ch.s.reload})
	}
	return out
}

// settingValue is one setting's value in c, in flag syntax ("" when empty).
// A shadow.* setting shows the value given, "" while unset.
func settingValue(c *Config, s *setting) string {
	if s.shadow {
		for _, o := range c.Shadow {
			if shadowPrefix+o.s.key == s.key {
				return strings.Join(o.vals, ",")
			}
		}
		return ""
	}
	i, ok := settingFields()[s.key]
	if !ok {
		return "?" // a setting without a field: TestEverySettingHasAField names it
	}
	return formatValue(reflect.ValueOf(c).Elem().Field(i))
}

// fieldNames are the Config fields whose names do not follow from their
// setting's key.
var fieldNames = map[string]string{"never_reject_recipients": "NeverReject"}

// settingFields maps each setting's key to the index of the Config field it
// fills: the field whose name is the key without underscores, ignoring case
// (listen_mode is ListenMode, http_listen HTTPListen), or its plural
// (resolver is Resolvers), or the one fieldNames gives. The shadow.*
// settings all fill Config.Shadow. TestEverySettingHasAField checks that
// every other setting finds exactly one field and every field a setting.
var settingFields = sync.OnceValue(func() map[string]int {
	t := reflect.TypeFor[Config]()
	m := map[string]int{}
	for _, s := range settings {
		if s.shadow {
			continue
		}
		name := strings.ReplaceAll(s.key, "_", "")
		for i := range t.NumField() {
			f := t.Field(i).Name
			if strings.EqualFold(f, name) || strings.EqualFold(f, name+"s") || fieldNames[s.key] == f {
				m[s.key] = i
			}
		}
	}
	return m
})

func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case fs.FileMode:
		return fmt.Sprintf("%#o", uint32(x))
	case slog.Level:
		return strings.ToLower(x.String())
	case ActionRule:
		r := string(x.Identity) + "." + string(x.Result)
		if x.Cause != "" {
			r += "." + string(x.Cause)
		}
		for word, a := range actionWords {
			if a == x.Action {
				return r + "=" + word
			}
		}
		return r + "=" + string(x.Action)
	case milter.Relay:
		if x.By != "" {
			return x.Prefix.String() + "=" + x.By
		}
		return x.Prefix.String()
	}
	if v.Kind() == reflect.Slice {
		items := make([]string, v.Len())
		for i := range items {
			items[i] = formatValue(v.Index(i))
		}
		return strings.Join(items, ",")
	}
	return fmt.Sprint(v.Interface())
}

// settingChange is a setting whose value differs between two configurations.
type settingChange struct {
	s        *setting
	old, new string
}

// changedSettings lists the settings whose values differ from old to c, in
// the table's order.
func changedSettings(old, c *Config) []settingChange {
	var out []settingChange
	for _, s := range settings {
		if o, n := settingValue(old, s), settingValue(c, s); o != n {
			out = append(out, settingChange{s: s, old: o, new: n})
		}
	}
	return out
}
