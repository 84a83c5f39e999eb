package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

func TestCoarseClock(t *testing.T) {
	var c coarseClock
	for range 3 {
		got, now := c.Now(), time.Now()
		if d := now.Sub(got); d < 0 || d > time.Second {
			t.Errorf("coarse clock %v behind the system clock (%v), want under a second", d, got)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if !c.running.Load() {
		t.Fatal("coarse clock not refreshing while read")
	}
	// Unread, it stops after coarseIdle ticks.
	for i := 0; c.running.Load(); i++ {
		if i == 100 {
			t.Fatal("coarse clock still refreshing 10 s after its last reader")
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, now := c.Now(), time.Now()
	if d := now.Sub(got); d < 0 || d > time.Second {
		t.Errorf("after a pause: coarse clock %v behind the system clock", d)
	}
	if !c.running.Load() {
		t.Error("a read did not restart the coarse clock")
	}
}

// TestExpiryRealClock is TestCacheHitAndExpiry on the system clock: an answer
// with TTL 1 s is asked for again once the second has passed.
func TestExpiryRealClock(t *testing.T) {
	s := spftest.NewServer(t, world())
	s.SetTTL(1)
	c := newClient(t, Options{Servers: []string{s.Addr()}})
	ctx := context.Background()
	c.LookupTXT(ctx, "example.com")
	c.LookupTXT(ctx, "example.com")
	if n := s.QueryCount(); n != 1 {
		t.Fatalf("%d queries for two lookups within the TTL, want 1", n)
	}
	time.Sleep(1100*time.Millisecond + 2*coarseTick)
	c.LookupTXT(ctx, "example.com")
	if n := s.QueryCount(); n != 2 {
		t.Errorf("%d queries after the TTL, want 2", n)
	}
}
