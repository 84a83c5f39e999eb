// Package spftest is an in-memory DNS world for tests: a spf.Resolver built
// from plain maps, able to force failures per name and type.
package spftest

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"

	"github.com/spfmilter/spfmilter/internal/dnsname"
	"github.com/spfmilter/spfmilter/spf"
)

// ErrServFail and ErrTimeout are the failures a Resolver can be told to return.
var (
	ErrServFail = errors.New("spftest: SERVFAIL")
	ErrTimeout  = errors.New("spftest: timeout")
)

// Resolver is a fake DNS world. Keys are domain names, matched
// case-insensitively and with or without a trailing dot; PTR is keyed by the
// address's string form (e.g. "192.0.2.1", "2001:db8::1"). A name present in
// none of the maps is NXDOMAIN; a name present in some map but not the one
// asked is "no data".
type Resolver struct {
	TXT   map[string][]string
	A     map[string][]netip.Addr
	AAAA  map[string][]netip.Addr
	MX    map[string][]string
	PTR   map[string][]string
	CNAME map[string]string
	// SPF holds type SPF (99) records, which RFC 7208 §3.1 retired: only a
	// Server answers them, for tools that look for them.
	SPF map[string][]string
	// Fail forces an error for "TYPE name" (e.g. "TXT example.com") or for
	// "* name" (every type). Use ErrServFail, ErrTimeout or spf.ErrNotFound.
	Fail map[string]error
	// NoRecord turns off query recording (Queries stays empty), so that
	// benchmarks measure the evaluator rather than the bookkeeping.
	NoRecord bool

	mu      sync.Mutex
	queries []string
}

var _ spf.Resolver = (*Resolver)(nil)

// norm lower-cases ASCII letters only: names are octets, and DNS folds
// nothing else (RFC 4343).
func norm(name string) string {
	return dnsname.LowerASCII(strings.TrimSuffix(name, "."))
}

// Queries returns the queries made so far, as "TYPE name".
func (r *Resolver) Queries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.queries...)
}

// Reset forgets the recorded queries.
func (r *Resolver) Reset() {
	r.mu.Lock()
	r.queries = nil
	r.mu.Unlock()
}

func (r *Resolver) exists(name string) bool {
	for _, ok := range []bool{
		has(r.TXT, name), has(r.A, name), has(r.AAAA, name), has(r.MX, name), has(r.PTR, name), has(r.SPF, name),
	} {
		if ok {
			return true
		}
	}
	_, ok := r.CNAME[name]
	return ok
}

func has[V any](m map[string]V, name string) bool {
	for k := range m {
		if norm(k) == name {
			return true
		}
	}
	return false
}

func get[V any](m map[string]V, name string) (V, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if norm(k) == name {
			return v, true
		}
	}
	var zero V
	return zero, false
}

// lookup resolves name for qtype, following CNAMEs (at most 8).
func lookup[V any](ctx context.Context, r *Resolver, qtype, name string, m map[string]V) (V, error) {
	var zero V
	name = norm(name)
	if !r.NoRecord {
		r.mu.Lock()
		r.queries = append(r.queries, qtype+" "+name)
		r.mu.Unlock()
	}
	for range 8 {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		if len(r.Fail) > 0 {
			if err, ok := get(r.Fail, qtype+" "+name); ok {
				return zero, err
			}
			if err, ok := get(r.Fail, "* "+name); ok {
				return zero, err
			}
		}
		if v, ok := get(m, name); ok {
			return v, nil
		}
		target, ok := get(r.CNAME, name)
		if !ok {
			if r.exists(name) {
				return zero, nil
			}
			return zero, spf.ErrNotFound
		}
		name = norm(target)
	}
	return zero, ErrServFail
}

func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return lookup(ctx, r, "TXT", name, r.TXT)
}

func (r *Resolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	return lookup(ctx, r, "A", name, r.A)
}

func (r *Resolver) LookupAAAA(ctx context.Context, name string) ([]netip.Addr, error) {
	return lookup(ctx, r, "AAAA", name, r.AAAA)
}

func (r *Resolver) LookupMX(ctx context.Context, name string) ([]string, error) {
	return lookup(ctx, r, "MX", name, r.MX)
}

func (r *Resolver) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	return lookup(ctx, r, "PTR", addr.Unmap().String(), r.PTR)
}
