// Package config holds spfmilter's settings: the table of every setting
// with its default, how a value is read from the YAML file and the flags,
// and the effective values for the log.
//
// A Source is a parsed command line; Source.Load builds a Config from the
// defaults, then the config file, then the flags, and is called again on a
// reload.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
)

// Config is the daemon's whole configuration, after defaults, the config file
// and the command-line flags have been applied, in that order.
type Config struct {
	Listen            Listen
	ListenMode        fs.FileMode
	HTTPListen        string // "" disables the HTTP listener
	Resolvers         []string
	DNSTimeout        time.Duration
	CacheSize         int
	CacheMaxBytes     int64
	CheckTimeout      time.Duration
	AuthservID        string // "" means the MTA's j macro, then the host name
	Receiver          string // "" means the host name
	HideReceiver      bool
	TrustedNetworks   []netip.Prefix
	SkipAuthenticated bool
	Reject            []spf.Result
	RejectHELO        []spf.Result
	DeferTemperror    bool
	DKIMRescue        milter.Rescue
	DKIMMaxBytes      int64
	Actions           []ActionRule
	NeverReject       []string
	ForwarderDomains  []string
	AllowHELO         []string
	TrustedRelays     []milter.Relay
	// Shadow is the candidate policy: the shadow.* settings given, applied
	// over this configuration's own policy settings (ShadowConfig). nil:
	// no shadow policy.
	Shadow          []shadowSetting
	DryRun          bool
	RejectText      string
	IdleTimeout     time.Duration
	PacketTimeout   time.Duration
	SessionTimeout  time.Duration
	MaxConnections  int
	MaxProcs        int
	ShutdownTimeout time.Duration
	LogFormat       string
	LogLevel        slog.Level
}

// Listen is a Postfix-style milter address: inet:HOST:PORT or unix:PATH.
type Listen struct {
	Network string // "tcp" or "unix"
	Address string
}

func (l Listen) String() string {
	if l.Network == "unix" {
		return "unix:" + l.Address
	}
	return "inet:" + l.Address
}

// setting is one configuration setting. The YAML key is key; the flag is the
// same name with '-' for '_'. Every default lives in this table, in flag
// syntax, and the README's reference is generated from it.
type setting struct {
	key string
	def string
	// defDoc is how the default reads in the docs when def alone would
	// mislead (an empty def that means "look it up").
	defDoc string
	arg    string // placeholder in usage; "" for booleans
	usage  string
	// list settings take a YAML sequence or a comma-separated string; their
	// flag may be repeated.
	list   bool
	reload bool // takes effect on SIGHUP
	// shadow marks the shadow.* settings: unset by default.
	shadow bool
	set    func(c *Config, vals []string) error
}

func (s *setting) flag() string { return strings.ReplaceAll(s.key, "_", "-") }

func (s *setting) boolean() bool { return s.arg == "" }

// Setting describes one setting, for --help, the generated README
// reference and manual pages, and the log.
type Setting struct {
	Key        string // YAML key
	Flag       string // flag name, without dashes: Key with '-' for '_'
	Default    string // in flag syntax
	DefaultDoc string // how the default reads in the docs, when Default alone would mislead
	Arg        string // placeholder in usage; "" for booleans
	Usage      string // Markdown
	List       bool   // takes a list; the flag may be repeated
	Reloadable bool   // takes effect on SIGHUP
}

func (s *setting) export() Setting {
	return Setting{
		Key: s.key, Flag: s.flag(), Default: s.def, DefaultDoc: s.defDoc, Arg: s.arg,
		Usage: s.usage, List: s.list, Reloadable: s.reload,
	}
}

// Settings lists every setting, in the table's order.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	for i, s := range settings {
		out[i] = s.export()
	}
	return out
}

// rejectable are the results --reject and --reject-helo accept. temperror
// has its own switch (defer_temperror) and pass is never rejected.
var rejectable = []spf.Result{spf.Fail, spf.Softfail, spf.Neutral, spf.None, spf.Permerror}

var settings = []*setting{
	{
		key: "listen", def: "inet:127.0.0.1:8895", arg: "ADDR",
		usage: "Milter socket: `inet:HOST:PORT` or `unix:PATH` (a stale socket file is removed at start); Sendmail's `inet:PORT@HOST`, `inet6:PORT@HOST` and `local:PATH` are taken too.",
		set: one(func(c *Config, v string) (err error) {
			c.Listen, err = parseListen(v)
			return err
		}),
	},
	{
		key: "listen_mode", def: "0660", arg: "MODE",
		usage: "Permissions (octal) of the unix socket.",
		set: one(func(c *Config, v string) error {
			m, err := strconv.ParseUint(strings.TrimPrefix(v, "0o"), 8, 32)
			if err != nil || m > 0o777 {
				return fmt.Errorf("bad mode %q (want octal permissions such as 0660)", v)
			}
			c.ListenMode = fs.FileMode(m)
			return nil
		}),
	},
	{
		key: "http_listen", def: "127.0.0.1:9466", arg: "HOST:PORT",
		usage: "Address of the HTTP server for `/metrics`, `/-/healthy` and `/-/ready`; empty disables it.",
		set: one(func(c *Config, v string) error {
			if v != "" {
				if err := checkHostPort(v); err != nil {
					return err
				}
			}
			c.HTTPListen = v
			return nil
		}),
	},
	{
		key: "resolver", def: "", defDoc: "the nameservers of /etc/resolv.conf", arg: "HOST:PORT",
		usage: "DNS server to ask (an IP address, port 53 when left out). Repeat the flag or give a list for several.",
		list:  true, reload: true,
		set: func(c *Config, vals []string) error {
			c.Resolvers = nil
			for _, v := range vals {
				a, err := ParseResolver(v)
				if err != nil {
					return err
				}
				c.Resolvers = append(c.Resolvers, a)
			}
			return nil
		},
	},
	{
		key: "dns_timeout", def: "2s", arg: "DURATION",
		usage: "Timeout of one DNS query to one server (each server is tried twice).", reload: true,
		set: duration(func(c *Config) *time.Duration { return &c.DNSTimeout }, false),
	},
	{
		key: "cache_size", def: "10000", arg: "N",
		usage: "Number of DNS answers kept in the cache; 0 disables it.", reload: true,
		set: count(func(c *Config) *int { return &c.CacheSize }),
	},
	{
		key: "cache_max_bytes", def: "32MiB", arg: "SIZE",
		usage: "Memory the caches may hold, whatever the answers' sizes: three quarters for DNS answers, a quarter for parsed SPF records. Bytes, or a number with `KiB`, `MiB` or `GiB`; at least `1MiB`.", reload: true,
		set: one(func(c *Config, v string) error {
			n, err := parseSize(v)
			if err != nil {
				return err
			}
			if n < minCacheBytes {
				return fmt.Errorf("size %q too small (want at least 1MiB)", v)
			}
			c.CacheMaxBytes = n
			return nil
		}),
	},
	{
		key: "check_timeout", def: "20s", arg: "DURATION",
		usage: "Deadline of the SPF checks of one MAIL command, HELO and MAIL FROM together (RFC 7208 §4.6.4 asks for at least 20 seconds); running out gives temperror. The MTA's milter timeout must be longer.", reload: true,
		set: duration(func(c *Config) *time.Duration { return &c.CheckTimeout }, false),
	},
	{
		key: "authserv_id", def: "", defDoc: "the MTA's `j` macro, else the host name", arg: "NAME",
		usage: "authserv-id of Authentication-Results (RFC 8601 §2.5); such fields arriving from outside are removed.", reload: true,
		set: one(func(c *Config, v string) error {
			if v != "" && !headers.ValidAuthservID(v) {
				return fmt.Errorf("bad authserv-id %q (want a domain name or another RFC 2045 token)", v)
			}
			c.AuthservID = v
			return nil
		}),
	},
	{
		key: "receiver", def: "", defDoc: "the host name", arg: "NAME",
		usage: "This host's name, for `%{r}` in SPF macros (RFC 7208 §7.3) and Received-SPF's `receiver=` (which is otherwise the authserv-id).", reload: true,
		set: one(func(c *Config, v string) error {
			if err := checkToken(v); err != nil {
				return err
			}
			c.Receiver = v
			return nil
		}),
	},
	{
		key: "hide_receiver", def: "false",
		usage: "Leave `receiver=` out of Received-SPF.", reload: true,
		set: boolean(func(c *Config) *bool { return &c.HideReceiver }),
	},
	{
		key: "trusted_networks", def: "127.0.0.0/8,::1/128", arg: "CIDR,…",
		usage: "Clients in these networks are not checked; an empty value trusts nothing.",
		list:  true, reload: true,
		set: func(c *Config, vals []string) error {
			c.TrustedNetworks = []netip.Prefix{}
			for _, v := range vals {
				p, err := parsePrefix(v)
				if err != nil {
					return err
				}
				c.TrustedNetworks = append(c.TrustedNetworks, p)
			}
			return nil
		},
	},
	{
		key: "skip_authenticated", def: "true",
		usage: "Do not check clients that authenticated with SMTP AUTH.", reload: true,
		set: boolean(func(c *Config) *bool { return &c.SkipAuthenticated }),
	},
	{
		key: "reject", def: "", defDoc: "empty (reject nothing)", arg: "RESULT,…",
		usage: "MAIL FROM results to reject, from `fail`, `softfail`, `neutral`, `none`, `permerror`.",
		list:  true, reload: true,
		set: results(func(c *Config) *[]spf.Result { return &c.Reject }),
	},
	{
		key: "reject_helo", def: "", defDoc: "empty (reject nothing)", arg: "RESULT,…",
		usage: "HELO results to reject, from the same set.",
		list:  true, reload: true,
		set: results(func(c *Config) *[]spf.Result { return &c.RejectHELO }),
	},
	{
		key: "defer_temperror", def: "false",
		usage: "Answer a MAIL FROM temperror with a temporary failure (4xx); the same for HELO when `reject_helo` is set.", reload: true,
		set: boolean(func(c *Config) *bool { return &c.DeferTemperror }),
	},
	{
		key: "dkim_rescue", def: "off", arg: "MODE",
		usage: "`off`, `mailfrom` or `from`. With `mailfrom`, a message whose MAIL FROM result is to be rejected (`reject`) is accepted at MAIL FROM and decided at end of message: rejected with the same reply unless a valid DKIM signature's `d=` is aligned with the MAIL FROM domain (same organizational domain, RFC 7489 §3.1.1), as forwarded mail usually has; `from` also accepts alignment with the From header's domain. A key lookup that fails temporarily defers the message under `defer_temperror`.", reload: true,
		set: one(func(c *Config, v string) error {
			switch m := milter.Rescue(strings.ToLower(v)); m {
			case milter.RescueOff, milter.RescueMailFrom, milter.RescueFrom:
				c.DKIMRescue = m
				return nil
			}
			return fmt.Errorf("unknown mode %q (want off, mailfrom or from)", v)
		}),
	},
	{
		key: "dkim_max_bytes", def: "1MiB", arg: "SIZE",
		usage: "Largest message (header and body) whose DKIM signatures are verified for `dkim_rescue`; a larger one is not rescued. At most 5 signatures are verified per message. Bytes, or a number with `KiB`, `MiB` or `GiB`; at least `64KiB`.", reload: true,
		set: one(func(c *Config, v string) error {
			n, err := parseSize(v)
			if err != nil {
				return err
			}
			if n < minDKIMBytes {
				return fmt.Errorf("size %q too small (want at least 64KiB)", v)
			}
			c.DKIMMaxBytes = n
			return nil
		}),
	},
	{
		key: "actions", def: "", defDoc: "empty", arg: "IDENTITY.RESULT[.CAUSE]=ACTION,…",
		usage: "Action per identity (`helo`, `mailfrom`) and result, over `reject`, `reject_helo` and `defer_temperror`: `reject`, `defer` (4xx), `quarantine` (held by the MTA: Postfix's hold queue, Sendmail's quarantine) or `mark` (headers only). A permerror can be narrowed by its cause: `syntax`, `lookup_limit`, `void_lookup_limit`, `no_record`, `loop`, `multiple_records` (e.g. `mailfrom.permerror.lookup_limit=mark`). temperror takes `defer`, `quarantine` or `mark`; pass takes nothing.",
		list:  true, reload: true,
		set: func(c *Config, vals []string) error {
			c.Actions = []ActionRule{}
			for _, v := range vals {
				r, err := parseActionRule(v)
				if err != nil {
					return err
				}
				c.Actions = append(c.Actions, r)
			}
			return nil
		},
	},
	{
		key: "never_reject_recipients", def: "postmaster@", arg: "ADDRESS,…",
		usage: "Recipients a reject or defer never applies to: `user@domain`, `@domain` (all of it) or `local@` (that local-part at every domain; `postmaster@` by default, RFC 5321 §4.5.1). While the policy can reject or defer, the refusal moves from MAIL FROM to RCPT TO: other recipients get the reply, these get the message, marked. An empty value keeps refusals at MAIL FROM and the MTA skips RCPT TO for the milter.",
		list:  true, reload: true,
		set: func(c *Config, vals []string) error {
			c.NeverReject = []string{}
			for _, v := range vals {
				r, err := parseRecipientPattern(v)
				if err != nil {
					return err
				}
				if !slices.Contains(c.NeverReject, r) {
					c.NeverReject = append(c.NeverReject, r)
				}
			}
			return nil
		},
	},
	{
		key: "forwarder_domains", def: "", defDoc: "empty", arg: "DOMAIN,…",
		usage: "Forwarding services whose mail is never refused nor held: a client is exempt when it passes SPF for one of these domains (their own published outbound hosts), checked only when the policy would act and with the same resolver, cache, limits and deadline. A sender or HELO that merely names one exempts nobody.",
		list:  true, reload: true,
		set: domains(func(c *Config) *[]string { return &c.ForwarderDomains }),
	},
	{
		key: "allow_helo", def: "", defDoc: "empty", arg: "NAME,…",
		usage: "HELO names whose mail is never refused nor held, when the HELO identity passes SPF (a name alone exempts nobody).",
		list:  true, reload: true,
		set: domains(func(c *Config) *[]string { return &c.AllowHELO }),
	},
	{
		key: "trusted_relays", def: "", defDoc: "empty", arg: "CIDR[=NAME],…",
		usage: "Backup MXs and gateways: for a client in these networks, SPF is checked at end of message for the host in the topmost Received field whose `by` is the relay (NAME, else its HELO or host name) and whose `from` has a bracketed address, HELO from the same field; Received-SPF names both (`x-relay=`). Without such a field the relay itself is checked and the message is only marked (`reason=\"relay_no_received\"`).",
		list:  true, reload: true,
		set: func(c *Config, vals []string) error {
			c.TrustedRelays = []milter.Relay{}
			for _, v := range vals {
				cidr, name, named := strings.Cut(v, "=")
				p, err := parsePrefix(strings.TrimSpace(cidr))
				if err != nil {
					return fmt.Errorf("bad relay %q (want CIDR or CIDR=NAME, e.g. 192.0.2.5/32=backup-mx.example.com)", v)
				}
				r := milter.Relay{Prefix: p}
				if named {
					d, ok := spf.NormalizeDomain(name)
					if !ok {
						return fmt.Errorf("bad relay name in %q (want a fully qualified domain name)", v)
					}
					r.By = d
				}
				c.TrustedRelays = append(c.TrustedRelays, r)
			}
			return nil
		},
	},
	{
		key: "dry_run", def: "false",
		usage: "Add the headers and log the verdicts, but never reject nor defer.", reload: true,
		set: boolean(func(c *Config) *bool { return &c.DryRun }),
	},
	{
		key: "reject_text", def: milter.DefaultRejectText, arg: "TEXT",
		usage: "Reply text when mail is refused, with placeholders `{result}`, `{identity}`, `{domain}`, `{sender}`, `{ip}`, `{helo}` and `{explanation}` (the record's explanation, else the problem).", reload: true,
		set: one(func(c *Config, v string) error {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("bad text %q (line breaks are not allowed)", v)
			}
			c.RejectText = v
			return nil
		}),
	},
	{
		key: "idle_timeout", def: "10m", arg: "DURATION",
		usage: "Close a milter connection idle this long; 0 never does. Keep it above the MTA's own SMTP timeout.",
		set:   duration(func(c *Config) *time.Duration { return &c.IdleTimeout }, true),
	},
	{
		key: "packet_timeout", def: "30s", arg: "DURATION",
		usage: "Close a milter connection when a packet, once started, is not complete this long after; 0 never does. A peer that trickles bytes cannot extend it.",
		set:   duration(func(c *Config) *time.Duration { return &c.PacketTimeout }, true),
	},
	{
		key: "session_timeout", def: "1h", arg: "DURATION",
		usage: "Close a milter connection this long after it opened, busy or not; 0 never does. The MTA applies its milter default action to a message cut short.",
		set:   duration(func(c *Config) *time.Duration { return &c.SessionTimeout }, true),
	},
	{
		key: "max_connections", def: "1000", arg: "N",
		usage: "Cap on concurrent milter connections; 0 is unlimited.",
		set:   count(func(c *Config) *int { return &c.MaxConnections }),
	},
	{
		key: "max_procs", def: "1", arg: "N",
		usage: "CPUs the milter's own code may use at once (Go's GOMAXPROCS); 0 is Go's default: the `GOMAXPROCS` environment variable, else the CPUs the process may use. A milter mostly waits for the MTA and DNS: on one CPU it wakes fewer threads per message, and used up to 30% less CPU per transaction than on two in the load runs (bench/README.md), while one CPU still served over 6,000 transactions a second with a connection per message, and over 14,000 with ten messages per connection. Raise it when the milter's CPU use nears one core: two served 18,000 to 21,600 transactions a second with ten messages per connection.", reload: true,
		set: count(func(c *Config) *int { return &c.MaxProcs }),
	},
	{
		key: "shutdown_timeout", def: "30s", arg: "DURATION",
		usage: "On SIGTERM, how long in-flight sessions may take to finish.", reload: true,
		set: duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, false),
	},
	{
		key: "log_format", def: "text", arg: "FORMAT",
		usage: "`text` or `json`.",
		set: one(func(c *Config, v string) error {
			f := strings.ToLower(v)
			if f != "text" && f != "json" {
				return fmt.Errorf("unknown format %q (want text or json)", v)
			}
			c.LogFormat = f
			return nil
		}),
	},
	{
		key: "log_level", def: "info", arg: "LEVEL",
		usage: "`debug`, `info`, `warn` or `error`.", reload: true,
		set: one(func(c *Config, v string) error {
			switch l := strings.ToLower(v); l {
			case "debug", "info", "warn", "error":
				return c.LogLevel.UnmarshalText([]byte(l))
			}
			return fmt.Errorf("unknown level %q (want debug, info, warn or error)", v)
		}),
	},
}

// shadowKeys are the policy settings a shadow policy can change.
var shadowKeys = []string{"reject", "reject_helo", "defer_temperror", "actions", "forwarder_domains", "allow_helo"}

// shadowPrefix begins the key of each shadow setting; in the YAML file
// they may also be written as a mapping under "shadow".
const shadowPrefix = "shadow."

// shadowSetting is one shadow.* setting as given.
type shadowSetting struct {
	s    *setting // the live setting it shadows
	vals []string
}

// The shadow.* settings are made from the live ones: the same values,
// checked the same way, kept aside until the configuration is complete.
func init() {
	for _, key := range shadowKeys {
		live := settingByKey(key)
		sh := *live
		sh.key = shadowPrefix + key
		sh.def, sh.defDoc = "", "unset"
		sh.usage = "Shadow policy: like `" + key + "` (the live value when unset), for a candidate policy evaluated beside the live one and never applied; each message on which they differ is logged and counted."
		sh.shadow = true
		sh.set = func(c *Config, vals []string) error {
			if err := live.set(&Config{}, vals); err != nil {
				return err
			}
			c.Shadow = slices.DeleteFunc(c.Shadow, func(o shadowSetting) bool { return o.s == live })
			c.Shadow = append(c.Shadow, shadowSetting{live, slices.Clone(vals)})
			return nil
		}
		settings = append(settings, &sh)
	}
}

// ShadowConfig is the shadow policy's configuration: c with the shadow
// settings applied over its own; nil when there is none.
func ShadowConfig(c *Config) *Config {
	if c.Shadow == nil {
		return nil
	}
	sc := *c
	sc.Shadow = nil
	for _, o := range c.Shadow {
		if err := o.s.set(&sc, o.vals); err != nil {
			panic("shadow." + o.s.key + ": " + err.Error()) // checked when it was set
		}
	}
	return &sc
}

func settingByKey(key string) *setting {
	for _, s := range settings {
		if s.key == key {
			return s
		}
	}
	return nil
}

// Defaults returns the configuration every setting's default gives.
func Defaults() *Config {
	c := &Config{}
	for _, s := range settings {
		if s.shadow {
			continue
		}
		if err := s.set(c, splitDefault(s)); err != nil {
			panic(fmt.Sprintf("default of %s: %v", s.key, err)) // a broken table, caught by the tests
		}
	}
	return c
}

func splitDefault(s *setting) []string {
	if s.list {
		return SplitList(s.def)
	}
	return []string{s.def}
}

// SplitList splits a comma-separated list, dropping empty items, so that ""
// is the empty list.
func SplitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func one(f func(c *Config, v string) error) func(*Config, []string) error {
	return func(c *Config, vals []string) error {
		if len(vals) != 1 {
			return errors.New("want a single value")
		}
		return f(c, vals[0])
	}
}

func boolean(field func(*Config) *bool) func(*Config, []string) error {
	return one(func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			return fmt.Errorf("bad boolean %q (want true or false)", v)
		}
		*field(c) = b
		return nil
	})
}

func duration(field func(*Config) *time.Duration, zeroOK bool) func(*Config, []string) error {
	return one(func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return fmt.Errorf("bad duration %q (want e.g. 500ms, 20s, 5m)", v)
		case d < 0 || d == 0 && !zeroOK:
			return fmt.Errorf("bad duration %q (must be positive)", v)
		}
		*field(c) = d
		return nil
	})
}

func count(field func(*Config) *int) func(*Config, []string) error {
	return one(func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("bad number %q (want an integer ≥ 0)", v)
		}
		*field(c) = n
		return nil
	})
}

func results(field func(*Config) *[]spf.Result) func(*Config, []string) error {
	return func(c *Config, vals []string) error {
		rs := []spf.Result{}
		for _, v := range vals {
			r := spf.Result(strings.ToLower(v))
			if !slices.Contains(rejectable, r) {
				return fmt.Errorf("unknown result %q (want a subset of fail, softfail, neutral, none, permerror)", v)
			}
			if !slices.Contains(rs, r) {
				rs = append(rs, r)
			}
		}
		*field(c) = rs
		return nil
	}
}

// minCacheBytes is the smallest cache_max_bytes: a DNS answer may hold 64 KiB,
// and a cache should hold many.
const minCacheBytes = 1 << 20

// minDKIMBytes is the smallest dkim_max_bytes: below it, ordinary text
// mail would go unverified.
const minDKIMBytes = 64 << 10

// parseSize takes a number of bytes, optionally with a binary unit: 512KiB,
// 32MiB, 1GiB.
func parseSize(v string) (int64, error) {
	num, mult := v, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (want bytes, or a number with KiB, MiB or GiB, e.g. 32MiB)", v)
	}
	return n * mult, nil
}

// parseListen takes the milter socket in Postfix's syntax, inet:HOST:PORT or
// unix:PATH, or in Sendmail's (libmilter's), inet:PORT@HOST, inet6:PORT@HOST,
// local:PATH or unix:PATH, which administrators copy from sendmail.mc. The
// scheme is case-insensitive. An empty HOST in inet::PORT means every
// address; Sendmail's form must name its host.
func parseListen(v string) (Listen, error) {
	scheme, rest, _ := strings.Cut(v, ":")
	switch strings.ToLower(scheme) {
	case "unix", "local":
		if rest == "" {
			return Listen{}, fmt.Errorf("empty socket path in %q (want unix:PATH)", v)
		}
		return Listen{Network: "unix", Address: rest}, nil
	case "inet", "inet6":
		addr, problem := inetAddr(strings.ToLower(scheme), rest)
		if problem != "" {
			return Listen{}, fmt.Errorf("bad address %q (%s)", v, problem)
		}
		return Listen{Network: "tcp", Address: addr}, nil
	}
	return Listen{}, fmt.Errorf("unsupported scheme %q (want inet:HOST:PORT or unix:PATH)", v)
}

// inetAddr turns what follows inet: or inet6: into HOST:PORT, or says what
// is wrong with it.
func inetAddr(scheme, rest string) (addr, problem string) {
	port, host, sendmail := strings.Cut(rest, "@")
	switch {
	case sendmail && host == "":
		return "", "want " + scheme + ":PORT@HOST, e.g. inet:8895@127.0.0.1"
	case sendmail:
		// Sendmail writes an IPv6 host bare: inet6:8895@::1.
		addr = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port)
	case scheme == "inet6":
		return "", "want inet6:PORT@HOST, e.g. inet6:8895@::1"
	default:
		addr = rest
	}
	if p := hostPortProblem(addr); p != "" {
		if !sendmail {
			p = "want inet:HOST:PORT, e.g. inet:127.0.0.1:8895, or inet::PORT for every address"
		}
		return "", p
	}
	return addr, ""
}

// checkHostPort accepts HOST:PORT with a numeric port; HOST may be empty (all
// addresses) and IPv6 addresses are bracketed.
func checkHostPort(v string) error {
	if p := hostPortProblem(v); p != "" {
		return fmt.Errorf("bad address %q (%s)", v, p)
	}
	return nil
}

// hostPortProblem says what is wrong with a HOST:PORT, or returns "".
func hostPortProblem(v string) string {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "want HOST:PORT"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || n > 65535 {
		return "bad port " + strconv.Quote(port)
	}
	return ""
}

// ParseResolver takes IP or IP:PORT ([IPv6]:PORT) and returns IP:PORT. A
// name is refused: the resolver would need a resolver.
func ParseResolver(v string) (string, error) {
	if a, err := netip.ParseAddr(v); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("bad resolver %q (want IP:PORT, e.g. 127.0.0.1:53 or [::1]:53)", v)
	}
	return ap.String(), nil
}

// parsePrefix takes a CIDR prefix or a single address.
func parsePrefix(v string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("bad network %q (want CIDR such as 192.0.2.0/24)", v)
}

func domains(field func(*Config) *[]string) func(*Config, []string) error {
	return func(c *Config, vals []string) error {
		ds := []string{}
		for _, v := range vals {
			d, ok := spf.NormalizeDomain(v)
			if !ok {
				return fmt.Errorf("bad domain %q (want a fully qualified domain name)", v)
			}
			if !slices.Contains(ds, d) {
				ds = append(ds, d)
			}
		}
		*field(c) = ds
		return nil
	}
}

// parseRecipientPattern takes user@domain, @domain or local@, and returns it
// lower-case with angle brackets and a domain's trailing dot removed.
func parseRecipientPattern(v string) (string, error) {
	p := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "<"), ">"))
	p = strings.TrimSuffix(p, ".")
	at := strings.LastIndexByte(p, '@')
	if at < 0 || p == "@" || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`<>,;"\`, r) }) ||
		strings.Contains(p[at+1:], "..") || strings.HasPrefix(p[at+1:], ".") {
		return "", fmt.Errorf("bad recipient %q (want user@domain, @domain or local@)", v)
	}
	return p, nil
}

// checkToken refuses what cannot go into a header as a name: spaces,
// controls and the separators of Authentication-Results.
func checkToken(v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`;()"\`, r) }) {
		return fmt.Errorf("bad name %q (no spaces, controls or ;()\"\\)", v)
	}
	return nil
}

// ActionRule is one entry of the actions setting.
type ActionRule struct {
	Identity spf.Identity
	Result   spf.Result
	Cause    spf.Cause // only with permerror; "" for every permerror
	Action   milter.Action
}

// actionWords are the actions setting's words for the milter's actions.
var actionWords = map[string]milter.Action{
	"reject":     milter.ActionReject,
	"defer":      milter.ActionTempfail,
	"quarantine": milter.ActionQuarantine,
	"mark":       milter.ActionAccept,
}

// parseActionRule reads IDENTITY.RESULT[.CAUSE]=ACTION.
func parseActionRule(v string) (ActionRule, error) {
	bad := func(why string) (ActionRule, error) {
		return ActionRule{}, fmt.Errorf("bad action %q (%s)", v, why)
	}
	lhs, word, ok := strings.Cut(strings.ToLower(strings.TrimSpace(v)), "=")
	if !ok {
		return bad("want IDENTITY.RESULT[.CAUSE]=ACTION, e.g. mailfrom.fail=quarantine")
	}
	parts := strings.Split(strings.TrimSpace(lhs), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("want IDENTITY.RESULT[.CAUSE]=ACTION, e.g. mailfrom.fail=quarantine")
	}
	var r ActionRule
	switch id := spf.Identity(parts[0]); id {
	case spf.IdentityHELO, spf.IdentityMailFrom:
		r.Identity = id
	default:
		return bad("identity must be helo or mailfrom")
	}
	r.Result = spf.Result(parts[1])
	switch {
	case r.Result == spf.Pass:
		return bad("pass is never acted on")
	case !slices.Contains(spf.Results(), r.Result):
		return bad("unknown result; want fail, softfail, neutral, none, temperror or permerror")
	}
	if len(parts) == 3 {
		r.Cause = spf.Cause(parts[2])
		switch {
		case r.Result != spf.Permerror:
			return bad("only permerror has causes")
		case !slices.Contains(spf.Causes(), r.Cause):
			return bad("unknown cause; want syntax, lookup_limit, void_lookup_limit, no_record, loop or multiple_records")
		}
	}
	a, ok := actionWords[strings.TrimSpace(word)]
	switch {
	case !ok:
		return bad("action must be reject, defer, quarantine or mark")
	case r.Result == spf.Temperror && a == milter.ActionReject:
		// RFC 7208 §8.6: a temperror is a transient failure.
		return bad("temperror takes defer, quarantine or mark")
	}
	r.Action = a
	return r, nil
}
