package lint

import (
	"fmt"
	"strings"

	"github.com/spfmilter/spfmilter/spf"
)

// run is a stretch of flattenable rules between kept terms: its addresses
// by result, disjoint, so their order does not matter.
type run map[spf.Result]*addrSet

// item is one piece of the new record: a run or a kept term.
type item struct {
	run  run
	text string
	dns  int
}

// order of the results in a run, pass first for readability.
var results = []spf.Result{spf.Pass, spf.Fail, spf.Softfail, spf.Neutral}

// layout writes the rules as records: the domain's, and the chunks its
// passing ranges move to when they do not fit in one string.
func (f *flattener) layout(rules []rule, exp string) error {
	var items []item
	decided := &addrSet{}
	var all *rule
	for i := range rules {
		r := &rules[i]
		switch {
		case r.all:
			all = r
		case r.set == nil:
			items = append(items, item{text: r.text, dns: r.dns})
			continue
		default:
			if len(items) == 0 || items[len(items)-1].run == nil {
				items = append(items, item{run: run{}})
			}
			cur := items[len(items)-1].run
			add := minus(r.set, decided)
			if old := cur[r.q]; old != nil {
				add = union(old, add)
			}
			cur[r.q] = add
			decided = union(decided, r.set)
			continue
		}
		break
	}
	// Ranges of the last run that get the same result as the addresses
	// after it (the all, else the default neutral) need no term.
	last := spf.Neutral
	if all != nil {
		last = all.q
	}
	if n := len(items); n > 0 && items[n-1].run != nil {
		delete(items[n-1].run, last)
	}
	tail := ""
	if all != nil {
		tail = qualifier(all.q) + "all"
		if all.q == spf.Pass {
			tail = "+all"
		}
	}
	if exp != "" {
		tail = strings.TrimSpace(tail + " " + exp)
	}

	// mode 0 writes every range in the record; mode 1 moves the passing
	// ranges into chunks the record includes; mode 2 chains the chunks,
	// each including the next, when even the includes do not fit.
	build := func(mode int) (string, []Chunk, int) {
		var terms []string
		var chunks []Chunk
		lookups := 0
		for _, it := range items {
			if it.run == nil {
				terms = append(terms, it.text)
				lookups += it.dns
				continue
			}
			for _, q := range results {
				s := it.run[q]
				if s == nil || s.empty() {
					continue
				}
				ts := networkTerms(qualifier(q), s)
				if mode == 0 || q != spf.Pass {
					terms = append(terms, ts...)
					continue
				}
				reserve := 0
				if mode == 2 {
					reserve = len(" include:" + fmt.Sprintf(f.opts.ChunkName, len(chunks)+len(ts)+1))
				}
				bodies := pack(ts, maxString-reserve)
				first := len(chunks)
				for i, body := range bodies {
					name := fmt.Sprintf(f.opts.ChunkName, len(chunks)+1)
					if mode == 2 && i+1 < len(bodies) {
						body += " include:" + fmt.Sprintf(f.opts.ChunkName, len(chunks)+2)
					}
					chunks = append(chunks, Chunk{Name: name, Record: body})
					lookups++
					if mode == 1 || i == 0 {
						terms = append(terms, "include:"+chunks[first+i].Name)
					}
				}
			}
		}
		if tail != "" {
			terms = append(terms, tail)
		}
		return strings.Join(append([]string{"v=spf1"}, terms...), " "), chunks, lookups
	}
	rec, chunks, lookups := build(0)
	for mode := 1; mode <= 2 && len(rec) > maxString; mode++ {
		rec, chunks, lookups = build(mode)
	}
	if lookups > f.opts.MaxLookups {
		return fmt.Errorf("%w: the flattened record needs %d DNS-causing terms, over the maximum of %d", ErrCannotFlatten, lookups, f.opts.MaxLookups)
	}
	if len(rec) > maxString {
		f.warn("the record is %d bytes: publish it as several strings of at most %d bytes (RFC 7208 §3.3)", len(rec), maxString)
	}
	f.out.Record, f.out.Chunks = rec, chunks
	return nil
}

// networkTerms writes s as ip4/ip6 terms with the given qualifier.
func networkTerms(q string, s *addrSet) []string {
	var out []string
	for _, p := range s.prefixes() {
		kind := "ip6:"
		if p.Addr().Is4() {
			kind = "ip4:"
		}
		if p.IsSingleIP() {
			out = append(out, q+kind+p.Addr().String())
		} else {
			out = append(out, q+kind+p.String())
		}
	}
	return out
}

// pack groups terms into records of at most size bytes, without an all: in
// an included record anything but pass is no match (§5.2).
func pack(terms []string, size int) []string {
	var out []string
	cur := "v=spf1"
	for _, t := range terms {
		if len(cur)+1+len(t) > size && cur != "v=spf1" {
			out = append(out, cur)
			cur = "v=spf1"
		}
		cur += " " + t
	}
	if cur != "v=spf1" {
		out = append(out, cur)
	}
	return out
}
