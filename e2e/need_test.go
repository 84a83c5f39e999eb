package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// inCI reports whether the tests run under CI, where a missing external
// program is an error rather than a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// unavailable skips the test, or fails it under CI=true, because something it
// needs is missing.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("CI=true but "+format, args...)
	}
	t.Skipf(format, args...)
}

// needProgram returns the path of an external program, or skips (fails under
// CI=true) when it is not installed. The sbin directories are searched too:
// the MTAs live there and a test runner's PATH may leave them out.
func needProgram(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if q, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return q
		}
	}
	unavailable(t, "%s is not installed: %v", name, err)
	return ""
}

// needFile skips (fails under CI=true) when path does not exist.
func needFile(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		unavailable(t, "%s is not available: %v", what, err)
	}
}

// needRoot skips (fails under CI=true) unless the tests run as root, which
// the MTAs and the private namespaces require.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "the MTA tests must run as root (namespaces, port 53, MTA daemons)")
	}
}
