package resolver

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCacheSecondChance(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache(3)
	put := func(name string) int {
		return c.put(&entry{key: key{name: name, qtype: 16}, txt: []string{name}, expires: now.Add(time.Hour)})
	}
	has := func(name string) bool { return c.get(key{name: name, qtype: 16}, now) != nil }
	put("a")
	put("b")
	put("c")
	has("a") // used: survives the next sweep once
	if n := put("d"); n != 1 {
		t.Fatalf("put d evicted %d, want 1", n)
	}
	if !has("a") || has("b") || !has("c") || !has("d") {
		t.Errorf("after d: a %v b %v c %v d %v; want b evicted", has("a"), has("b"), has("c"), has("d"))
	}
	// Every entry used: the sweep clears the marks and evicts the oldest.
	if n := put("e"); n != 1 || c.len() != 3 {
		t.Errorf("put e evicted %d, len %d; want 1 and 3", n, c.len())
	}
	if c.evicted() != 2 {
		t.Errorf("evicted() = %d, want 2", c.evicted())
	}
	// Replacing a key is not an eviction.
	if n := put("e"); n != 0 || c.len() != 3 {
		t.Errorf("replacing e evicted %d, len %d", n, c.len())
	}
	// Expired entries are not returned.
	if c.get(key{name: "e", qtype: 16}, now.Add(2*time.Hour)) != nil {
		t.Error("expired entry returned")
	}
}

func TestCacheConcurrent(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache(16)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				name := fmt.Sprintf("n%d", (i*7+g)%64)
				k := key{name: name, qtype: 16}
				if e := c.get(k, now); e != nil {
					if e.key != k || e.txt[0] != name {
						t.Errorf("get(%s) returned the entry of %v", name, e.key)
						return
					}
					continue
				}
				c.put(&entry{key: k, txt: []string{name}, expires: now.Add(time.Hour)})
			}
		})
	}
	wg.Wait()
	if n := c.len(); n != 16 {
		t.Errorf("len = %d, want the bound 16", n)
	}
	// The list and the map agree.
	seen := 0
	for e := c.list.next; e != &c.list; e = e.next {
		if c.m[e.key] != e {
			t.Fatalf("list entry %v not in the map", e.key)
		}
		if seen++; seen > 16 {
			t.Fatal("list longer than the map")
		}
	}
	if seen != 16 {
		t.Errorf("list has %d entries, map 16", seen)
	}
}
