package resolver

import (
	"net/netip"
	"sync"
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

	prev, next *entry // LRU list, most recent after the sentinel
}

// cache is a bounded LRU of answers. Expired entries are dropped when met.
type cache struct {
	mu        sync.Mutex
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
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		c.remove(e)
		return nil
	}
	c.unlink(e)
	c.pushFront(e)
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
	for len(c.m) > c.max {
		c.remove(c.list.prev)
		n++
	}
	c.evictions += uint64(n)
	return n
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func (c *cache) evicted() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
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
