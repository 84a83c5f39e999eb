package main

import (
	"fmt"
	"strings"
)

// configReference is the README's configuration reference, generated from
// the settings table so that the two cannot drift apart
// (TestREADMEConfigReference checks; -update rewrites it).
func configReference() string {
	var b strings.Builder
	b.WriteString("Every setting is a key of the YAML file given with `--config FILE` and a flag of\n")
	b.WriteString("the same name (`_` becomes `-`); flags override the file, and unknown keys are\n")
	b.WriteString("refused. List settings take a YAML list or a comma-separated string; their flags\n")
	b.WriteString("may be repeated. `spfmilter --config.check` validates the configuration and exits\n")
	b.WriteString("with status 0, or 2 and one line naming the bad key.\n\n")
	b.WriteString("SIGHUP re-reads the file (and re-applies the original flags); a bad file keeps the\n")
	b.WriteString("running configuration. Settings marked \"no\" under SIGHUP keep their value until a\n")
	b.WriteString("restart.\n\n")
	b.WriteString("| Key | Flag | Default | SIGHUP | Meaning |\n")
	b.WriteString("|-----|------|---------|--------|---------|\n")
	for _, s := range settings {
		flag := "`--" + s.flag()
		if s.arg != "" {
			flag += " " + s.arg
		}
		flag += "`"
		def := s.defDoc
		switch {
		case def != "":
		case s.def == "":
			def = "`\"\"`"
		default:
			def = "`" + s.def + "`"
		}
		reload := "no"
		if s.reload {
			reload = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.key, flag, def, reload, strings.ReplaceAll(s.usage, "|", `\|`))
	}
	return b.String()
}
