package spf

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// DefaultRecordCacheBytes is the budget of the record cache of a Checker
// that has none of its own.
const DefaultRecordCacheBytes = 4 << 20

// RecordCache keeps parsed records by their text, so that a hot record is
// parsed once and then found without allocating. It is bounded in bytes: the
// text and the parsed form of every record are counted, so records chosen by
// an outsider cannot hold more than the budget. A record is at most
// MaxRecordLen bytes and MaxRecordTerms terms (about 60 KB parsed); larger
// ones are never parsed nor cached. Parsed records are immutable and shared
// between concurrent checks. A RecordCache is safe for concurrent use.
type RecordCache struct {
	max int64

	mu    sync.RWMutex
	m     map[string]*record
	bytes atomic.Int64

	evictions atomic.Uint64
}

// NewRecordCache returns a cache holding at most maxBytes of records; with
// maxBytes ≤ 0 it keeps nothing.
func NewRecordCache(maxBytes int64) *RecordCache {
	return &RecordCache{max: maxBytes, m: make(map[string]*record)}
}

// Bytes is the size of the records held, text and parsed form.
func (c *RecordCache) Bytes() int64 { return c.bytes.Load() }

// Evictions is the number of records dropped to make room.
func (c *RecordCache) Evictions() uint64 { return c.evictions.Load() }

// defaultRecords serves the Checkers without a RecordCache.
var defaultRecords = NewRecordCache(DefaultRecordCacheBytes)

// get returns the parsed form of txt, parsing and remembering it on a miss.
func (c *RecordCache) get(txt string) *record {
	if len(txt) > MaxRecordLen {
		return tooLong // no copy, no entry: as cheap as a small record
	}
	c.mu.RLock()
	r, ok := c.m[txt]
	c.mu.RUnlock()
	if ok {
		return r
	}
	// Clone: txt may share a larger resolver buffer, and the parsed terms
	// point into it.
	txt = strings.Clone(txt)
	r = parseRecord(txt)
	size := recordSize(txt, r)
	if size > c.max {
		return r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[txt]; ok {
		return old // parsed concurrently
	}
	// Evict arbitrary entries until the new one fits; map iteration order
	// is random enough to keep hot records on average.
	for k, old := range c.m {
		if c.bytes.Load()+size <= c.max {
			break
		}
		delete(c.m, k)
		c.bytes.Add(-recordSize(k, old))
		c.evictions.Add(1)
	}
	c.m[txt] = r
	c.bytes.Add(size)
	return r
}

// mapEntryOverhead approximates what one entry costs the map besides its
// key and value: bucket slots, tophash, growth slack.
const mapEntryOverhead = 48

// recordSize estimates the memory held by a cache entry for txt: the text,
// the record, its terms and their parsed domain-specs (whose literals are
// mostly slices of txt).
func recordSize(txt string, r *record) int64 {
	n := int64(len(txt)) + int64(unsafe.Sizeof(record{})) + mapEntryOverhead + 16
	n += int64(cap(r.terms)) * int64(unsafe.Sizeof(term{}))
	for i := range r.terms {
		if d := r.terms[i].domain; d != nil {
			n += macroSize(d) + int64(unsafe.Sizeof(*d))
		}
	}
	n += macroSize(&r.redirect) + macroSize(&r.exp)
	return n
}

func macroSize(m *macroString) int64 {
	n := int64(cap(m.parts))*int64(unsafe.Sizeof(macroPart{})) + int64(len(m.value))
	for _, p := range m.parts {
		n += int64(len(p.lit))
	}
	return n
}
