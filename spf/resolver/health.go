package resolver

import (
	"sync/atomic"
	"time"
)

// server is one configured name server and what the client has learnt of
// it.
type server struct {
	addr string
	// avoidUntil is the Unix time in nanoseconds until which the server is
	// left out after a timeout; 0 while it answers.
	avoidUntil atomic.Int64
	failures   atomic.Uint64
}

// usable reports whether a question may go to s now. A server being avoided
// is not, except that once its interval is over the first question to ask
// gets it (and moves the end of the interval on, so that concurrent
// questions do not all wait on a server that may still be dead).
func (s *server) usable(now time.Time, avoidFor time.Duration) bool {
	until := s.avoidUntil.Load()
	if until == 0 {
		return true
	}
	if now.UnixNano() < until {
		return false
	}
	return s.avoidUntil.CompareAndSwap(until, now.Add(avoidFor).UnixNano())
}

// fail records a timeout or network error: s is avoided for avoidFor.
func (s *server) fail(now time.Time, avoidFor time.Duration) {
	s.failures.Add(1)
	s.avoidUntil.Store(now.Add(avoidFor).UnixNano())
}

// answered records an answer (of any RCODE): s is asked again in turn.
func (s *server) answered() {
	if s.avoidUntil.Load() != 0 {
		s.avoidUntil.Store(0)
	}
}

// ServerHealth is what the client knows of one server.
type ServerHealth struct {
	Addr string // "host:port", as asked
	// Up is false from a timeout or a network error until the server
	// answers again.
	Up bool
	// Failures counts the questions to the server that timed out or could
	// not be sent.
	Failures uint64
}

// Health reports on each server, in the configured order.
func (c *Client) Health() []ServerHealth {
	out := make([]ServerHealth, len(c.servers))
	for i, s := range c.servers {
		out[i] = ServerHealth{Addr: s.addr, Up: s.avoidUntil.Load() == 0, Failures: s.failures.Load()}
	}
	return out
}
