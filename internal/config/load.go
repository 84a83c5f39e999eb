package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// configError names the setting and where its bad value came from.
type configError struct {
	where string // `config key "listen"` or `flag --listen`
	err   error
}

func (e *configError) Error() string { return e.where + ": " + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// Source is a parsed command line: the config file it names and the setting
// flags it gave. It is kept so that a reload re-applies the same flags over
// the re-read file.
type Source struct {
	configFile  string
	configCheck bool
	flags       []*settingFlag
}

// settingFlag collects a setting's flag values. Values are checked only when
// applied, so that errors name the flag in one line of our own.
type settingFlag struct {
	s    *setting
	vals []string
	seen bool
}

func (f *settingFlag) String() string   { return "" }
func (f *settingFlag) IsBoolFlag() bool { return f.s.boolean() }

func (f *settingFlag) Set(v string) error {
	if f.s.list {
		// A repeated flag adds to the list; the first replaces the file's.
		f.vals = append(f.vals, SplitList(v)...)
	} else {
		f.vals = []string{v}
	}
	f.seen = true
	return nil
}

// AddFlags registers --config, --config.check and one flag per setting. The
// Source is filled in when fs is parsed.
func AddFlags(fs *flag.FlagSet) *Source {
	cl := &Source{}
	fs.StringVar(&cl.configFile, "config", "", "read settings from this YAML `FILE`; flags override it")
	fs.BoolVar(&cl.configCheck, "config.check", false, "check the configuration and exit (status 0 or 2)")
	for _, s := range settings {
		f := &settingFlag{s: s}
		cl.flags = append(cl.flags, f)
		fs.Var(f, s.flag(), usageLine(s))
	}
	return cl
}

func usageLine(s *setting) string {
	u := strings.ReplaceAll(s.usage, "`", "")
	d := s.def
	if s.defDoc != "" {
		d = strings.ReplaceAll(s.defDoc, "`", "")
	}
	return u + " (default " + d + ")"
}

// File is the config file the command line names, "" for none.
func (cl *Source) File() string { return cl.configFile }

// CheckOnly reports --config.check: check the configuration and exit.
func (cl *Source) CheckOnly() bool { return cl.configCheck }

// SettingFlag returns the setting a flag of AddFlags sets; ok is false for
// --config, --config.check and any other flag.
func SettingFlag(f *flag.Flag) (s Setting, ok bool) {
	sf, ok := f.Value.(*settingFlag)
	if !ok {
		return Setting{}, false
	}
	return sf.s.export(), true
}

// Load builds the configuration: defaults, then the config file, then the
// flags. It reads the file anew on every call.
func (cl *Source) Load() (*Config, error) {
	c := Defaults()
	if cl.configFile != "" {
		data, err := os.ReadFile(cl.configFile)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := applyYAML(c, cl.configFile, data); err != nil {
			return nil, err
		}
	}
	for _, f := range cl.flags {
		if !f.seen {
			continue
		}
		if err := f.s.set(c, f.vals); err != nil {
			return nil, &configError{where: "flag --" + f.s.flag(), err: err}
		}
	}
	return c, nil
}

// applyYAML applies a config file: one mapping of setting keys. Unknown keys
// are refused, with their name, so that a typo never silently keeps a
// default.
func applyYAML(c *Config, name string, data []byte) error {
	// The schema is the settings table; a struct built from it would repeat
	// every key, so the mapping is walked instead, which also gives each
	// error its key.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return errNoSettings(name)
		}
		return fmt.Errorf("config file %s: %v", name, oneLine(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: want a single YAML document", name)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return errNoSettings(name)
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: want a mapping of settings (key: value)", name)
	}
	return applyMapping(c, name, root, "", map[string]int{})
}

// applyMapping applies the settings of a mapping whose keys take prefix.
// The mapping under "shadow" holds the shadow.* settings without their
// prefix.
func applyMapping(c *Config, name string, m *yaml.Node, prefix string, seen map[string]int) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + k.Value
		where := fmt.Sprintf("config key %q (%s:%d)", key, name, k.Line)
		if prefix == "" && key+"." == shadowPrefix {
			if v.Kind != yaml.MappingNode {
				return &configError{where: where, err: errors.New("want a mapping of policy settings (reject: …, actions: …)")}
			}
			if err := applyMapping(c, name, v, shadowPrefix, seen); err != nil {
				return err
			}
			continue
		}
		s := settingByKey(key)
		if s == nil || (prefix != "" && !s.shadow) {
			return &configError{where: where, err: errors.New("unknown key")}
		}
		if line, dup := seen[key]; dup {
			return &configError{where: where, err: fmt.Errorf("already set on line %d", line)}
		}
		seen[key] = k.Line
		vals, err := nodeValues(s, v)
		if err == nil {
			err = s.set(c, vals)
		}
		if err != nil {
			return &configError{where: where, err: err}
		}
	}
	return nil
}

// errNoSettings refuses a config file that says nothing: empty, blank, only
// comments or a null document. Such a file is far more often one cut short
// by a non-atomic write, or emptied by mistake, than a wish for the defaults,
// and the defaults reject nothing and ask the resolvers of /etc/resolv.conf:
// loading it would weaken the policy without a word. It is refused at start
// as on SIGHUP, so that --config.check and a reload always agree. A file
// that wants every default says so with an empty mapping, {}.
func errNoSettings(name string) error {
	return fmt.Errorf("config file %s: no settings (the file is empty or only comments); write {} to run on the defaults", name)
}

// nodeValues turns a value node into the strings a setting parses: a
// scalar, or for list settings a sequence of scalars or a comma-separated
// scalar. A null value is the empty value.
func nodeValues(s *setting, v *yaml.Node) ([]string, error) {
	switch {
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		if s.list {
			return nil, nil
		}
		return []string{""}, nil
	case v.Kind == yaml.ScalarNode:
		if s.list {
			return SplitList(v.Value), nil
		}
		return []string{v.Value}, nil
	case v.Kind == yaml.SequenceNode && s.list:
		var out []string
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: want a list of plain values", item.Line)
			}
			out = append(out, item.Value)
		}
		return out, nil
	}
	if s.list {
		return nil, errors.New("want a value or a list of values")
	}
	return nil, errors.New("want a single value")
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
