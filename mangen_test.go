package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spfmilter/spfmilter/internal/config"
)

// The manual pages spfmilter(8) and spfmilter.yaml(5) are generated from the
// settings table, like the README's reference, so that neither can drift
// from the code (TestManPages compares them with the committed pages under
// deploy/package/man; -update rewrites them). They are plain man(7) roff,
// read by man-db's groff and by mandoc alike.

// manDir is where the committed pages live, relative to the module root.
const manDir = "deploy/package/man"

// packagedConfig is the configuration file the packages install and the
// pages name.
const packagedConfig = "/etc/spfmilter/spfmilter.yaml"

// manPages returns the pages by file name.
func manPages() map[string]string {
	return map[string]string{
		"spfmilter.8":      manProgram(),
		"spfmilter.yaml.5": manConfig(),
	}
}

// manCommandFlag is a flag of one of the commands other than the settings.
type manCommandFlag struct{ name, arg, usage string }

// manCommand is one command of the synopsis, with its own flags.
type manCmd struct {
	name, synopsis, what string
	flags                []manCommandFlag
}

// manCommands are the commands and their own flags; the settings are listed
// from the table. TestManPagesCoverCommands checks this list against the
// commands' --help.
var manCommands = []manCmd{
	{
		name: "serve", synopsis: "[`serve`] [`--config` _FILE_] [_settings_]",
		what: "Runs the milter until SIGTERM or SIGINT, when it stops accepting connections and lets the sessions in flight finish for `shutdown_timeout`. SIGHUP re-reads the configuration file. `serve` is the default command.",
		flags: []manCommandFlag{
			{"config", "FILE", "Read the settings from this YAML file (see spfmilter.yaml(5)); flags override it."},
			{"config.check", "", "Check the configuration and exit with status 0, or 2 and one line naming the bad key or flag."},
		},
	},
	{
		name: "check", synopsis: "`check` `--ip` _IP_ `--sender` _ADDR_ `--helo` _NAME_ [`--message` _FILE_] [`--json`] [`--trace`] [`--config` _FILE_] [_settings_]",
		what: "Evaluates one SMTP client once, with the same settings as the daemon, and prints the HELO and MAIL FROM verdicts, the action and SMTP reply the daemon would give to MAIL FROM, and the header fields it would add. The exit status is 0 whatever the SPF results. It accepts `--config`, `--config.check` and every setting too.",
		flags: []manCommandFlag{
			{"ip", "IP", "The SMTP client's address (required)."},
			{"sender", "ADDR", "The MAIL FROM address; empty is the null sender, checked as postmaster@HELO (RFC 7208 §2.4)."},
			{"helo", "NAME", "The HELO or EHLO name; when empty or not a domain, the HELO identity is not checked."},
			{"message", "FILE", "A stored message (`-` for standard input): with `dkim_rescue` on, a MAIL FROM result that is to be rejected is decided as at the end of the message, from its DKIM signatures, and the signatures and the rescue are printed."},
			{"json", "", "Print one JSON object instead of text."},
			{"trace", "", "Include the step-by-step evaluation: each check_host() call, the record it fetched and the term that matched."},
		},
	},
	{
		name: "healthcheck", synopsis: "`healthcheck` [`--url` _URL_] [`--timeout` _DURATION_]",
		what: "Asks the daemon's `/-/healthy` endpoint and exits 0 when it answers 200, else 1; for container health checks.",
		flags: []manCommandFlag{
			{"url", "URL", "The URL to ask (default `" + defaultHealthURL + "`)."},
			{"timeout", "DURATION", "Give up after this long (default 5s)."},
		},
	},
	{
		name: "lint", synopsis: "`lint` _DOMAIN_ [`--resolver` _HOST:PORT_] [`--json`] [`--no-mail` _NAME_] [`--record` _TEXT_]",
		what: "Walks DOMAIN's SPF record and every record it includes or redirects to, as receivers evaluate them for a client that matches no term (the worst case of the RFC 7208 §4.6.4 limits, with void lookups counted for IPv4 and IPv6 clients apart), runs the engine for one IPv4 and one IPv6 client the records do not list, and prints each finding with its severity (error, warning, info), a stable identifier, the path of terms that leads to it and one line of advice. The exit status is 1 when there is an error, 0 otherwise.",
		flags: []manCommandFlag{
			{"resolver", "HOST:PORT", "The DNS server to ask; repeat for several (default the nameservers of /etc/resolv.conf)."},
			{"dns-timeout", "DURATION", "Wait at most this long for one DNS query to one server (default 2s)."},
			{"json", "", "Print one JSON object instead of text."},
			{"no-mail", "NAME", "A name that never sends mail: it should publish `v=spf1 -all`. Repeat for several."},
			{"record", "TEXT", "Check TEXT as DOMAIN's record in place of the published one, before publishing it."},
		},
	},
	{
		name: "flatten", synopsis: "`flatten` _DOMAIN_ [`--resolver` _HOST:PORT_] [`--max-lookups` _N_] [`--expand-a`] [`--expand-mx`] [`--chunk-name` _FORMAT_]",
		what: "Rewrites DOMAIN's SPF record tree as `ip4` and `ip6` ranges that give every address the result the tree gives it now, merged into the fewest CIDR prefixes, and prints the records to publish as zone-file lines, with the smallest TTL met and the warnings as comments. Terms that cannot be flattened (`exists`, `ptr`, macros) are kept as written. A flattened record goes stale when the providers behind the includes change their ranges. The exit status is 1 when the tree cannot be flattened.",
		flags: []manCommandFlag{
			{"resolver", "HOST:PORT", "The DNS server to ask; repeat for several (default the nameservers of /etc/resolv.conf)."},
			{"dns-timeout", "DURATION", "Wait at most this long for one DNS query to one server (default 2s)."},
			{"max-lookups", "N", "Allow the new record at most N DNS-causing terms, kept terms and chunk includes together (default 10)."},
			{"expand-a", "", "Replace the domain's own `a` mechanisms by their addresses."},
			{"expand-mx", "", "Replace the domain's own `mx` mechanisms by their addresses."},
			{"chunk-name", "FORMAT", "Name the records the passing ranges move to when they do not fit in one 255-byte string: a format with one %d for their number, from 1 (default `_spf%d.DOMAIN`)."},
		},
	},
	{name: "version", synopsis: "`version`", what: "Prints the version, the VCS revision and the Go version."},
	{name: "help", synopsis: "`help` [_COMMAND_]", what: "Prints the usage; `help` _COMMAND_, like _COMMAND_ `--help`, prints a command's flags on standard output and exits 0. Flags take two dashes everywhere."},
}

func manProgram() string {
	var b strings.Builder
	manHeader(&b, "SPFMILTER", "8", "System Manager's Manual")
	b.WriteString(".SH NAME\nspfmilter \\- SPF (RFC 7208) milter for Postfix and Sendmail\n")
	b.WriteString(".SH SYNOPSIS\n")
	for i, c := range manCommands {
		if i > 0 {
			b.WriteString(".br\n")
		}
		fmt.Fprintf(&b, ".B spfmilter\n%s\n", manText(c.synopsis))
	}
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(manText("`spfmilter` checks the HELO and MAIL FROM identities of every incoming SMTP transaction against the client's address with SPF (RFC 7208), through the milter protocol of Postfix and Sendmail. It records the verdicts in a `Received-SPF` field (RFC 7208 §9.1) and an `Authentication-Results` field (RFC 8601), after removing forged `Authentication-Results` fields that carry its own authserv-id, and, when configured to, rejects (5xx) the results chosen with `reject` and `reject_helo`, or defers (4xx) on DNS failures, at MAIL FROM.") + "\n")
	b.WriteString(".PP\n")
	b.WriteString(manText("Every setting is a key of the configuration file, described in spfmilter.yaml(5), and a flag of the same name with `-` for `_`; flags override the file.") + "\n")
	b.WriteString(".SH COMMANDS\n")
	for _, c := range manCommands {
		fmt.Fprintf(&b, ".SS %s\n%s\n", c.name, manText(c.what))
		for _, f := range c.flags {
			manFlag(&b, f.name, f.arg, f.usage)
		}
	}
	b.WriteString(".SH SETTINGS\n")
	b.WriteString(manText("Each setting's flag; spfmilter.yaml(5) says more about each, with its default. List settings take a comma-separated list and may be repeated.") + "\n")
	for _, s := range config.Settings() {
		manFlag(&b, s.Flag, s.Arg, s.Usage+" Default: "+manDefault(s)+".")
	}
	b.WriteString(".SH SIGNALS\n")
	var restart []string
	for _, s := range config.Settings() {
		if !s.Reloadable {
			restart = append(restart, "`"+s.Key+"`")
		}
	}
	manTagged(&b, "SIGHUP", "Re-read the configuration file and re-apply the original flags; a bad file keeps the running configuration. These settings need a restart: "+strings.Join(restart, ", ")+".")
	manTagged(&b, "SIGTERM, SIGINT", "Stop accepting connections, finish the sessions in flight for at most `shutdown_timeout`, and exit.")
	b.WriteString(".SH EXIT STATUS\n")
	manTagged(&b, "0", "Success; for `check`, whatever the SPF results.")
	manTagged(&b, "1", "A failure while running; every failure of `healthcheck`; for `lint`, a finding of severity error; for `flatten`, a tree that cannot be flattened.")
	manTagged(&b, "2", "Bad arguments or configuration.")
	b.WriteString(".SH FILES\n")
	manTagged(&b, packagedConfig, "The configuration file the packaged service reads.")
	manTagged(&b, "/lib/systemd/system/spfmilter.service", "The systemd unit: `systemctl reload spfmilter` sends SIGHUP.")
	b.WriteString(".SH EXAMPLES\n")
	b.WriteString(manText("Check the configuration, then ask what the daemon would say about a client:") + "\n")
	manExample(&b, "spfmilter --config "+packagedConfig+" --config.check\nspfmilter check --config "+packagedConfig+" --ip 192.0.2.10 --sender alice@example.org --helo mail.example.org")
	b.WriteString(".PP\n" + manText("In Postfix's main.cf, for the packaged configuration's socket (a chrooted smtpd(8) sees the path relative to /var/spool/postfix):") + "\n")
	manExample(&b, "smtpd_milters = unix:/spfmilter/spfmilter.sock\nmilter_default_action = tempfail\nmilter_command_timeout = 30s")
	b.WriteString(".SH SEE ALSO\n.BR spfmilter.yaml (5),\n.BR postconf (5),\n.BR smtpd (8)\n")
	return b.String()
}

func manConfig() string {
	var b strings.Builder
	manHeader(&b, "SPFMILTER.YAML", "5", "File Formats Manual")
	b.WriteString(".SH NAME\nspfmilter.yaml \\- configuration of the spfmilter SPF milter\n")
	b.WriteString(".SH SYNOPSIS\n" + manText(packagedConfig) + "\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(manText("The file given to spfmilter(8) with `--config` is one YAML mapping of settings. Every setting is also a flag of the same name with `-` for `_`; flags override the file. Unknown keys are refused, so that a misspelt key never silently keeps a default. List settings take a YAML list or a comma-separated string. Words from a fixed set (results, modes, log levels and formats, `true` and `false`, the `inet:` and `unix:` prefixes) may be written in any case. A file with no settings at all (empty, or only comments) is refused, since it is far more often a file cut short than a wish for the defaults; write `{}` to run on the defaults. `spfmilter --config FILE --config.check` validates the file and exits with status 0, or 2 and one line naming the bad key.") + "\n")
	b.WriteString(".PP\n")
	b.WriteString(manText("SIGHUP (`systemctl reload spfmilter`) re-reads the file and re-applies the original flags; a file that does not load keeps the running configuration, logs one line naming the problem and counts a failure in the metric `spfmilter_config_reloads_total`. Replace the file in one step: write the new version to a temporary file in the same directory, check it with `--config.check`, and rename it over the old one. Settings marked \"restart\" below keep their value until the daemon restarts.") + "\n")
	b.WriteString(".SH SETTINGS\n")
	for _, s := range config.Settings() {
		arg := ""
		if s.Arg != "" {
			arg = " " + manText("_"+s.Arg+"_")
		} else {
			arg = " " + manText("`true`|`false`")
		}
		fmt.Fprintf(&b, ".TP\n%s:%s\n", manText("`"+s.Key+"`"), arg)
		b.WriteString(manText(s.Usage) + "\n")
		reload := "yes"
		if !s.Reloadable {
			reload = "restart"
		}
		fmt.Fprintf(&b, ".br\n%s\n", manText("Default: "+manDefault(s)+". Flag: `--"+s.Flag+"`. SIGHUP: "+reload+"."))
	}
	b.WriteString(".SH EXAMPLES\n")
	b.WriteString(manText("Headers only, on a unix socket that a chrooted Postfix reaches as `unix:/spfmilter/spfmilter.sock`, then rejecting `fail` once the logs look right:") + "\n")
	manExample(&b, "listen: unix:/var/spool/postfix/spfmilter/spfmilter.sock\nlisten_mode: \"0660\"\nreject: []\n# reject: [fail]\ntrusted_networks:\n  - 127.0.0.0/8\n  - ::1/128")
	b.WriteString(".SH FILES\n")
	manTagged(&b, packagedConfig, "The file the packaged service reads.")
	b.WriteString(".SH SEE ALSO\n.BR spfmilter (8)\n")
	return b.String()
}

func manHeader(b *strings.Builder, title, section, manual string) {
	// No date: the pages are generated from the code, and a date would
	// change with every regeneration without saying anything.
	fmt.Fprintf(b, ".\\\" Generated from spfmilter's settings table; do not edit.\n")
	fmt.Fprintf(b, ".TH %s %s \"\" \"spfmilter\" %q\n", title, section, manual)
}

// manFlag writes one flag as a tagged paragraph.
func manFlag(b *strings.Builder, name, arg, usage string) {
	tag := "`--" + name + "`"
	if arg != "" {
		tag += " _" + arg + "_"
	}
	fmt.Fprintf(b, ".TP\n%s\n%s\n", manText(tag), manText(usage))
}

func manTagged(b *strings.Builder, tag, text string) {
	fmt.Fprintf(b, ".TP\n%s\n%s\n", manText("`"+tag+"`"), manText(text))
}

func manExample(b *strings.Builder, text string) {
	b.WriteString(".PP\n.RS\n.nf\n")
	for line := range strings.SplitSeq(text, "\n") {
		b.WriteString(manEscape(line, true) + "\n")
	}
	b.WriteString(".fi\n.RE\n")
}

// manDefault is a setting's default as the pages print it.
func manDefault(s config.Setting) string {
	switch {
	case s.DefaultDoc != "":
		return s.DefaultDoc
	case s.Default == "":
		return "empty"
	}
	return "`" + s.Default + "`"
}

// manText turns the README's inline markup into roff: `code` is bold,
// _arg_ italic (only when the underscores enclose a placeholder in capitals
// or a word, as in the synopsis), and everything else is escaped.
func manText(s string) string {
	var b strings.Builder
	code := false
	for i, part := range strings.Split(s, "`") {
		if i > 0 {
			code = !code
		}
		if code {
			b.WriteString(`\fB` + manEscape(part, true) + `\fR`)
			continue
		}
		b.WriteString(manItalic(part))
	}
	out := b.String()
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	return out
}

// manPlaceholder is _ARG_ in text: a placeholder, set in italics.
var manPlaceholder = regexp.MustCompile(`(^|[ \[(])_([^ _]+)_`)

// manItalic escapes s and sets the placeholders in italics.
func manItalic(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range manPlaceholder.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(manEscape(s[last:m[3]], false))
		b.WriteString(`\fI` + manEscape(s[m[4]:m[5]], false) + `\fR`)
		last = m[1]
	}
	b.WriteString(manEscape(s[last:], false))
	return b.String()
}

// manEscape makes s safe as roff text. In code (flags, keys, commands) a
// hyphen is a minus sign, so that it can be typed and searched for;
// characters beyond ASCII become \[uXXXX].
func manEscape(s string, code bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-' && code:
			b.WriteString(`\-`)
		case r > 0x7e:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	return out
}
