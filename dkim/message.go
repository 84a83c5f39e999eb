package dkim

import (
	"bytes"
	"net/mail"
	"strings"
)

// Message collects a message in wire form from the pieces a milter is
// given (header fields, then body chunks), keeping at most limit+1 bytes:
// enough for Verify to tell that it is too large, never more.
type Message struct {
	buf    []byte
	limit  int64
	inBody bool // the empty line after the header was written
}

// NewMessage returns an empty Message bounded by limit bytes.
func NewMessage(limit int64) *Message { return &Message{limit: limit} }

// Header adds one header field. value is as the MTA passes it to a
// milter: without the space after the colon, continuation lines joined by
// LF or CRLF. It is written back as "name: value" with CRLF line ends,
// which relaxed header canonicalization (RFC 6376 §3.4.2) cannot tell
// from the original; a simple-canonicalized signature over a field whose
// original spacing differed does not verify.
func (m *Message) Header(name, value string) {
	m.write(name)
	m.write(": ")
	m.write(crlf(value))
	m.write("\r\n")
}

// EndHeader adds the empty line between header and body; Body and Bytes
// add it when it was not.
func (m *Message) EndHeader() {
	if !m.inBody {
		m.inBody = true
		m.write("\r\n")
	}
}

// Body adds a body chunk (already in CRLF form from the MTA).
func (m *Message) Body(chunk []byte) {
	m.EndHeader()
	m.writeBytes(chunk)
}

// Raw adds a whole message in wire form, header and body, as read from a
// file.
func (m *Message) Raw(msg []byte) {
	m.inBody = true
	m.writeBytes(msg)
}

// Bytes returns what was collected: the whole message, or its first
// limit+1 bytes when it is larger.
func (m *Message) Bytes() []byte {
	m.EndHeader()
	return m.buf
}

func (m *Message) write(s string) {
	if room := m.room(); int64(len(s)) > room {
		s = s[:room]
	}
	m.buf = append(m.buf, s...)
}

func (m *Message) writeBytes(b []byte) {
	if room := m.room(); int64(len(b)) > room {
		b = b[:room]
	}
	m.buf = append(m.buf, b...)
}

// room is what may still be kept: up to limit+1 bytes in all.
func (m *Message) room() int64 {
	return max(0, m.limit+1-int64(len(m.buf)))
}

// crlf turns bare LF line ends into CRLF.
func crlf(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// CRLF returns msg with bare LF line ends turned into CRLF: a message
// stored in a file often has LF only.
func CRLF(msg []byte) []byte {
	if !bytes.Contains(msg, []byte("\n")) {
		return msg
	}
	return []byte(crlf(string(msg)))
}

// AuthorDomain is the domain of the RFC5322.From address of msg, lower
// case, "" when there is not exactly one From field holding exactly one
// address (RFC 7489 §6.6.1 leaves such messages without an author domain
// to align with).
func AuthorDomain(msg []byte) string {
	var from []string
	for _, f := range headerFields(msg) {
		name, value, ok := strings.Cut(f, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "From") {
			from = append(from, value)
		}
	}
	if len(from) != 1 {
		return ""
	}
	addrs, err := mail.ParseAddressList(strings.TrimSpace(from[0]))
	if err != nil || len(addrs) != 1 {
		return ""
	}
	at := strings.LastIndexByte(addrs[0].Address, '@')
	if at < 0 {
		return ""
	}
	return normDomain(addrs[0].Address[at+1:])
}
