package spf

import (
	"strings"
	"sync"
)

// recordCacheSize bounds the parsed-record cache. A hot record is parsed once
// and then found by its text without allocating.
const recordCacheSize = 4096

// recordCache maps record text to its parsed form. Parsed records are
// immutable and shared between concurrent checks.
type recordCache struct {
	mu sync.RWMutex
	m  map[string]*record
}

var parsedRecords = &recordCache{m: make(map[string]*record)}

// get returns the parsed form of txt, parsing and remembering it on a miss.
func (c *recordCache) get(txt string) *record {
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
	c.mu.Lock()
	if len(c.m) >= recordCacheSize {
		// Evict an arbitrary eighth; map iteration order is random enough
		// to keep hot records on average.
		n := recordCacheSize / 8
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[txt] = r
	c.mu.Unlock()
	return r
}
