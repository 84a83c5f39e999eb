package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// TestExpirySystemClock: without Options.Now an answer expires by the system
// clock, its TTL after it arrived (TestCacheHitAndExpiry covers the rest of
// expiry on a test clock).
func TestExpirySystemClock(t *testing.T) {
	s := spftest.NewServer(t, world())
	s.SetTTL(60)
	c := newClient(t, Options{Servers: []string{s.Addr()}})
	before := time.Now()
	if _, err := c.LookupTXT(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	e := c.cache.get(key{name: "example.com", qtype: 16}, after)
	if e == nil {
		t.Fatal("answer not cached")
	}
	if e.expires.Before(before.Add(time.Minute)) || e.expires.After(after.Add(time.Minute)) {
		t.Errorf("expires %v, want 60 s after the lookup (between %v and %v)", e.expires, before.Add(time.Minute), after.Add(time.Minute))
	}
}
