package spftest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/spfmilter/spfmilter/internal/dnsname"
	"github.com/spfmilter/spfmilter/spf"
)

// ErrRefused makes a Server answer REFUSED for a name (through the world's
// Fail map). The map-based Resolver returns it like any other error.
var ErrRefused = errors.New("spftest: REFUSED")

// DefaultTTL is the TTL a Server puts on every record and on the SOA of
// negative answers until SetTTL changes it.
const DefaultTTL = 300

// maxChase bounds the CNAME chain the server follows for one answer.
const maxChase = 8

// Query is one question a Server received.
type Query struct {
	Type string // "TXT", "A", … (dns.TypeToString)
	Name string // lower-case, without the trailing dot
	Net  string // "udp" or "tcp"
}

// Server is a real DNS server on the loopback interface answering from a
// Resolver's maps, over UDP and TCP on the same port. It is authoritative for
// everything: a name in none of the maps is NXDOMAIN, a name present in some
// map but not the one asked is NOERROR with no answer ("no data"); both carry
// an SOA in the authority section so that clients can cache them (RFC 2308).
//
// CNAMEs are chased within the answer as a recursive resolver would. PTR
// questions use the usual in-addr.arpa / ip6.arpa names and are answered from
// the world's PTR map, keyed by address.
//
// The world's Fail map applies per "TYPE name" or "* name": ErrServFail gives
// SERVFAIL, ErrRefused REFUSED, spf.ErrNotFound NXDOMAIN, ErrTimeout no reply
// at all, and any other error SERVFAIL.
//
// The world's names and TXT strings are raw octets, as the spf.Resolver
// contract has them: the server escapes them into miekg/dns's presentation
// form so that the wire carries exactly those octets, and reads questions
// back into octets, so that a name with a space, "@" or a quote and a
// record with a quote, a backslash or a non-ASCII octet are served as
// written.
//
// The world's maps are only read, possibly concurrently; do not change them
// while the server runs. The knobs (SetTTL, Truncate, …) are safe to change at
// any time.
type Server struct {
	world *Resolver
	addr  string
	pair  dnsPair

	mu        sync.Mutex
	ttl       uint32
	negTTL    uint32
	noChase   bool
	delay     time.Duration
	truncate  map[string]bool
	malformed map[string]bool
	log       []Query
}

// NewServer starts a Server for world on 127.0.0.1 with a port chosen by the
// system and stops it when the test ends.
func NewServer(t testing.TB, world *Resolver) *Server {
	t.Helper()
	s, err := StartServer(world)
	if err != nil {
		t.Fatalf("spftest: start DNS server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartServer starts a Server for world on 127.0.0.1 with a port chosen by the
// system. The caller must Close it.
func StartServer(world *Resolver) (*Server, error) {
	return StartServerAt("127.0.0.1:0", world)
}

// portTries bounds the ports tried when the system picks one: the UDP port
// it gives may be taken for TCP.
const portTries = 20

// StartServerAt starts a Server for world on addr ("host:port"), UDP and TCP.
// With port 0 the system picks one port for both. The caller must Close it.
func StartServerAt(addr string, world *Resolver) (*Server, error) {
	if world == nil {
		return nil, errors.New("spftest: nil world")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("spftest: address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = portTries
	}
	pc, l, err := listenBoth(addr, tries)
	if err != nil {
		return nil, err
	}
	s := &Server{
		world:     world,
		addr:      pc.LocalAddr().String(),
		ttl:       DefaultTTL,
		negTTL:    DefaultTTL,
		truncate:  map[string]bool{},
		malformed: map[string]bool{},
	}
	s.pair = serveBoth(pc, l, dns.HandlerFunc(s.serveDNS))
	return s, nil
}

// listenBoth listens on addr over UDP, then over TCP on the port UDP got.
// With port 0 the UDP port the system picks may be taken for TCP, so it
// makes up to tries attempts.
func listenBoth(addr string, tries int) (pc net.PacketConn, l net.Listener, err error) {
	for range tries {
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("spftest: listen udp %s: %w", addr, err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		err = fmt.Errorf("spftest: listen tcp %s: %w", pc.LocalAddr(), err)
	}
	return nil, nil, err
}

// dnsPair is a UDP and a TCP server on one port.
type dnsPair struct{ udp, tcp *dns.Server }

// serveBoth serves h on pc (UDP) and l (TCP) and returns once both run.
func serveBoth(pc net.PacketConn, l net.Listener, h dns.Handler) dnsPair {
	p := dnsPair{
		udp: &dns.Server{PacketConn: pc, Handler: h},
		tcp: &dns.Server{Listener: l, Handler: h},
	}
	var started sync.WaitGroup
	for _, srv := range []*dns.Server{p.udp, p.tcp} {
		started.Add(1)
		srv.NotifyStartedFunc = started.Done
		go srv.ActivateAndServe() //nolint:errcheck // Close reports nothing useful either
	}
	started.Wait()
	return p
}

func (p dnsPair) close() {
	p.udp.Shutdown() //nolint:errcheck
	p.tcp.Shutdown() //nolint:errcheck
}

// Addr is the server's "127.0.0.1:port", for UDP and TCP alike.
func (s *Server) Addr() string { return s.addr }

// Close stops the server.
func (s *Server) Close() { s.pair.close() }

// SetTTL sets the TTL of every answer record and of the SOA (TTL and minimum)
// in negative answers.
func (s *Server) SetTTL(ttl uint32) {
	s.mu.Lock()
	s.ttl, s.negTTL = ttl, ttl
	s.mu.Unlock()
}

// SetNegativeTTL sets only the SOA TTL and minimum of negative answers.
func (s *Server) SetNegativeTTL(ttl uint32) {
	s.mu.Lock()
	s.negTTL = ttl
	s.mu.Unlock()
}

// ChaseCNAME chooses whether answers follow CNAME chains (the default) or
// stop at the first CNAME, leaving the client to ask for the target.
func (s *Server) ChaseCNAME(on bool) {
	s.mu.Lock()
	s.noChase = !on
	s.mu.Unlock()
}

// SetDelay makes the server wait d before each answer, so that concurrent
// questions overlap.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Truncate makes every UDP answer for name (any type) empty with TC=1, so that
// clients retry over TCP. Answers over TCP are complete.
func (s *Server) Truncate(name string) {
	s.mu.Lock()
	s.truncate[srvNorm(name)] = true
	s.mu.Unlock()
}

// Malformed makes every answer for name (any type, UDP and TCP) a cut-off
// message that cannot be parsed.
func (s *Server) Malformed(name string) {
	s.mu.Lock()
	s.malformed[srvNorm(name)] = true
	s.mu.Unlock()
}

// Log returns the questions received so far, in order.
func (s *Server) Log() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.log...)
}

// Queries returns the questions received so far as "TYPE name", like
// Resolver.Queries.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.log))
	for i, q := range s.log {
		out[i] = q.Type + " " + q.Name
	}
	return out
}

// QueryCount is the number of questions received so far.
func (s *Server) QueryCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// ResetLog forgets the questions received so far.
func (s *Server) ResetLog() {
	s.mu.Lock()
	s.log = nil
	s.mu.Unlock()
}

func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcodeFormatError(req)
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	q := req.Question[0]
	// The world's names are raw octets; miekg/dns gives the question in
	// presentation form.
	name, ok := dnsname.Unescape(q.Name)
	if !ok {
		name = `\` + q.Name // matches no name of the world
	}
	name = srvNorm(name)
	netw := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		netw = "tcp"
	}

	s.mu.Lock()
	s.log = append(s.log, Query{Type: dns.TypeToString[q.Qtype], Name: name, Net: netw})
	ttl, negTTL, noChase := s.ttl, s.negTTL, s.noChase
	truncate, malformed := s.truncate[name], s.malformed[name]
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}

	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if malformed {
		// An answer record whose data is cut short.
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   net.IPv4(192, 0, 2, 1),
		}}
		if b, err := m.Pack(); err == nil {
			w.Write(b[:len(b)-3]) //nolint:errcheck
		}
		return
	}
	if truncate && netw == "udp" {
		m.Truncated = true
		writeReply(w, req, m)
		return
	}

	cur := name
	seen := map[string]bool{}
	for range maxChase {
		if err := s.failure(q.Qtype, cur); err != nil {
			switch {
			case errors.Is(err, ErrTimeout):
				return
			case errors.Is(err, spf.ErrNotFound):
				m.Rcode = dns.RcodeNameError
				m.Ns = []dns.RR{soa(negTTL)}
			case errors.Is(err, ErrRefused):
				m.Rcode = dns.RcodeRefused
				m.Answer = nil
			default:
				m.Rcode = dns.RcodeServerFailure
				m.Answer = nil
			}
			writeReply(w, req, m)
			return
		}
		seen[cur] = true
		owner := presName(cur)
		if rrs := s.records(q.Qtype, cur, owner, ttl); len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			break
		}
		target, ok := mapGet(s.world.CNAME, cur)
		if !ok {
			if !s.exists(cur) {
				m.Rcode = dns.RcodeNameError
			}
			// Nothing at the end of the chain: NXDOMAIN or no data, with
			// the SOA either way (RFC 2308 §2.1, §2.2).
			m.Ns = []dns.RR{soa(negTTL)}
			break
		}
		m.Answer = append(m.Answer, &dns.CNAME{
			Hdr:    dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
			Target: presName(srvNorm(target)),
		})
		cur = srvNorm(target)
		if noChase || seen[cur] {
			break
		}
	}
	writeReply(w, req, m)
}

// writeReply sends m, with EDNS0 when the question had it, truncated to
// what the client can take over UDP (512 bytes without EDNS0).
func writeReply(w dns.ResponseWriter, req, m *dns.Msg) {
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		m.SetEdns0(opt.UDPSize(), false)
	}
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		m.Truncate(size)
	}
	w.WriteMsg(m) //nolint:errcheck
}

// failure is the forced error for qtype at name, if any.
func (s *Server) failure(qtype uint16, name string) error {
	if err, ok := mapGet(s.world.Fail, dns.TypeToString[qtype]+" "+name); ok {
		return err
	}
	if err, ok := mapGet(s.world.Fail, "* "+name); ok {
		return err
	}
	return nil
}

// exists reports whether name is in any map, reverse names included.
func (s *Server) exists(name string) bool {
	w := s.world
	if mapHas(w.TXT, name) || mapHas(w.A, name) || mapHas(w.AAAA, name) ||
		mapHas(w.MX, name) || mapHas(w.PTR, name) || mapHas(w.CNAME, name) || mapHas(w.SPF, name) {
		return true
	}
	if a, ok := reverseAddr(name); ok {
		return mapHas(s.world.PTR, a.String())
	}
	return false
}

// records are the answer records of type qtype at name, owned by owner.
func (s *Server) records(qtype uint16, name, owner string, ttl uint32) []dns.RR {
	w := s.world
	hdr := dns.RR_Header{Name: owner, Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
	var out []dns.RR
	switch qtype {
	case dns.TypeTXT:
		txts, _ := mapGet(w.TXT, name)
		for _, t := range txts {
			out = append(out, &dns.TXT{Hdr: hdr, Txt: splitTXT(t)})
		}
	case dns.TypeSPF:
		txts, _ := mapGet(w.SPF, name)
		for _, t := range txts {
			out = append(out, &dns.SPF{Hdr: hdr, Txt: splitTXT(t)})
		}
	case dns.TypeA:
		addrs, _ := mapGet(w.A, name)
		for _, a := range addrs {
			if a.Is4() || a.Is4In6() {
				out = append(out, &dns.A{Hdr: hdr, A: net.IP(a.Unmap().AsSlice())})
			}
		}
	case dns.TypeAAAA:
		addrs, _ := mapGet(w.AAAA, name)
		for _, a := range addrs {
			b := a.As16()
			out = append(out, &dns.AAAA{Hdr: hdr, AAAA: net.IP(b[:])})
		}
	case dns.TypeMX:
		hosts, _ := mapGet(w.MX, name)
		for i, h := range hosts {
			out = append(out, &dns.MX{Hdr: hdr, Preference: uint16(10 * (i + 1)), Mx: presName(srvNorm(h))})
		}
	case dns.TypeCNAME:
		if t, ok := mapGet(w.CNAME, name); ok {
			out = append(out, &dns.CNAME{Hdr: hdr, Target: presName(srvNorm(t))})
		}
	case dns.TypePTR:
		if a, ok := reverseAddr(name); ok {
			hosts, _ := mapGet(w.PTR, a.String())
			for _, h := range hosts {
				out = append(out, &dns.PTR{Hdr: hdr, Ptr: presName(srvNorm(h))})
			}
		}
	}
	return out
}

// splitTXT cuts a record into the 255-octet character-strings a TXT record
// is made of (RFC 7208 §3.3: the client joins them without spaces), each in
// the presentation form miekg/dns packs, so that the wire carries the
// record's octets exactly.
func splitTXT(t string) []string {
	var parts []string
	for len(t) > 255 {
		parts = append(parts, dnsname.EscapeTXT(t[:255]))
		t = t[255:]
	}
	return append(parts, dnsname.EscapeTXT(t))
}

// presName is a world's name (raw octets) as miekg/dns takes it: escaped and
// fully qualified.
func presName(name string) string {
	return dnsname.Escape(name) + "."
}

func soa(ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "ns.spftest.invalid.",
		Mbox:    "hostmaster.spftest.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  ttl,
	}
}

// reverseAddr parses an in-addr.arpa or ip6.arpa name (without trailing dot).
func reverseAddr(name string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa"):
		labels := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa"), ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0])
		return a, err == nil
	case strings.HasSuffix(name, ".ip6.arpa"):
		labels := strings.Split(strings.TrimSuffix(name, ".ip6.arpa"), ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			if len(labels[i]) != 1 {
				return netip.Addr{}, false
			}
			b.WriteString(labels[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		a, err := netip.ParseAddr(b.String())
		return a, err == nil && a.Is6()
	}
	return netip.Addr{}, false
}

// The server keeps its own map helpers so that it depends on nothing but the
// Resolver's exported fields.

func srvNorm(name string) string {
	return dnsname.LowerASCII(strings.TrimSuffix(name, "."))
}

func mapHas[V any](m map[string]V, name string) bool {
	_, ok := mapGet(m, name)
	return ok
}

func mapGet[V any](m map[string]V, name string) (V, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if srvNorm(k) == name {
			return v, true
		}
	}
	var zero V
	return zero, false
}
