package lint

import (
	"net/netip"
	"slices"
)

// span is an inclusive range of addresses of one family.
type span struct{ lo, hi netip.Addr }

// addrSet is a set of addresses as sorted, disjoint, non-adjacent spans per
// family.
type addrSet struct {
	v4, v6 []span
}

func fullSet() *addrSet {
	return setOf(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
}

func setOf(ps ...netip.Prefix) *addrSet {
	s := &addrSet{}
	for _, p := range ps {
		s.addPrefix(p)
	}
	s.v4, s.v6 = merge(s.v4), merge(s.v6)
	return s
}

// addPrefix appends p without merging; merge restores the invariant.
func (s *addrSet) addPrefix(p netip.Prefix) {
	p = p.Masked()
	sp := span{p.Addr(), lastAddr(p)}
	if p.Addr().Is4() {
		s.v4 = append(s.v4, sp)
	} else {
		s.v6 = append(s.v6, sp)
	}
}

func (s *addrSet) empty() bool { return len(s.v4) == 0 && len(s.v6) == 0 }

func (s *addrSet) contains(a netip.Addr) bool {
	spans := s.v6
	if a.Is4() {
		spans = s.v4
	}
	for _, sp := range spans {
		if sp.lo.Compare(a) <= 0 && a.Compare(sp.hi) <= 0 {
			return true
		}
	}
	return false
}

func union(a, b *addrSet) *addrSet {
	return &addrSet{
		v4: merge(append(slices.Clone(a.v4), b.v4...)),
		v6: merge(append(slices.Clone(a.v6), b.v6...)),
	}
}

func minus(a, b *addrSet) *addrSet {
	return &addrSet{v4: subtract(a.v4, b.v4), v6: subtract(a.v6, b.v6)}
}

// merge sorts spans and joins the overlapping and adjacent ones.
func merge(in []span) []span {
	if len(in) < 2 {
		return in
	}
	slices.SortFunc(in, func(x, y span) int { return x.lo.Compare(y.lo) })
	out := in[:1]
	for _, sp := range in[1:] {
		last := &out[len(out)-1]
		next := last.hi.Next() // invalid after the family's last address
		if !next.IsValid() || sp.lo.Compare(next) <= 0 {
			if sp.hi.Compare(last.hi) > 0 {
				last.hi = sp.hi
			}
			continue
		}
		out = append(out, sp)
	}
	return out
}

// subtract returns a without b; both are sorted and disjoint.
func subtract(a, b []span) []span {
	var out []span
	j := 0
	for _, sp := range a {
		lo := sp.lo
		done := false
		for j < len(b) && b[j].hi.Compare(lo) < 0 {
			j++
		}
		for k := j; k < len(b) && b[k].lo.Compare(sp.hi) <= 0; k++ {
			if b[k].lo.Compare(lo) > 0 {
				out = append(out, span{lo, b[k].lo.Prev()})
			}
			if b[k].hi.Compare(sp.hi) >= 0 {
				done = true
				break
			}
			lo = b[k].hi.Next()
		}
		if !done {
			out = append(out, span{lo, sp.hi})
		}
	}
	return out
}

// prefixes is the shortest list of CIDR prefixes covering exactly s.
func (s *addrSet) prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, spans := range [][]span{s.v4, s.v6} {
		for _, sp := range spans {
			lo := sp.lo
			for {
				// The largest block that starts at lo and ends within the span.
				p := netip.PrefixFrom(lo, lo.BitLen())
				for bits := 0; bits <= lo.BitLen(); bits++ {
					c := netip.PrefixFrom(lo, bits)
					if c.Masked().Addr() == lo && lastAddr(c).Compare(sp.hi) <= 0 {
						p = c
						break
					}
				}
				out = append(out, p)
				end := lastAddr(p)
				if end.Compare(sp.hi) >= 0 {
					break
				}
				lo = end.Next()
			}
		}
	}
	return out
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	for i := off + p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}
