package main

import (
	"slices"
	"time"

	"github.com/spfmilter/spfmilter/metrics"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

// dnsClient is the resolver built from the DNS settings. A reload keeps it,
// and its cache, unless those settings changed.
type dnsClient struct {
	resolver  *resolver.Client
	servers   []string
	timeout   time.Duration
	cacheSize int
}

// resolverOptions are the resolver options of the DNS settings of c.
func resolverOptions(c *Config) resolver.Options {
	opts := resolver.Options{
		Servers:   c.Resolvers, // empty: /etc/resolv.conf
		Timeout:   c.DNSTimeout,
		CacheSize: c.CacheSize,
	}
	if c.CacheSize == 0 {
		opts.CacheSize = -1 // our 0 is "no cache"; the resolver's is its default
	}
	return opts
}

// newDNSClient builds the resolver for c; m, when not nil, observes it.
func newDNSClient(c *Config, m *metrics.Metrics) (*dnsClient, error) {
	opts := resolverOptions(c)
	if m != nil {
		opts.Observer = m
	}
	r, err := resolver.New(opts)
	if err != nil {
		return nil, err
	}
	if m != nil {
		m.SetCacheSizeFunc(r.CacheLen)
	}
	return &dnsClient{resolver: r, servers: c.Resolvers, timeout: c.DNSTimeout, cacheSize: c.CacheSize}, nil
}

// reconfigure returns d itself when c has the same DNS settings, else a new
// client.
func (d *dnsClient) reconfigure(c *Config, m *metrics.Metrics) (*dnsClient, error) {
	if slices.Equal(d.servers, c.Resolvers) && d.timeout == c.DNSTimeout && d.cacheSize == c.CacheSize {
		return d, nil
	}
	return newDNSClient(c, m)
}
