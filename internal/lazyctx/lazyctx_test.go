package lazyctx

import (
	"context"
	"errors"
	"testing"
	"time"
)

// armed says whether c was waited on and still holds a timer or a
// registration with its parent, or ended after a wait.
func armed(c *Context) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timer != nil || c.stopParent != nil || (c.done != nil && c.err == nil)
}

func waitDone(t *testing.T, d <-chan struct{}) {
	t.Helper()
	select {
	case <-d:
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed within 10 s")
	}
}

func TestErrWithoutArming(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	c, cancel := WithDeadline(parent, time.Now().Add(20*time.Millisecond))
	defer cancel()
	if err := c.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v", err)
	}
	if armed(c) {
		t.Fatal("Err armed the context")
	}
	for c.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline = %v, want DeadlineExceeded", c.Err())
	}
	if armed(c) {
		t.Fatal("a deadline seen by Err left something armed")
	}
	// Done, asked after the end, is closed at once.
	waitDone(t, c.Done())
}

func TestDoneClosesAtDeadline(t *testing.T) {
	c, cancel := WithDeadline(context.Background(), time.Now().Add(30*time.Millisecond))
	defer cancel()
	d := c.Done()
	if !armed(c) {
		t.Fatal("Done armed no timer")
	}
	waitDone(t, d)
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", c.Err())
	}
	if armed(c) {
		t.Fatal("the ended context still holds its timer")
	}
}

func TestParentCancel(t *testing.T) {
	for _, waited := range []bool{false, true} {
		parent, cancelParent := context.WithCancel(context.Background())
		c, cancel := WithDeadline(parent, time.Now().Add(time.Hour))
		var d <-chan struct{}
		if waited {
			d = c.Done()
		}
		cancelParent()
		if waited {
			waitDone(t, d)
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("waited %v: Err = %v after the parent's cancel, want Canceled", waited, c.Err())
		}
		waitDone(t, c.Done())
		cancel()
	}
}

// A Context under a Context, and a standard context under a Context: the
// end travels down, through AfterFunc, without a goroutine per link.
func TestNested(t *testing.T) {
	outer, cancelOuter := New(context.Background(), time.Time{}, nil)
	inner, cancelInner := WithDeadline(outer, time.Now().Add(time.Hour))
	defer cancelInner()
	std, cancelStd := context.WithCancel(inner)
	defer cancelStd()
	if d, ok := inner.Deadline(); !ok || d.IsZero() {
		t.Fatal("inner has no deadline")
	}
	if !armed(inner) || !armed(outer) {
		t.Fatal("context.WithCancel under a Context did not arm the chain")
	}
	cancelOuter()
	waitDone(t, std.Done())
	if !errors.Is(inner.Err(), context.Canceled) || !errors.Is(std.Err(), context.Canceled) {
		t.Fatalf("Err: inner %v, std %v; want Canceled", inner.Err(), std.Err())
	}
	if _, ok := outer.Deadline(); ok {
		t.Fatal("outer has a deadline")
	}
}

func TestOnWait(t *testing.T) {
	calls := 0
	var hookCancel func()
	c, cancel := New(context.Background(), time.Time{}, func(cancel func()) { calls++; hookCancel = cancel })
	defer cancel()
	c.Err()
	if calls != 0 {
		t.Fatal("Err ran the wait hook")
	}
	d := c.Done()
	c.Done()
	if calls != 1 {
		t.Fatalf("wait hook ran %d times, want 1", calls)
	}
	hookCancel()
	waitDone(t, d)
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err = %v after the hook's cancel", c.Err())
	}
}

func TestAfterFunc(t *testing.T) {
	c, cancel := New(context.Background(), time.Time{}, nil)
	ran := make(chan struct{})
	stopped := context.AfterFunc(c, func() { t.Error("a stopped AfterFunc ran") })
	context.AfterFunc(c, func() { close(ran) })
	if !stopped() {
		t.Fatal("stop before the end returned false")
	}
	cancel()
	waitDone(t, ran)
	// After the end, f runs at once and stop has nothing to stop.
	late := make(chan struct{})
	stop := context.AfterFunc(c, func() { close(late) })
	waitDone(t, late)
	if stop() {
		t.Fatal("stop after the end returned true")
	}
}

func TestValueAndDeadline(t *testing.T) {
	type key struct{}
	soon := time.Now().Add(time.Minute)
	parent, cancelParent := context.WithDeadline(context.WithValue(context.Background(), key{}, "v"), soon)
	defer cancelParent()
	c, cancel := WithDeadline(parent, soon.Add(time.Hour))
	defer cancel()
	if c.Value(key{}) != "v" {
		t.Fatal("Value is not the parent's")
	}
	if d, _ := c.Deadline(); !d.Equal(soon) {
		t.Fatalf("Deadline = %v, want the parent's earlier %v", d, soon)
	}
	c2, cancel2 := WithDeadline(parent, soon.Add(-time.Second))
	defer cancel2()
	if d, _ := c2.Deadline(); !d.Equal(soon.Add(-time.Second)) {
		t.Fatalf("Deadline = %v, want its own earlier one", d)
	}
}

// Concurrent waiters, Err callers and cancels (for the race detector).
func TestConcurrent(t *testing.T) {
	for range 50 {
		c, cancel := WithDeadline(context.Background(), time.Now().Add(time.Millisecond))
		done := make(chan struct{})
		for range 4 {
			go func() {
				c.Err()
				<-c.Done()
				done <- struct{}{}
			}()
		}
		go cancel()
		for range 4 {
			waitDone(t, done)
		}
		cancel()
	}
}
