package resolver

import (
	"sync/atomic"
	"time"
)

// coarseTick is how often the coarse clock is refreshed, and so about how
// long past its TTL an answer may still be served.
const coarseTick = 100 * time.Millisecond

// coarseIdle is how many ticks without a reader stop the refreshing.
const coarseIdle = 10

// coarse is a clock for cache expiry that is cheap to read: reading the
// system clock costs more than a whole cache hit on some virtual machines. A
// goroutine refreshes it while it is being read and stops after a second
// without readers; a read while it is stopped takes the system time and
// starts it again.
var coarse coarseClock

type coarseClock struct {
	now     atomic.Int64 // Unix nanoseconds
	running atomic.Bool
	touched atomic.Bool
}

func coarseNow() time.Time { return coarse.Now() }

func (c *coarseClock) Now() time.Time {
	if !c.touched.Load() {
		c.touched.Store(true)
	}
	if c.running.Load() {
		return time.Unix(0, c.now.Load())
	}
	t := time.Now()
	c.now.Store(t.UnixNano())
	if c.running.CompareAndSwap(false, true) {
		go c.run()
	}
	return t
}

func (c *coarseClock) run() {
	tick := time.NewTicker(coarseTick)
	defer tick.Stop()
	idle := 0
	for range tick.C {
		c.now.Store(time.Now().UnixNano())
		if c.touched.Swap(false) {
			idle = 0
			continue
		}
		if idle++; idle < coarseIdle {
			continue
		}
		c.running.Store(false)
		// A reader may have come between the last check and the store
		// above, and seen the clock running: keep it so.
		if !c.touched.Load() || !c.running.CompareAndSwap(false, true) {
			return
		}
		idle = 0
	}
}
