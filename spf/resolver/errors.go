package resolver

import "errors"

// Failures of a lookup, wrapped with the question and, where there is one, the
// underlying error; test with errors.Is. A name that does not exist is not a
// failure: it wraps spf.ErrNotFound.
var (
	// ErrServFail: the server answered SERVFAIL (RCODE 2).
	ErrServFail = errors.New("resolver: server failure")
	// ErrRefused: the server refused the question (RCODE 5).
	ErrRefused = errors.New("resolver: query refused")
	// ErrRcode: the server answered with another error RCODE (FORMERR, NOTIMP, …).
	ErrRcode = errors.New("resolver: error response")
	// ErrTimeout: no answer within the per-query timeout, or the caller's
	// context ended first (then the context's error is wrapped too).
	ErrTimeout = errors.New("resolver: timeout")
	// ErrMalformed: the answer could not be parsed or does not answer the
	// question asked.
	ErrMalformed = errors.New("resolver: malformed answer")
	// ErrCNAMELoop: a CNAME chain loops or is longer than MaxCNAMEChain.
	ErrCNAMELoop = errors.New("resolver: CNAME loop or chain too long")
	// ErrNetwork: the server could not be reached (connection refused, no
	// route, …).
	ErrNetwork = errors.New("resolver: network error")
	// ErrBadName: the name cannot be a DNS name (a label over 63 bytes, the
	// whole over 253, an empty label). Such names also wrap spf.ErrNotFound:
	// RFC 7208 §4.3 treats a malformed domain like NXDOMAIN.
	ErrBadName = errors.New("resolver: malformed domain name")
)
