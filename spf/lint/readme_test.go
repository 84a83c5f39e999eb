package lint

import (
	"os"
	"strings"
	"testing"
)

// The README's table of findings names every identifier with its severity.
func TestReadmeListsFindings(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // identifier -> severity column
	for line := range strings.Lines(string(data)) {
		cols := strings.Split(line, "|")
		if len(cols) < 5 || !strings.HasPrefix(strings.TrimSpace(cols[1]), "`") {
			continue
		}
		for id := range strings.SplitSeq(cols[1], ",") {
			rows[strings.Trim(strings.TrimSpace(id), "`")] = strings.TrimSpace(cols[2])
		}
	}
	for id, c := range checks {
		sev, ok := rows[id]
		if !ok {
			t.Errorf("README.md does not list finding %s", id)
			continue
		}
		if sev != string(c.severity) {
			t.Errorf("README.md gives %s severity %q, the code %q", id, sev, c.severity)
		}
	}
}
