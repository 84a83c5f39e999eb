package main

import (
	"fmt"
	"strings"

	"github.com/spfmilter/spfmilter/internal/config"
)

// configReference is the README's configuration reference, generated from
// the settings table so that the two cannot drift apart
// (TestREADMEConfigReference checks; -update rewrites it).
func configReference() string {
	var b strings.Builder
	b.WriteString("Every setting is a key of the YAML file given with `--config FILE` and a flag of\n")
	b.WriteString("the same name (`_` becomes `-`); flags override the file, and unknown keys are\n")
	b.WriteString("refused. List settings take a YAML list or a comma-separated string; their flags\n")
	b.WriteString("may be repeated. Words from a fixed set (results, modes, log levels and formats, `true`\n")
	b.WriteString("and `false`, the `inet:` and `unix:` prefixes) may be written in any case.\n")
	b.WriteString("`spfmilter --config.check` validates the configuration and exits with status 0, or\n")
	b.WriteString("2 and one line naming the bad key. A file with no settings at all (empty, or only\n")
	b.WriteString("comments) is refused: it is far more often a file cut short than a wish for the\n")
	b.WriteString("defaults, which reject nothing; write `{}` to run on the defaults.\n\n")
	b.WriteString("SIGHUP re-reads the file (and re-applies the original flags); a file that does not\n")
	b.WriteString("load keeps the running configuration, logs one line naming the problem and counts a\n")
	b.WriteString("failure in `spfmilter_config_reloads_total`. Settings marked \"no\" under SIGHUP keep\n")
	b.WriteString("their value until a restart.\n\n")
	b.WriteString("| Key | Flag | Default | SIGHUP | Meaning |\n")
	b.WriteString("|-----|------|---------|--------|---------|\n")
	for _, s := range config.Settings() {
		flag := "`--" + s.Flag
		if s.Arg != "" {
			flag += " " + s.Arg
		}
		flag += "`"
		def := s.DefaultDoc
		switch {
		case def != "":
		case s.Default == "":
			def = "`\"\"`"
		default:
			def = "`" + s.Default + "`"
		}
		reload := "no"
		if s.Reloadable {
			reload = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Key, flag, def, reload, strings.ReplaceAll(s.Usage, "|", `\|`))
	}
	return b.String()
}
