package dkim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/spfmilter/spfmilter/spf"
)

// Resolver is what verification needs from DNS, with spf.Resolver's
// contract: the TXT records of a name, each record's character-strings
// joined (RFC 6376 §3.6.2.2); a name that does not exist is an error
// wrapping spf.ErrNotFound (a missing key, permerror), "no data" an empty
// answer; any other error is a temperror. spf/resolver's Client is one, so
// key lookups share its cache, deadline and DNS metrics.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Bounds on what a message makes the verifier do.
const (
	// DefaultMaxSignatures is the number of DKIM-Signature fields verified
	// per message when Verifier.MaxSignatures is 0. Each costs a key lookup
	// and a pass over the body.
	DefaultMaxSignatures = 5
	// DefaultMaxBytes is the largest message (header and body) verified
	// when Verifier.MaxBytes is 0.
	DefaultMaxBytes = 1 << 20
)

// Verifier checks the DKIM signatures of messages. Its zero value is not
// usable: Resolver is required.
type Verifier struct {
	Resolver Resolver
	// MaxSignatures is the number of signatures verified per message, top
	// to bottom; the ones beyond are reported Neutral. 0 means
	// DefaultMaxSignatures.
	MaxSignatures int
	// MaxBytes bounds the message (header and body): a larger one is not
	// verified at all (Outcome.Oversized). The bytes hashed per message are
	// at most MaxSignatures × MaxBytes. 0 means DefaultMaxBytes.
	MaxBytes int64
}

// Limit is v's MaxBytes with its default applied: callers that collect a
// message need keep no more than Limit()+1 bytes of it.
func (v *Verifier) Limit() int64 {
	if v.MaxBytes > 0 {
		return v.MaxBytes
	}
	return DefaultMaxBytes
}

func (v *Verifier) maxSignatures() int {
	if v.MaxSignatures > 0 {
		return v.MaxSignatures
	}
	return DefaultMaxSignatures
}

// Verify checks the signatures of msg, a message in wire form (CRLF line
// ends; bare LF is read too). Key lookups end when ctx does: a key not
// fetched by then is a Temperror. A message without DKIM-Signature fields
// has no Signatures.
//
// Quirk of go-msgauth v0.7.0, kept on purpose: a signature with l= is never
// accepted (Policy), whether or not text follows the signed length, since
// whatever follows is not covered by it (RFC 6376 §8.2).
func (v *Verifier) Verify(ctx context.Context, msg []byte) Outcome {
	out := Outcome{Signatures: signatureFields(msg)}
	if int64(len(msg)) > v.Limit() {
		out.Oversized = true
		for i := range out.Signatures {
			out.Signatures[i].Result = Neutral
			out.Signatures[i].Problem = fmt.Sprintf("message larger than %d bytes not verified", v.Limit())
		}
		return out
	}
	if len(out.Signatures) == 0 {
		return out
	}
	maxSigs := v.maxSignatures()
	opts := &msgdkim.VerifyOptions{
		LookupTXT:        lookupTXT(ctx, v.Resolver),
		MaxVerifications: maxSigs,
	}
	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), opts)
	if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
		// A header go-msgauth cannot read: nothing verified.
		for i := range out.Signatures {
			out.Signatures[i].Result = Permerror
			out.Signatures[i].Problem = err.Error()
		}
		return out
	}
	for i := range out.Signatures {
		s := &out.Signatures[i]
		if i >= len(verifs) || i >= maxSigs {
			s.Result = Neutral
			s.Problem = fmt.Sprintf("not verified: more than %d signatures", maxSigs)
			continue
		}
		vf := verifs[i]
		if d := normDomain(vf.Domain); d != "" {
			s.Domain = d
		}
		s.Result, s.Problem = classify(vf.Err)
	}
	return out
}

// classify maps a go-msgauth verification error to a result.
func classify(err error) (Result, string) {
	switch {
	case err == nil:
		return Pass, ""
	case msgdkim.IsTempFail(err):
		return Temperror, err.Error()
	case msgdkim.IsPermFail(err):
		return Permerror, err.Error()
	case strings.Contains(err.Error(), "body length tag"):
		return Policy, err.Error()
	}
	return Fail, err.Error()
}

// lookupTXT adapts r to go-msgauth's hook, which takes no context and
// tells a temporary failure only by a net.Error whose Temporary() is true
// (query.go: anything else is "no key").
func lookupTXT(ctx context.Context, r Resolver) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txts, err := r.LookupTXT(ctx, normDomain(name))
		if err != nil && !errors.Is(err, spf.ErrNotFound) {
			return nil, tempError{err}
		}
		return txts, err
	}
}

// tempError is a lookup failure go-msgauth reports as a temperror.
type tempError struct{ err error }

func (e tempError) Error() string   { return e.err.Error() }
func (e tempError) Unwrap() error   { return e.err }
func (e tempError) Timeout() bool   { return true }
func (e tempError) Temporary() bool { return true }
