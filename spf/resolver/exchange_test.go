package resolver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/spf/spftest"
)

// Exchange returns the whole answer, with the TXT record's character-strings
// as sent and its TTL, asks the server every time, and leaves the cache
// alone.
func TestExchangeWholeAnswer(t *testing.T) {
	long := "v=spf1 " + strings.Repeat("ip4:192.0.2.1 ", 30) + "-all"
	s := spftest.NewServer(t, &spftest.Resolver{
		TXT: map[string][]string{"long.example": {long}},
		SPF: map[string][]string{"long.example": {"v=spf1 -all"}},
	})
	s.SetTTL(123)
	c, err := New(Options{Servers: []string{s.Addr()}, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		m, err := c.Exchange(ctx, "Long.Example.", dns.TypeTXT)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Answer) != 1 {
			t.Fatalf("answer %v", m.Answer)
		}
		txt := m.Answer[0].(*dns.TXT)
		if len(txt.Txt) != 2 || len(txt.Txt[0]) != 255 || strings.Join(txt.Txt, "") != long || txt.Hdr.Ttl != 123 {
			t.Errorf("TXT %d strings, TTL %d", len(txt.Txt), txt.Hdr.Ttl)
		}
	}
	if n := s.QueryCount(); n != 2 {
		t.Errorf("%d queries, want 2 (never from the cache)", n)
	}
	if n := c.CacheLen(); n != 0 {
		t.Errorf("%d answers cached, want none", n)
	}
	m, err := c.Exchange(ctx, "long.example", dns.TypeSPF)
	if err != nil || len(m.Answer) != 1 {
		t.Errorf("type SPF: %v, %v", m, err)
	}
	m, err = c.Exchange(ctx, "missing.example", dns.TypeTXT)
	if err != nil || m.Rcode != dns.RcodeNameError {
		t.Errorf("NXDOMAIN: %v, %v", m, err)
	}
}

func TestExchangeFailures(t *testing.T) {
	s := spftest.NewServer(t, &spftest.Resolver{Fail: map[string]error{"* bad.example": spftest.ErrServFail}})
	c, err := New(Options{Servers: []string{s.Addr()}, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(context.Background(), "bad.example", dns.TypeTXT); !errors.Is(err, ErrServFail) {
		t.Errorf("SERVFAIL: %v", err)
	}
	if _, err := c.Exchange(context.Background(), strings.Repeat("a", 64)+".example", dns.TypeTXT); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Exchange(ctx, "bad.example", dns.TypeTXT); !errors.Is(err, ErrTimeout) {
		t.Errorf("ended context: %v", err)
	}
}
