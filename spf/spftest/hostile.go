package spftest

import (
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Answerer computes the reply to one question for a FuncServer: the rcode
// and the answer records. drop makes the server send nothing at all, as a
// dead or overloaded server would.
type Answerer func(q dns.Question) (rcode int, answer []dns.RR, drop bool)

// FuncServer is a loopback DNS server (UDP and TCP on one port) whose answers
// a function computes per question. Attack tests use it to play a zone that
// an attacker controls: records made up per name (random subdomains, unique
// records of any size up to what a message holds), CNAME chains handed out
// one hop at a time, or no answer at all. Negative answers carry an SOA so
// that they can be cached. Over UDP an answer that does not fit is truncated
// (TC=1), so large records come over TCP, as from a real server.
type FuncServer struct {
	addr    string
	pair    dnsPair
	answer  Answerer
	queries atomic.Int64
	dropped atomic.Int64
}

// NewFuncServer starts a FuncServer on 127.0.0.1 and stops it when the test
// ends.
func NewFuncServer(t testing.TB, answer Answerer) *FuncServer {
	t.Helper()
	pc, l, err := listenBoth("127.0.0.1:0", portTries)
	if err != nil {
		t.Fatalf("spftest: start DNS server: %v", err)
	}
	s := &FuncServer{addr: pc.LocalAddr().String(), answer: answer}
	s.pair = serveBoth(pc, l, dns.HandlerFunc(s.serveDNS))
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's "127.0.0.1:port".
func (s *FuncServer) Addr() string { return s.addr }

// Close stops the server.
func (s *FuncServer) Close() { s.pair.close() }

// Queries is the number of questions received (UDP and TCP, answered or
// dropped). A UDP question retried over TCP after truncation counts twice.
func (s *FuncServer) Queries() int64 { return s.queries.Load() }

// Dropped is the number of questions left without a reply.
func (s *FuncServer) Dropped() int64 { return s.dropped.Load() }

func (s *FuncServer) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	if len(req.Question) != 1 {
		m.SetRcodeFormatError(req)
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	rcode, answer, drop := s.answer(req.Question[0])
	if drop {
		s.dropped.Add(1)
		return
	}
	m.SetReply(req)
	m.Authoritative = true
	m.Rcode = rcode
	m.Answer = answer
	if len(answer) == 0 || rcode == dns.RcodeNameError {
		m.Ns = []dns.RR{soa(DefaultTTL)}
	}
	writeReply(w, req, m)
}

// TXT builds a TXT record for owner holding text (raw octets, sent exactly),
// cut into 255-byte character-strings (RFC 7208 §3.3).
func TXT(owner, text string, ttl uint32) *dns.TXT {
	return &dns.TXT{
		Hdr: dns.RR_Header{Name: dns.Fqdn(owner), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
		Txt: splitTXT(text),
	}
}

// CNAME builds a CNAME record from owner to target.
func CNAME(owner, target string, ttl uint32) *dns.CNAME {
	return &dns.CNAME{
		Hdr:    dns.RR_Header{Name: dns.Fqdn(owner), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
		Target: dns.Fqdn(target),
	}
}
