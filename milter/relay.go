package milter

import (
	"net/netip"
	"strings"
)

// Relay is a trusted relay (backup MX, filtering gateway): a client in
// Prefix hands on mail it received from others, so SPF is checked for the
// host it received the message from, read from the Received field it
// added. By is the name the relay writes after "by" in that field; ""
// means the relay's HELO name or its host name as the MTA resolved it.
type Relay struct {
	Prefix netip.Prefix
	By     string // lower-case, no trailing dot
}

// Bounds on what a relayed message's header may make the milter keep:
// the relay's field is near the top, so the first fields are enough.
const (
	maxReceivedFields = 50
	maxReceivedBytes  = 64 << 10
)

// relayFor is the trusted relay ip belongs to, nil when none.
func (cfg *Config) relayFor(ip netip.Addr) *Relay {
	if cfg == nil || !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()
	for i := range cfg.TrustedRelays {
		if cfg.TrustedRelays[i].Prefix.Contains(ip) {
			return &cfg.TrustedRelays[i]
		}
	}
	return nil
}

// relayHop finds, in the Received fields of a message (top first), the
// topmost one whose "by" is one of names and whose "from" carries a
// bracketed address (RFC 5321 §4.4: "from" domain, then a comment with the
// TCP-info, e.g. "from mail.example.org (mail.example.org [192.0.2.1]) by
// mx.example.com …"). It returns that address and the "from" domain, the
// HELO the relay was given. ok is false when no field fits.
func relayHop(received []string, names ...string) (ip netip.Addr, helo string, ok bool) {
	for _, v := range received {
		from, by, ok := splitReceived(v)
		if !ok || !nameIn(by, names) {
			continue
		}
		fields := strings.Fields(from)
		if len(fields) == 0 {
			continue
		}
		helo = fields[0]
		open := strings.IndexByte(from, '[')
		if open < 0 {
			continue
		}
		end := strings.IndexByte(from[open:], ']')
		if end < 0 {
			continue
		}
		lit := from[open+1 : open+end]
		if len(lit) >= 5 && strings.EqualFold(lit[:5], "ipv6:") {
			lit = lit[5:]
		}
		a, err := netip.ParseAddr(lit)
		if err != nil || a.Zone() != "" {
			continue
		}
		return a.Unmap(), helo, true
	}
	return netip.Addr{}, "", false
}

// splitReceived returns the text of the "from" clause and the host name of
// the "by" clause of a Received field value.
func splitReceived(v string) (from, by string, ok bool) {
	v = strings.Join(strings.Fields(v), " ")
	rest, ok := cutPrefixFold(v, "from ")
	if !ok {
		return "", "", false
	}
	i := indexFold(rest, " by ")
	if i < 0 {
		return "", "", false
	}
	after := strings.Fields(rest[i+4:])
	if len(after) == 0 {
		return "", "", false
	}
	return rest[:i], strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(after[0], ";")), "."), true
}

func nameIn(name string, names []string) bool {
	for _, n := range names {
		if n != "" && strings.EqualFold(strings.TrimSuffix(n, "."), name) {
			return true
		}
	}
	return false
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func indexFold(s, sub string) int {
	return strings.Index(strings.ToLower(s), sub)
}
