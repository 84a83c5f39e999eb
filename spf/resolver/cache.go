package resolver

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
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
	size       int64  // bytes held, from entrySize
}

// mapEntryOverhead approximates what one entry costs the map besides the key
// and the pointer: bucket slots, tophash, growth slack.
const mapEntryOverhead = 64

// errSize is what an NXDOMAIN error held by an entry costs: the wrapping
// error values and their message.
const errSize = 160

// entrySize estimates the memory an entry holds: the entry, its map slot,
// its name and its records. The caller's parsed message is not kept.
func entrySize(e *entry) int64 {
	n := int64(unsafe.Sizeof(*e)) + mapEntryOverhead + int64(len(e.key.name))
	n += int64(cap(e.txt)) * int64(unsafe.Sizeof(""))
	for _, t := range e.txt {
		n += int64(len(t))
	}
	n += int64(cap(e.addrs)) * int64(unsafe.Sizeof(netip.Addr{}))
	n += int64(cap(e.names)) * int64(unsafe.Sizeof(""))
	for _, h := range e.names {
		n += int64(len(h))
	}
	if e.err != nil {
		n += errSize + 2*int64(len(e.key.name))
	}
	return n
}

// cache is a cache of answers bounded in entries and in bytes: answers are
// chosen by whoever controls a zone, up to 64 KB each, so a bound in entries
// alone is no bound. Eviction gives a second chance to entries used since
// they were last considered (CLOCK), which approximates
// least-recently-used without writing shared state on every hit. Expired
// entries are replaced by the next answer for their key or evicted.
type cache struct {
	mu       sync.RWMutex
	max      int
	maxBytes int64
	m        map[key]*entry
	list     entry // sentinel: list.next is the most recently used
	bytes    atomic.Int64
}

func newCache(max int, maxBytes int64) *cache {
	c := &cache{max: max, maxBytes: maxBytes, m: make(map[key]*entry, min(max, 1024))}
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
// entries were evicted to make room. An answer larger than the whole budget
// is not stored.
func (c *cache) put(e *entry) int {
	e.size = entrySize(e)
	if e.size > c.maxBytes {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[e.key]; old != nil {
		c.remove(old)
	}
	c.m[e.key] = e
	c.bytes.Add(e.size)
	c.pushFront(e)
	n := 0
	// The sweep passes over the new entry and over used ones (clearing the
	// mark): each at most once before an unused old entry is found, so it
	// ends within 2×len+2 steps.
	for len(c.m) > c.max || c.bytes.Load() > c.maxBytes {
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
	return n
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

func (c *cache) remove(e *entry) {
	c.unlink(e)
	delete(c.m, e.key)
	c.bytes.Add(-e.size)
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
