package milter

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/spftest"
)

// The test world. Client addresses are loopback; the SPF records name them.
const (
	ourID   = "mx.example.test"
	clientA = "127.0.0.2"
)

func world() *spftest.Resolver {
	return &spftest.Resolver{
		TXT: map[string][]string{
			"pass.test":      {"v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"},
			"fail.test":      {"v=spf1 -all exp=why.fail.test"},
			"why.fail.test":  {"%{i} may not send for %{d}"},
			"softfail.test":  {"v=spf1 ~all"},
			"neutral.test":   {"v=spf1 ?all"},
			"perm.test":      {"v=spf1 ip4:127.0.0.1 bogus:x -all"},
			"helo.pass.test": {"v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"},
			"helo.fail.test": {"v=spf1 -all"},
			"pct.test":       {"v=spf1 -all exp=why.pct.test"},
			"why.pct.test":   {"100%% " + strings.Repeat("spam ", 80) + "end"},
		},
		A: map[string][]netip.Addr{
			"nospf.test": {netip.MustParseAddr("127.0.0.1")},
		},
		Fail: map[string]error{"TXT temp.test": spftest.ErrServFail},
	}
}

func checker(r spf.Resolver) *spf.Checker {
	return &spf.Checker{Resolver: r, Receiver: ourID, Timeout: 5 * time.Second}
}

func testConfig(r spf.Resolver, mod ...func(*Config)) *Config {
	c := &Config{Checker: checker(r), AuthservID: ourID}
	for _, f := range mod {
		f(c)
	}
	return c
}

func rejectFail(c *Config) {
	c.Policy.MailFrom = map[spf.Result]Action{spf.Fail: ActionReject}
}

// recorder is an Observer that remembers every event.
type recorder struct {
	mu      sync.Mutex
	opened  int
	closed  int
	actions []string // "action/reason"
	results []string // "identity=result"
	causes  []string // "identity=cause"
	shadow  []string // "live->shadow"
	errs    []string
	rescues []string
}

func (r *recorder) ConnOpened() { r.mu.Lock(); r.opened++; r.mu.Unlock() }
func (r *recorder) ConnClosed() { r.mu.Lock(); r.closed++; r.mu.Unlock() }
func (r *recorder) SPFResult(identity, result string, _ time.Duration) {
	r.mu.Lock()
	r.results = append(r.results, identity+"="+result)
	r.mu.Unlock()
}

func (r *recorder) Permerror(identity, cause string) {
	r.mu.Lock()
	r.causes = append(r.causes, identity+"="+cause)
	r.mu.Unlock()
}

func (r *recorder) ShadowDifference(live, shadow string) {
	r.mu.Lock()
	r.shadow = append(r.shadow, live+"->"+shadow)
	r.mu.Unlock()
}

func (r *recorder) Action(action, reason string) {
	r.mu.Lock()
	r.actions = append(r.actions, action+"/"+reason)
	r.mu.Unlock()
}

func (r *recorder) Error(stage string) {
	r.mu.Lock()
	r.errs = append(r.errs, stage)
	r.mu.Unlock()
}

func (r *recorder) DKIMRescue(outcome string) {
	r.mu.Lock()
	r.rescues = append(r.rescues, outcome)
	r.mu.Unlock()
}

func (r *recorder) rescueList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rescues)
}

func (r *recorder) snapshot() (opened, closed int, actions, results, errs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened, r.closed, slices.Clone(r.actions), slices.Clone(r.results), slices.Clone(r.errs)
}

// waitFor polls cond (bounded) for events that follow a connection's close
// on the server side.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a Server on a loopback port.
type harness struct {
	t      testing.TB
	srv    *Server
	addr   string
	obs    *recorder
	logs   *syncBuffer
	served chan error
	// actions is the MTA's action mask; 0 is add and change header.
	actions gomilter.OptAction
}

func start(t testing.TB, o Options) *harness {
	t.Helper()
	h := &harness{t: t, obs: &recorder{}, logs: &syncBuffer{}, served: make(chan error, 1)}
	if o.Observer == nil {
		o.Observer = h.obs
	}
	o.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.srv = NewServer(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	go func() { h.served <- h.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.srv.Shutdown(ctx)
		if err := <-h.served; err != nil {
			t.Errorf("Serve returned %v after Shutdown, want nil", err)
		}
	})
	return h
}

func (h *harness) client() *gomilter.Client {
	return gomilter.NewClientWithOptions("tcp", h.addr, gomilter.ClientOptions{
		ActionMask:   cmp.Or(h.actions, gomilter.OptAddHeader|gomilter.OptChangeHeader),
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
	})
}

// mta drives one milter connection the way an MTA does.
type mta struct {
	t  testing.TB
	cs *gomilter.ClientSession
}

// connect opens a session and sends the connect stage: connect macros
// (name, value pairs) first, then the connect packet.
func (h *harness) connect(family gomilter.ProtoFamily, addr string, macros ...string) *mta {
	h.t.Helper()
	cs, err := h.client().Session()
	if err != nil {
		h.t.Fatal(err)
	}
	m := &mta{t: h.t, cs: cs}
	h.t.Cleanup(func() { cs.Close() })
	if len(macros) > 0 {
		m.must(cs.Macros(gomilter.CodeConn, macros...))
	}
	act, err := cs.Conn("client.example", family, 4025, addr)
	m.continued("connect", act, err)
	return m
}

func (m *mta) must(err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatal(err)
	}
}

func (m *mta) continued(stage string, act *gomilter.Action, err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("%s: %v", stage, err)
	}
	if act.Code != gomilter.ActContinue {
		m.t.Fatalf("%s: got action %q (%d %s), want continue", stage, act.Code, act.SMTPCode, act.SMTPText)
	}
}

func (m *mta) helo(name string) {
	m.t.Helper()
	m.must(m.cs.Macros(gomilter.CodeHelo)) // an empty list, as Postfix sends before STARTTLS
	act, err := m.cs.Helo(name)
	m.continued("helo", act, err)
}

// mail sends MAIL FROM with its macros and returns the milter's answer.
func (m *mta) mail(from string, macros ...string) *gomilter.Action {
	m.t.Helper()
	m.must(m.cs.Macros(gomilter.CodeMail, append([]string{"{mail_addr}", from}, macros...)...))
	act, err := m.cs.Mail(from, nil)
	if err != nil {
		m.t.Fatalf("mail: %v", err)
	}
	return act
}

// data sends the header fields and the end of message, with the queue id
// macro, and returns the modifications and the final answer.
func (m *mta) data(queueID string, hdr ...field) ([]gomilter.ModifyAction, *gomilter.Action) {
	m.t.Helper()
	for _, f := range hdr {
		m.must(m.cs.Macros(gomilter.CodeHeader, "i", queueID))
		act, err := m.cs.HeaderField(f.name, f.value)
		m.continued("header", act, err)
	}
	m.must(m.cs.Macros(gomilter.CodeEOB, "i", queueID))
	mods, act, err := m.cs.End()
	if err != nil {
		m.t.Fatalf("eom: %v", err)
	}
	return mods, act
}

// accepted sends a whole message that must pass MAIL FROM and returns the
// header as the MTA would write it.
func (m *mta) accepted(from, queueID string, hdr ...field) []field {
	m.t.Helper()
	act := m.mail(from)
	m.continued("mail", act, nil)
	mods, end := m.data(queueID, hdr...)
	m.continued("eom", end, nil)
	return applyMods(hdr, mods)
}

func (m *mta) abort() {
	m.t.Helper()
	m.must(m.cs.Abort())
}

type field struct{ name, value string }

// applyMods edits a header as an MTA does with the milter's modifications:
// SMFIR_INSHEADER inserts before the index-th field (0 = top),
// SMFIR_CHGHEADER changes the index-th field of that name (1-based), an
// empty value deleting it.
func applyMods(hdr []field, mods []gomilter.ModifyAction) []field {
	out := slices.Clone(hdr)
	for _, m := range mods {
		switch m.Code {
		case gomilter.ActInsertHeader:
			i := min(int(m.HeaderIndex), len(out))
			out = slices.Insert(out, i, field{m.HeaderName, m.HeaderValue})
		case gomilter.ActAddHeader:
			out = append(out, field{m.HeaderName, m.HeaderValue})
		case gomilter.ActChangeHeader:
			n := 0
			for i, f := range out {
				if !strings.EqualFold(f.name, m.HeaderName) {
					continue
				}
				if n++; n == int(m.HeaderIndex) {
					if m.HeaderValue == "" {
						out = slices.Delete(out, i, i+1)
					} else {
						out[i].value = m.HeaderValue
					}
					break
				}
			}
		}
	}
	return out
}

// unfold joins folded lines; go-milter sends LF line ends.
func unfold(s string) string {
	return strings.NewReplacer("\r\n\t", " ", "\n\t", " ", "\r\n ", " ", "\n ", " ").Replace(s)
}

// expectFields is what headers.Fields gives for in, with LF line ends as
// go-milter sends them.
func expectFields(in headers.Input) []field {
	var out []field
	for _, f := range headers.Fields(in) {
		out = append(out, field{f.Name, strings.ReplaceAll(f.Value, "\r\n", "\n")})
	}
	return out
}

// outcomes runs the checks the milter should have run, for the expected
// headers.
func outcomes(r spf.Resolver, ip, helo, sender string) (*spf.Outcome, spf.Outcome) {
	c := checker(r)
	a := spf.Args{IP: netip.MustParseAddr(ip), HELO: helo, Sender: sender}
	h := c.CheckHELO(context.Background(), a)
	return &h, c.CheckMailFrom(context.Background(), a)
}

func checkFields(t *testing.T, got, want []field) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("header fields:\ngot  %s\nwant %s", dump(got), dump(want))
	}
}

func dump(fs []field) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n\t%s: %q", f.name, f.value)
	}
	return b.String()
}

// rawDial opens a TCP connection without the milter client.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// optneg is an SMFIC_OPTNEG packet offering version 6 and everything.
func optneg() []byte {
	return []byte{0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 0x01, 0xff, 0, 0x1f, 0xff, 0xff}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
