// Package testbin builds the spfmilter binary for tests that run it as a
// subprocess: once per test binary, removed by Cleanup.
package testbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds spfmilter from root (the module's root directory, relative to
// the test's package) the first time it is called, with the race detector
// when race is set, and returns the binary's path; a failed build fails t.
func Path(t testing.TB, root string, race bool) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "spfmilter-test-bin-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "spfmilter")
		args := []string{"build", "-o", build.path}
		if race {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", append(args, root)...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("building spfmilter: %v", build.err)
	}
	return build.path
}

// Main runs the tests and removes the binary Path built; a package's
// TestMain calls it.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}
