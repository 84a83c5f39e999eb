package e2e

import (
	"testing"
	"time"

	"github.com/emersion/go-milter"
)

// milterSession opens a milter session to addr as an MTA would, asking to
// add and change headers. done closes it; call it before the milter is told
// to stop, which waits for open sessions.
func milterSession(t *testing.T, addr string) (s *milter.ClientSession, done func()) {
	t.Helper()
	client := milter.NewClientWithOptions("tcp", addr, milter.ClientOptions{
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		ActionMask:   milter.OptAddHeader | milter.OptChangeHeader,
	})
	s, err := client.Session()
	if err != nil {
		client.Close()
		t.Fatalf("milter session: %v", err)
	}
	return s, func() { s.Close(); client.Close() }
}
