// Package headers builds the header fields spfmilter adds to a message:
// Received-SPF (RFC 7208 §9.1) and Authentication-Results (RFC 8601, with
// dkim= results when the body was verified, RFC 6008), and
// recognizes Authentication-Results fields that claim our authserv-id.
//
// Everything that comes from the SMTP client or from DNS (HELO, MAIL FROM, an
// explanation, a problem text) is untrusted: control characters, CR, LF, NUL
// and invalid UTF-8 are replaced by '?', values are length-capped, and values
// that are not dot-atoms are written as quoted-strings. Valid UTF-8 is kept in
// Received-SPF: a compliant client sends it only in an SMTPUTF8 transaction
// (RFC 6531), whose message may carry UTF-8 header fields (RFC 6532 §3.2),
// and RFC 8616 allows UTF-8 local-parts and U-labels there. Authentication-
// Results uses A-labels for every domain, which is valid in any message.
//
// Field values are folded with CRLF followed by a tab, so that lines stay
// within 78 characters where the content allows and never exceed 998 octets
// (RFC 5322 §2.1.1, §2.2.3).
package headers

import (
	"net/netip"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/spf"
)

// Field names, as written. Compare incoming names case-insensitively.
const (
	NameReceivedSPF           = "Received-SPF"
	NameAuthenticationResults = "Authentication-Results"
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
	HELOResult   *spf.Outcome // nil or NotChecked when the HELO identity was not checked
	MailFrom     spf.Outcome
	// DKIM are the message's DKIM signatures as verified, one dkim=
	// resinfo each; nil when the body was not verified.
	DKIM []dkim.Signature
	// Rescue is the signature that vouched for a message whose SPF result
	// would have been rejected; nil when none did. Received-SPF keeps the
	// SPF result and says so in its comment and a dkim-rescue key.
	Rescue *dkim.Signature
	// Relay is the trusted relay the message came through when ClientIP
	// was read from the Received field it added; invalid otherwise.
	Relay netip.Addr
}

// Fields returns the fields to prepend, in top-to-bottom order:
// Authentication-Results first, then Received-SPF.
//
// Authentication-Results goes on top: RFC 8601 §2.1 makes it a trace field,
// added at the top as the message transits, and it is the summary written
// after the SPF checks that Received-SPF details, so it is the newest field.
// Readers that trust only the fields carrying their border's authserv-id
// (RFC 8601 §5, §7.1) find it first. Received-SPF sits directly below it:
// RFC 7208 §9.1 only requires it above the receiving MTA's Received: field
// and above any other Received-SPF field, which holds either way since both
// are prepended.
//
// Authentication-Results is left out when AuthservID is not a valid
// authserv-id (see ValidAuthservID); configuration must prevent that.
func Fields(in Input) []Field {
	var fs []Field
	if v, ok := authResultsValue(in); ok {
		fs = append(fs, Field{Name: NameAuthenticationResults, Value: v})
	}
	fs = append(fs, Field{Name: NameReceivedSPF, Value: NewReceivedSPF(in).Value()})
	return fs
}

// ClaimsAuthservID reports whether an Authentication-Results field value
// carries authservID (RFC 8601 §5: such fields from outside are forged).
//
// The authserv-id is the first value of the field after optional comments
// and folding white space, a token or a quoted-string (RFC 8601 §2.2). It
// matches case-insensitively, ignoring one trailing dot, and U-labels match
// their A-labels. Anything that does not start with a well-formed authserv-id
// does not match.
func ClaimsAuthservID(value, authservID string) bool {
	got, ok := parseAuthservID(value)
	if !ok {
		return false
	}
	return sameAuthservID(got, authservID)
}
