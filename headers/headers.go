// Package headers builds the header fields spfmilter adds to a message:
// Received-SPF (RFC 7208 §9.1) and Authentication-Results (RFC 8601), and
// recognizes Authentication-Results fields that claim our authserv-id.
package headers

import (
	"net/netip"

	"github.com/spfmilter/spfmilter/spf"
)

// Field is one header field; Value may be folded (CRLF followed by a tab)
// and never ends with a line break.
type Field struct {
	Name  string
	Value string
}

// Input is everything known about one message's SPF evaluation.
type Input struct {
	AuthservID string
	// Receiver is this host's name for Received-SPF's receiver key; "" hides it.
	Receiver     string
	ClientIP     netip.Addr   // invalid when the MTA gave none
	HELO         string       // as given by the client, unsanitized
	EnvelopeFrom string       // MAIL FROM without <>, unsanitized; "" is the null sender
	HELOResult   *spf.Outcome // nil when the HELO identity was not checked
	MailFrom     spf.Outcome
}

// Fields returns the fields to prepend, in top-to-bottom order.
func Fields(in Input) []Field {
	panic("not implemented yet")
}

// ClaimsAuthservID reports whether an Authentication-Results field value
// carries authservID (RFC 8601 §5: such fields from outside are forged).
func ClaimsAuthservID(value, authservID string) bool {
	panic("not implemented yet")
}
