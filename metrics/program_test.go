package metrics_test

import (
	"os"
	"os/exec"
	"testing"
)

// needProgram returns the path of an external program, skipping the test when
// it is not installed — or failing it when CI=true, where every program the
// tests use must be present.
func needProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required when CI=true: %v", name, err)
	}
	t.Skipf("%s not installed (apt-get install prometheus): %v", name, err)
	return ""
}
