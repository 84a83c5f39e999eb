// Package lazyctx provides a context that arms nothing until somebody waits
// on it: its deadline starts no timer, and it registers with its parent and
// runs its wait hook, only when Done is first called. Until then Err answers
// from the clock and the parent.
//
// An SPF check answered from the resolver's cache never calls Done, so it
// costs no timer. That saves more than an allocation: a timer that is due
// before every other one wakes the runtime's network poller (an eventfd
// write and a thread switch), once for every check of every message.
//
// context.Cause of a Context reports its nearest ancestor from the standard
// library, not its own error; Err does.
package lazyctx

import (
	"context"
	"sync"
	"time"
)

// Context is a context.Context whose deadline and wait hook are armed by
// the first call to Done.
type Context struct {
	parent   context.Context
	deadline time.Time           // zero: only the parent's
	onWait   func(cancel func()) // nil: none

	mu         sync.Mutex
	done       chan struct{} // nil until Done is called
	err        error
	timer      *time.Timer
	stopParent func() bool
	afters     map[*after]struct{}
}

type after struct{ f func() }

// WithDeadline returns a context that ends at d (or when parent does), and
// its cancel function, which must be called once the work is over.
func WithDeadline(parent context.Context, d time.Time) (*Context, context.CancelFunc) {
	return New(parent, d, nil)
}

// New returns a context that ends at d (unless d is zero) or when parent
// does, and its cancel function. onWait, when not nil, is called once, with
// the context's cancel function, the first time somebody waits on the
// context (calls Done); it must not block, and must not call the context's
// methods.
func New(parent context.Context, d time.Time, onWait func(cancel func())) (*Context, context.CancelFunc) {
	c := &Context{parent: parent, deadline: d, onWait: onWait}
	return c, func() { c.cancel(context.Canceled) }
}

// Deadline is the earlier of the context's own deadline and its parent's.
func (c *Context) Deadline() (time.Time, bool) {
	pd, ok := c.parent.Deadline()
	if c.deadline.IsZero() {
		return pd, ok
	}
	if !ok || c.deadline.Before(pd) {
		return c.deadline, true
	}
	return pd, true
}

// Value is the parent's.
func (c *Context) Value(key any) any { return c.parent.Value(key) }

// Err reports why the context ended, nil while it has not: cancelled, past
// its deadline, or its parent ended. It arms nothing.
func (c *Context) Err() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.parent.Err(); err != nil {
		c.cancel(err)
		return c.Err()
	}
	if !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
		c.cancel(context.DeadlineExceeded)
		return c.Err()
	}
	return nil
}

// Done returns a channel closed when the context ends. The first call arms
// the deadline's timer, the registration with the parent and the wait hook.
func (c *Context) Done() <-chan struct{} {
	c.mu.Lock()
	if c.done != nil {
		d := c.done
		c.mu.Unlock()
		return d
	}
	c.done = make(chan struct{})
	d := c.done
	if c.err != nil {
		close(d)
		c.mu.Unlock()
		return d
	}
	c.mu.Unlock()

	// Armed outside the lock: the parent may be a Context too, and the
	// callbacks below take c's lock.
	if err := c.parent.Err(); err != nil {
		c.cancel(err)
		return d
	}
	if !c.deadline.IsZero() {
		wait := time.Until(c.deadline)
		if wait <= 0 {
			c.cancel(context.DeadlineExceeded)
			return d
		}
		t := time.AfterFunc(wait, func() { c.cancel(context.DeadlineExceeded) })
		if !c.keep(func() { c.timer = t }) {
			t.Stop()
			return d
		}
	}
	if c.parent.Done() != nil {
		stop := context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
		if !c.keep(func() { c.stopParent = stop }) {
			stop()
			return d
		}
	}
	if c.onWait != nil {
		c.onWait(func() { c.cancel(context.Canceled) })
	}
	return d
}

// keep runs set under the lock unless the context has ended meanwhile; it
// says whether it did.
func (c *Context) keep(set func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	set()
	return true
}

// AfterFunc arranges for f to run in its own goroutine once the context
// ends (see context.AfterFunc, which uses it, as context.WithCancel does for
// a child of a Context). It arms the context as Done does.
func (c *Context) AfterFunc(f func()) (stop func() bool) {
	c.Done()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &after{f: f}
	if c.afters == nil {
		c.afters = make(map[*after]struct{})
	}
	c.afters[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.afters[a]
		delete(c.afters, a)
		return ok
	}
}

// cancel ends the context with err unless it has ended already, and
// releases what Done armed.
func (c *Context) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	t, stop, afters := c.timer, c.stopParent, c.afters
	c.timer, c.stopParent, c.afters = nil, nil, nil
	c.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if stop != nil {
		stop()
	}
	for a := range afters {
		go a.f()
	}
}

// String names the context, as the standard library's do.
func (c *Context) String() string { return "lazyctx.Context" }
