package resolver

import "time"

// Observer is told about upstream queries and cache events, for metrics. It
// must be safe for concurrent use and fast: it is called on the lookup path.
//
// ObserveQuery is called once per question sent to a server (a UDP query and
// its TCP retry after truncation count as one), never for cache hits. qtype is
// one of "TXT", "A", "AAAA", "MX", "PTR"; outcome one of "ok", "nxdomain",
// "nodata", "servfail", "timeout", "error" (REFUSED, other RCODEs, malformed
// answers, network errors).
//
// ObserveCache is called with "hit" or "miss" once per lookup when the cache
// is enabled, and with "evict" for each entry dropped to make room (not for
// entries that merely expired).
type Observer interface {
	ObserveQuery(qtype, outcome string, d time.Duration)
	ObserveCache(event string)
}

// Outcomes passed to Observer.ObserveQuery.
const (
	OutcomeOK       = "ok"
	OutcomeNXDomain = "nxdomain"
	OutcomeNoData   = "nodata"
	OutcomeServFail = "servfail"
	OutcomeTimeout  = "timeout"
	OutcomeError    = "error"
)

// Cache events passed to Observer.ObserveCache.
const (
	CacheHit   = "hit"
	CacheMiss  = "miss"
	CacheEvict = "evict"
)

// Outcomes are the outcomes passed to Observer.ObserveQuery.
func Outcomes() []string {
	return []string{OutcomeOK, OutcomeNXDomain, OutcomeNoData, OutcomeServFail, OutcomeTimeout, OutcomeError}
}

// QueryTypes are the record types the client asks for, as passed to
// Observer.ObserveQuery: one per Lookup method.
func QueryTypes() []string {
	return []string{"TXT", "A", "AAAA", "MX", "PTR"}
}

type nopObserver struct{}

func (nopObserver) ObserveQuery(string, string, time.Duration) {}
func (nopObserver) ObserveCache(string)                        {}
