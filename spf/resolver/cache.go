package resolver

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// key identifies a cached answer: a name and type, or for PTR the address
// (so that a hit needs no reverse name built).
type key struct {
	name  string
	addr  netip.Addr
	qtype uint16
}

// entry is one cached answer, parsed. Only the field for its type is set.
// The slices are handed to callers as they are and never changed.
type entry struct {
	key   key
	txt   []string
	addrs []netip.Addr
	names []string
	// err is nil for data and for "no data", or the NXDOMAIN error (wrapping
	// spf.ErrNotFound), built once when the answer arrived.
	err     error
	expires time.Time

	// used is set by hits and cleared by the eviction sweep (the CLOCK
	// approximation of LRU): hits then need only a read lock.
	used       atomic.Bool
	prev, next *entry // list, newest after the sentinel; guarded by cache.mu
}

// cache is a bounded cache of answers. Eviction gives a second chance to
// entries used since they were last considered (CLOCK), which approximates
// least-recently-used without writing shared state on every hit. Expired
// entries are replaced by the next answer for their key or evicted.
type cache struct {
	mu        sync.RWMutex
	max       int
	m         map[key]*entry
	list      entry // sentinel: list.next is the most recently used
	evictions uint64
}

func newCache(max int) *cache {
	c := &cache{max: max, m: make(map[key]*entry, min(max, 1024))}
	c.list.next, c.list.prev = &c.list, &c.list
	return c
}

// get returns the live entry for k, or nil. It does not allocate.
func (c *cache) get(k key, now time.Time) *entry {
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	return e
}

// put stores e, replacing any entry for the same key, and returns how many
// entries were evicted to make room.
func (c *cache) put(e *entry) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[e.key]; old != nil {
		c.remove(old)
	}
	c.m[e.key] = e
	c.pushFront(e)
	n := 0
	// The sweep passes over the new entry and over used ones (clearing the
	// mark): each at most once before an unused old entry is found, so it
	// ends within max+2 steps.
	for len(c.m) > c.max {
		old := c.list.prev
		if old == e || old.used.Load() {
			old.used.Store(false)
			c.unlink(old)
			c.pushFront(old)
			continue
		}
		c.remove(old)
		n++
	}
	c.evictions += uint64(n)
	return n
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

func (c *cache) evicted() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.evictions
}

func (c *cache) remove(e *entry) {
	c.unlink(e)
	delete(c.m, e.key)
}

func (c *cache) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *cache) pushFront(e *entry) {
	e.prev, e.next = &c.list, c.list.next
	c.list.next.prev = e
	c.list.next = e
}
