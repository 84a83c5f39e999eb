package spf

import (
	"context"
	"net/netip"
	"time"
)

// DefaultTimeout is the overall deadline of one check (RFC 7208 §4.6.4 note:
// at least 20 seconds).
const DefaultTimeout = 20 * time.Second

// Checker evaluates SPF policies. It is safe for concurrent use once
// configured; its fields must not change while checks run.
type Checker struct {
	// Resolver answers DNS queries. Required.
	Resolver Resolver
	// Timeout bounds one whole check; 0 means DefaultTimeout. Running out
	// yields temperror.
	Timeout time.Duration
	// Receiver is this host's name, expanded by %{r} (RFC 7208 §7.3);
	// "unknown" when empty.
	Receiver string
}

// Args describe one SMTP client for a check.
type Args struct {
	IP netip.Addr // the SMTP client; IPv4-mapped IPv6 is treated as IPv4
	// Sender is the MAIL FROM address without angle brackets; "" is the null
	// sender, checked as postmaster@<HELO> (RFC 7208 §2.4).
	Sender string
	HELO   string // the HELO/EHLO argument as given
	Trace  bool   // record a step-by-step trace in Outcome.Trace
}

// CheckHELO evaluates the HELO identity (RFC 7208 §2.3). An IP-literal or a
// name that is not a fully qualified domain yields None.
func (c *Checker) CheckHELO(ctx context.Context, a Args) Outcome {
	panic("not implemented yet")
}

// CheckMailFrom evaluates the MAIL FROM identity (RFC 7208 §2.4).
func (c *Checker) CheckMailFrom(ctx context.Context, a Args) Outcome {
	panic("not implemented yet")
}
