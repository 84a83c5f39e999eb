package resolver

import (
	"context"
	"fmt"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/internal/dnsname"
)

// Exchange asks the servers one question the way the lookups do (rotation
// and failover over the servers, EDNS0, TCP after a truncated UDP answer)
// and returns the whole answer message, never from the cache and never
// cached. It is for tools that look at what the lookups hide: TTLs, the
// character-strings of TXT records, the size of an answer, type SPF (99)
// records. A NOERROR or NXDOMAIN answer is returned with a nil error; other
// failures wrap the package's sentinel errors.
func (c *Client) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resolver: %s %s: %w: %w", dns.TypeToString[qtype], name, ErrTimeout, err)
	}
	k := key{name: normName(name), qtype: qtype}
	if !dnsname.Queryable(k.name) {
		return nil, fmt.Errorf("resolver: %s %q: %w", dns.TypeToString[qtype], name, ErrBadName)
	}
	return c.exchange(k.qname(), qtype)
}
