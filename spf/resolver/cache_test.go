package resolver

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCacheSecondChance(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache(3, 1<<30)
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
	// Replacing a key is not an eviction.
	if n := put("e"); n != 0 || c.len() != 3 {
		t.Errorf("replacing e evicted %d, len %d", n, c.len())
	}
	// Expired entries are not returned.
	if c.get(key{name: "e", qtype: 16}, now.Add(2*time.Hour)) != nil {
		t.Error("expired entry returned")
	}
}

// The cache holds at most its budget in bytes whatever the answers' sizes,
// and never an answer larger than the whole budget.
func TestCacheBytes(t *testing.T) {
	now := time.Unix(1000, 0)
	const budget = 1 << 20
	c := newCache(1000, budget)
	big := strings.Repeat("x", 60000)
	evicted := 0
	for i := range 100 {
		e := &entry{key: key{name: fmt.Sprintf("n%d.example", i), qtype: 16}, txt: []string{big + strconv.Itoa(i)}, expires: now.Add(time.Hour)}
		evicted += c.put(e)
		if b := c.bytes.Load(); b > budget {
			t.Fatalf("after %d answers of 60 KB: %d bytes held, budget %d", i+1, b, budget)
		}
	}
	if n := c.len(); n < 15 || n > 17 || evicted != 100-n {
		t.Errorf("%d answers held, %d evicted; want about 16 (1 MiB of 60 KB answers) and the rest evicted", n, evicted)
	}
	if c.get(key{name: "n99.example", qtype: 16}, now) == nil {
		t.Error("newest answer not held")
	}
	// Small answers are counted too: the sum of the entries is the total.
	var sum int64
	for e := c.list.next; e != &c.list; e = e.next {
		sum += e.size
	}
	if sum != c.bytes.Load() {
		t.Errorf("entries hold %d bytes, total says %d", sum, c.bytes.Load())
	}
	huge := &entry{key: key{name: "huge.example", qtype: 16}, txt: []string{strings.Repeat("y", budget)}, expires: now.Add(time.Hour)}
	if c.put(huge); c.get(huge.key, now) != nil {
		t.Error("answer larger than the budget cached")
	}
}

func TestCacheConcurrent(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache(16, 1<<30)
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
