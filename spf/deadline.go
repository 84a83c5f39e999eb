package spf

import (
	"context"
	"sync"
	"time"
)

// checkContext carries the overall deadline of one check (RFC 7208 §4.6.4
// note). Unlike context.WithDeadline it starts no timer until someone asks
// for Done: a check answered from caches never needs one, and a timer costs
// more than the whole warm check. Err compares the clock directly.
type checkContext struct {
	context.Context // the caller's context
	deadline        time.Time

	mu         sync.Mutex
	done       chan struct{}
	err        error
	timer      *time.Timer
	stopParent func() bool
}

func newCheckContext(parent context.Context, deadline time.Time) *checkContext {
	if d, ok := parent.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return &checkContext{Context: parent, deadline: deadline}
}

func (c *checkContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *checkContext) Err() error {
	if err := c.Context.Err(); err != nil {
		c.closeWith(err)
		return err
	}
	// time.Until reads only the monotonic clock (deadline carries a
	// monotonic reading), which is much cheaper than time.Now.
	if time.Until(c.deadline) <= 0 {
		c.closeWith(context.DeadlineExceeded)
		return context.DeadlineExceeded
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	return err
}

func (c *checkContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err != nil {
		close(c.done)
		return c.done
	}
	if err := c.Context.Err(); err != nil {
		c.err = err
		close(c.done)
		return c.done
	}
	d := time.Until(c.deadline)
	if d <= 0 {
		c.err = context.DeadlineExceeded
		close(c.done)
		return c.done
	}
	c.timer = time.AfterFunc(d, func() { c.closeWith(context.DeadlineExceeded) })
	if c.Context.Done() != nil {
		c.stopParent = context.AfterFunc(c.Context, func() { c.closeWith(c.Context.Err()) })
	}
	return c.done
}

// closeWith ends the context with err unless it has already ended.
func (c *checkContext) closeWith(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
}

// release ends the context when the check returns, like a CancelFunc.
func (c *checkContext) release() {
	c.closeWith(context.Canceled)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}
