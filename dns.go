package main

import (
	"slices"
	"time"

	"github.com/spfmilter/spfmilter/internal/config"
	"github.com/spfmilter/spfmilter/metrics"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

// dnsClient is the resolver and the parsed-record cache built from the DNS
// settings. A reload keeps them, and their caches, unless those settings
// changed.
type dnsClient struct {
	resolver      *resolver.Client
	records       *spf.RecordCache
	servers       []string
	timeout       time.Duration
	cacheSize     int
	cacheMaxBytes int64
}

// The share of cache_max_bytes each cache gets: DNS answers are what an
// outsider sizes directly (up to 64 KiB each); parsed records are at most
// about 60 KB each (spf.MaxRecordLen, spf.MaxRecordTerms) and only one per
// answer.
const (
	dnsCacheShare    = 3 // quarters
	recordCacheShare = 1
)

// resolverOptions are the resolver options of the DNS settings of c.
func resolverOptions(c *config.Config) resolver.Options {
	opts := resolver.Options{
		Servers:    c.Resolvers, // empty: /etc/resolv.conf
		Timeout:    c.DNSTimeout,
		CacheSize:  c.CacheSize,
		CacheBytes: c.CacheMaxBytes / 4 * dnsCacheShare,
	}
	if c.CacheSize == 0 {
		opts.CacheSize = -1 // our 0 is "no cache"; the resolver's is its default
	}
	return opts
}

// newDNSClient builds the resolver and record cache for c; m, when not nil,
// observes them.
func newDNSClient(c *config.Config, m *metrics.Metrics) (*dnsClient, error) {
	opts := resolverOptions(c)
	if m != nil {
		opts.Observer = m
	}
	r, err := resolver.New(opts)
	if err != nil {
		return nil, err
	}
	records := spf.NewRecordCache(c.CacheMaxBytes / 4 * recordCacheShare)
	if c.CacheSize == 0 {
		records = spf.NewRecordCache(0)
	}
	if m != nil {
		m.SetCacheSizeFunc(r.CacheLen)
		m.SetCacheBytesFunc(r.CacheBytes)
		m.SetRecordCacheFuncs(records.Bytes, records.Evictions)
		m.SetServersFunc(func() []metrics.DNSServer {
			var out []metrics.DNSServer
			for _, h := range r.Health() {
				out = append(out, metrics.DNSServer{Addr: h.Addr, Up: h.Up, Failures: h.Failures})
			}
			return out
		})
	}
	return &dnsClient{
		resolver: r, records: records, servers: c.Resolvers, timeout: c.DNSTimeout,
		cacheSize: c.CacheSize, cacheMaxBytes: c.CacheMaxBytes,
	}, nil
}

// reconfigure returns d itself when c has the same DNS settings, else a new
// client.
func (d *dnsClient) reconfigure(c *config.Config, m *metrics.Metrics) (*dnsClient, error) {
	if slices.Equal(d.servers, c.Resolvers) && d.timeout == c.DNSTimeout && d.cacheSize == c.CacheSize &&
		d.cacheMaxBytes == c.CacheMaxBytes {
		return d, nil
	}
	return newDNSClient(c, m)
}

// asked are the servers the resolver asks, in order: the resolver setting,
// else the nameservers of /etc/resolv.conf.
func (d *dnsClient) asked() []string {
	var out []string
	for _, h := range d.resolver.Health() {
		out = append(out, h.Addr)
	}
	return out
}
