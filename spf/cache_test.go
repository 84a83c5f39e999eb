package spf

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Records up to MaxRecordLen bytes and MaxRecordTerms terms parse; one byte
// or one term more is a permerror, and costs neither a copy nor an entry.
func TestRecordLimits(t *testing.T) {
	pad := func(n int) string { // a record of exactly n bytes, one term
		return "v=spf1 -all" + strings.Repeat(" ", n-len("v=spf1 -all"))
	}
	terms := func(n int) string {
		return "v=spf1" + strings.Repeat(" ip4:192.0.2.1", n)
	}
	for _, tc := range []struct {
		txt  string
		want error // nil: parses
	}{
		{pad(MaxRecordLen), nil},
		{pad(MaxRecordLen + 1), tooLong.err},
		{terms(MaxRecordTerms), nil},
		{terms(MaxRecordTerms + 1), tooManyTerms.err},
		{"v=spf1" + strings.Repeat(" a", MaxRecordTerms+1), tooManyTerms.err},
	} {
		r := parseRecord(tc.txt)
		if !errors.Is(r.err, tc.want) && (tc.want != nil || r.err != nil) {
			t.Errorf("%d bytes, %d spaces: err %v, want %v", len(tc.txt), strings.Count(tc.txt, " "), r.err, tc.want)
		}
	}
	// A syntax error before the limit is still reported as such.
	if r := parseRecord("v=spf1 bogus" + strings.Repeat(" a", MaxRecordTerms)); r.err == nil || !strings.Contains(r.err.Error(), "bogus") {
		t.Errorf("syntax error before the term limit: %v", r.err)
	}
	c := NewRecordCache(1 << 20)
	long := pad(MaxRecordLen + 1000)
	if n := testing.AllocsPerRun(10, func() { c.get(long) }); n != 0 || c.Bytes() != 0 {
		t.Errorf("oversize record: %v allocations, %d bytes cached; want none", n, c.Bytes())
	}
}

// The record cache holds at most its budget in bytes; the count is the sum
// of its entries.
func TestRecordCacheBytes(t *testing.T) {
	const budget = 256 << 10
	c := NewRecordCache(budget)
	for i := range 200 {
		txt := "v=spf1" + strings.Repeat(" ip4:192.0.2.1", 400) + " ip4:10.0.0." + strconv.Itoa(i%256) + " -all" + strings.Repeat(" ", i)
		if r := c.get(txt); r.err != nil {
			t.Fatal(r.err)
		}
		if c.Bytes() > budget {
			t.Fatalf("after %d records: %d bytes, budget %d", i+1, c.Bytes(), budget)
		}
	}
	var sum int64
	for k, r := range c.m {
		sum += recordSize(k, r)
	}
	if sum != c.Bytes() || c.Evictions() == 0 || len(c.m) == 0 {
		t.Errorf("%d entries of %d bytes, count says %d; %d evictions", len(c.m), sum, c.Bytes(), c.Evictions())
	}
	// A parsed record of 400 terms is tens of KB: the estimate must see it.
	r := c.get("v=spf1" + strings.Repeat(" ip4:192.0.2.1", 400))
	if size := recordSize("", r); size < 400*40 {
		t.Errorf("400 terms estimated at %d bytes", size)
	}
	if NewRecordCache(0).get("v=spf1 -all") == nil {
		t.Error("a cache without budget still parses")
	}
}
