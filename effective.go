package main

import (
	"cmp"
	"path/filepath"
	"strings"

	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

// The effective settings in the log: every setting's value at start, and the
// ones a reload changed (config.Config.Value, config.Changed).

// restartNeeded lists the keys that differ between old and c but are fixed
// for the life of the process.
func restartNeeded(old, c *config.Config) []string {
	var keys []string
	for _, ch := range config.Changed(old, c) {
		if !ch.Reloadable {
			keys = append(keys, ch.Key)
		}
	}
	return keys
}

// configAttrs are the log attributes of c's effective settings: the config
// file, then every setting. Where an empty value means "look it up", the
// value looked up is shown: the servers asked and the host name.
func configAttrs(file string, c *config.Config, servers []string) []any {
	attrs := []any{"config", configPath(file)}
	host := cmp.Or(localHostName(), "unknown")
	for _, s := range config.Settings() {
		v := c.Value(s.Key)
		if v == "" {
			switch s.Key {
			case "resolver":
				v = strings.Join(servers, ",") + " (from " + resolver.DefaultResolvConf + ")"
			case "receiver":
				v = host + " (the host name)"
			case "authserv_id":
				v = "(the MTA's j macro, else " + host + ")"
			}
		}
		attrs = append(attrs, s.Key, v)
	}
	return attrs
}

// changeAttrs are the log attributes of a reload: the config file, how many
// settings changed and, for each, "OLD → NEW".
func changeAttrs(file string, changes []config.Change) []any {
	attrs := []any{"config", configPath(file), "changed", len(changes)}
	for _, ch := range changes {
		attrs = append(attrs, ch.Key, quoteEmpty(ch.Old)+" → "+quoteEmpty(ch.New))
	}
	return attrs
}

func quoteEmpty(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// configPath is the config file for the log: its absolute path, or "(none)".
func configPath(file string) string {
	if file == "" {
		return "(none)"
	}
	if abs, err := filepath.Abs(file); err == nil {
		return abs
	}
	return file
}
