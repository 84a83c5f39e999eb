package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spfmilter/spfmilter/metrics"
	"github.com/spfmilter/spfmilter/spf"
)

// dnsClient is the resolver built from the DNS settings. A reload keeps it,
// and its cache, unless those settings changed.
type dnsClient struct {
	resolver  spf.Resolver
	servers   []string
	timeout   time.Duration
	cacheSize int
}

// newDNSClient builds the resolver for c; m, when not nil, observes it.
func newDNSClient(c *Config, m *metrics.Metrics) (*dnsClient, error) {
	// WIRING POINT: spf/resolver.New(resolver.Options{Servers, Timeout,
	// CacheSize, Observer}) once that package exists.
	_ = m
	return nil, errors.New("resolver: not available")
}

// reconfigure returns d itself when c has the same DNS settings, else a new
// client.
func (d *dnsClient) reconfigure(c *Config, m *metrics.Metrics) (*dnsClient, error) {
	if slices.Equal(d.servers, c.Resolvers) && d.timeout == c.DNSTimeout && d.cacheSize == c.CacheSize {
		return d, nil
	}
	nd, err := newDNSClient(c, m)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	return nd, nil
}
