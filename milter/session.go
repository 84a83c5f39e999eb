package milter

import (
	"cmp"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/headers"
	"github.com/spfmilter/spfmilter/spf"
)

// Reasons for skipping SPF, reported to the log and Observer.Action.
const (
	SkipTrustedNetwork = "trusted_network"
	SkipAuthenticated  = "authenticated"
	// SkipNoClientIP: the MTA gave no client address (`sendmail -bs`, a
	// local submission). Without an address there is nothing to check, and
	// guessing one would produce a false verdict.
	SkipNoClientIP = "no_client_ip"
	// SkipUnconfigured: no Config or no Checker; also counted as an error.
	SkipUnconfigured = "unconfigured"
)

const arName = "Authentication-Results"

// session is one milter connection. go-milter calls it from one goroutine.
//
// The library replaces the macro map with every macro packet, so each
// callback copies what it needs from its own stage. Every answer is a
// continue or an SMFIR_REPLYCODE reply: any other final answer would make
// the library start a fresh Milter and lose the connection facts.
type session struct {
	srv  *Server
	conn *conn // nil when the library made the session without a connection

	// Connection facts, kept for every message of the connection.
	ip         netip.Addr // invalid when the MTA gave none
	family     string
	hostname   string // the client's host name as the MTA resolved it
	j          string // the MTA's own name (macro j)
	daemonName string
	helo       string // the last HELO/EHLO (it repeats after STARTTLS)
	heloCheck  *heloCheck

	msg *message // nil outside a transaction
}

// heloCheck is a HELO result computed once per HELO name and checker.
type heloCheck struct {
	name    string
	checker *spf.Checker
	out     spf.Outcome
}

// message is the state of one transaction, from MAIL FROM to EOM or ABORT.
type message struct {
	cfg        *Config // snapshot taken at MAIL FROM
	start      time.Time
	facts      Facts
	queueID    string
	authAuthen string
	authType   string
	dec        Decision
	done       bool // the verdict was already answered (reject, tempfail)
	// atRcpt: the reject or tempfail is answered per recipient at RCPT TO
	// (Config.NeverRejectRecipients); refused and spared count them.
	atRcpt bool
	// atEOM: the reject or tempfail is answered at end of message: the MTA
	// reads no answer to MAIL FROM (SMFIP_NR_MAIL, negotiated under a
	// configuration that could not refuse there) and skips RCPT TO.
	atEOM   bool
	refused int
	spared  int
	reason  string   // the Observer's reason when none of report's applies
	ar      []string // values of the Authentication-Results fields, in order
	// relay is set for a message from a trusted relay: its verdict comes at
	// end of message, from the Received fields kept in received.
	relay         *Relay
	received      []string
	receivedBytes int
}

var _ gomilter.Milter = (*session)(nil)

func (s *session) log() *slog.Logger { return s.srv.log }

func (s *session) Connect(host, family string, port uint16, addr net.IP, m *gomilter.Modifier) (gomilter.Response, error) {
	s.hostname = host
	s.family = family
	s.j = m.Macros["j"]
	s.daemonName = m.Macros["{daemon_name}"]
	s.ip = clientAddr(addr, m.Macros)
	s.helo, s.heloCheck, s.msg = "", nil, nil
	s.log().Debug("milter connect", "host", host, "family", family, "client_ip", addrString(s.ip),
		"client_addr_macro", m.Macros["{client_addr}"], "j", s.j, "daemon_name", s.daemonName)
	return gomilter.RespContinue, nil
}

func (s *session) Helo(name string, m *gomilter.Modifier) (gomilter.Response, error) {
	// Postfix sends ABORT and a new EHLO after STARTTLS, Sendmail only the
	// new EHLO: the last one is the client's word.
	// HELO also ends any transaction in progress (RFC 5321 §4.1.4).
	s.helo, s.msg = name, nil
	return gomilter.RespContinue, nil
}

func (s *session) MailFrom(from string, m *gomilter.Modifier) (gomilter.Response, error) {
	cfg := s.srv.cfg.Load()
	msg := &message{
		cfg:   cfg,
		start: time.Now(),
		facts: Facts{
			IP:            s.ip,
			HELO:          s.helo,
			Sender:        EnvelopeAddress(from),
			MTAName:       s.j,
			Authenticated: m.Macros["{auth_authen}"] != "",
		},
		queueID:    m.Macros["i"],
		authAuthen: m.Macros["{auth_authen}"],
		authType:   m.Macros["{auth_type}"],
	}
	s.msg = msg
	if cfg == nil || cfg.Checker == nil {
		s.srv.obs.Error(StageMail)
		s.log().Error("no SPF checker configured; message passes unchecked", "queue_id", msg.queueID)
		msg.dec = Decision{Skip: SkipUnconfigured, Action: ActionAccept}
		return gomilter.RespContinue, nil
	}
	if msg.relay = cfg.relayFor(s.ip); msg.relay != nil {
		// The client is a trusted relay: the verdict waits for its
		// Received field, at end of message.
		return gomilter.RespContinue, nil
	}
	ctx, stop := s.checkContext()
	defer stop()
	msg.dec = cfg.evaluate(ctx, msg.facts, &s.heloCheck, s.srv.obs)
	s.shadowDiff(msg)
	if msg.dec.Rescuable {
		if s.conn != nil && s.conn.bodyOK {
			// Decided at end of message, from the DKIM signatures.
			s.conn.msg = dkim.NewMessage(cfg.DKIM.Limit())
			return gomilter.RespContinue, nil
		}
		// dkim_rescue was turned on after this connection was
		// negotiated without the body: decided now, as without it.
		msg.dec.Rescuable = false
	}
	if msg.dec.Reply == "" || cfg.DryRun {
		// Accept and quarantine are acted on at end of message.
		return gomilter.RespContinue, nil
	}
	// A reject or tempfail is answered now, before DATA, with our own reply
	// text. SMFIR_REPLYCODE keeps the library's session (see the type doc).
	if len(cfg.NeverRejectRecipients) > 0 && s.conn.rcptStage() {
		msg.atRcpt = true
		return gomilter.RespContinue, nil
	}
	if s.conn.noMailReply() {
		// The configuration in force when the connection opened could not
		// refuse at MAIL FROM, so the MTA reads no answer here; this one
		// came with a reload since. The refusal moves to the next stage
		// that is answered.
		if s.conn.rcptStage() {
			msg.atRcpt = true
		} else {
			msg.atEOM = true
		}
		return gomilter.RespContinue, nil
	}
	msg.done = true
	s.report(msg, "reply", msg.dec.Reply)
	return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), msg.dec.Reply), nil
}

// RcptTo answers a refusal moved to RCPT TO: each recipient gets the reply
// MAIL FROM would have had, except those of NeverRejectRecipients, for
// whom the message is accepted and marked. The verdict is reported at the
// first refused recipient, and again at end of message when the message
// reached a spared one.
func (s *session) RcptTo(rcpt string, m *gomilter.Modifier) (gomilter.Response, error) {
	msg := s.msg
	if msg != nil && (msg.relay != nil || msg.dec.Rescuable) && msg.cfg.NeverReject(EnvelopeAddress(rcpt)) {
		// Decided at end of message (a relayed message, or one waiting
		// for its DKIM signatures), where a refusal cannot spare anyone:
		// a spared recipient turns it into a mark.
		msg.spared++
	}
	if msg == nil || !msg.atRcpt {
		return gomilter.RespContinue, nil
	}
	if msg.cfg.NeverReject(EnvelopeAddress(rcpt)) {
		msg.spared++
		s.log().Debug("recipient spared the refusal", "queue_id", msg.queueID, "rcpt", EnvelopeAddress(rcpt))
		return gomilter.RespContinue, nil
	}
	if msg.refused++; msg.refused == 1 {
		s.report(msg, "reply", msg.dec.Reply, "stage", "rcpt")
	}
	return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), msg.dec.Reply), nil
}

func (s *session) Header(name, value string, m *gomilter.Modifier) (gomilter.Response, error) {
	if s.msg != nil && strings.EqualFold(name, arName) {
		s.msg.ar = append(s.msg.ar, value)
	}
	if msg := s.msg; msg != nil && msg.relay != nil && strings.EqualFold(name, "Received") &&
		len(msg.received) < maxReceivedFields && msg.receivedBytes+len(value) <= maxReceivedBytes {
		msg.received = append(msg.received, value)
		msg.receivedBytes += len(value)
	}
	// SMFIP_NOHREPL: the MTA expects no reply to a header, and go-milter
	// sends none for a nil response.
	return nil, nil
}

func (s *session) Headers(textproto.MIMEHeader, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (s *session) BodyChunk([]byte, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Body is the end of the message. The answer is continue, which both MTAs
// take as accept at this stage, so the session lives on for the next
// message of the connection.
//
// A message that waited for its end (dkim_rescue) and is not rescued gets
// its reject or tempfail reply here instead, with no header edits.
func (s *session) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	if msg := s.msg; msg != nil && msg.atEOM {
		s.msg = nil
		if s.conn != nil {
			s.conn.msg = nil
		}
		s.report(msg, "reply", msg.dec.Reply, "stage", "eom")
		return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), msg.dec.Reply), nil
	}
	if msg := s.msg; msg != nil && msg.relay != nil && !msg.done {
		msg.queueID = cmp.Or(m.Macros["i"], msg.queueID)
		s.relayVerdict(msg)
		if msg.dec.Reply != "" && !msg.cfg.DryRun {
			// The same reply as at MAIL FROM, now for the whole message.
			s.msg = nil
			s.report(msg, "reply", msg.dec.Reply, "stage", "eom")
			return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), msg.dec.Reply), nil
		}
	}
	reply, err := s.eom(s.conn.editor(m), m.Macros)
	if err != nil {
		s.srv.obs.Error(StageEOM)
		s.log().Error("milter end of message", "err", err)
		return nil, err
	}
	if reply != "" {
		return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), reply), nil
	}
	return gomilter.RespContinue, nil
}

// headerEditor is the part of *gomilter.Modifier used at end of message.
type headerEditor interface {
	ChangeHeader(index int, name, value string) error
	InsertHeader(index int, name, value string) error
	Quarantine(reason string) error
}

// eom writes the end-of-message edits, or returns the reply of a message
// that waited for its end and is refused after all.
func (s *session) eom(ed headerEditor, macros map[string]string) (string, error) {
	msg := s.msg
	s.msg = nil
	var collected *dkim.Message
	if s.conn != nil {
		collected, s.conn.msg = s.conn.msg, nil
	}
	if msg == nil || msg.done {
		return "", nil
	}
	msg.queueID = cmp.Or(macros["i"], msg.queueID)
	if msg.dec.Rescuable {
		var raw []byte
		if collected != nil {
			raw = collected.Bytes()
		}
		ctx, stop := s.checkContext()
		msg.dec = msg.cfg.Rescue(ctx, msg.facts, msg.dec, raw)
		stop()
		s.srv.obs.DKIMRescue(msg.dec.RescueOutcome)
		if msg.dec.Action != ActionAccept && msg.spared > 0 {
			s.spare(msg, ReasonNeverReject)
		}
		if msg.dec.Action != ActionAccept && !msg.cfg.DryRun {
			s.report(msg, "reply", msg.dec.Reply)
			return msg.dec.Reply, nil
		}
	}
	id := msg.cfg.authservID(s.j)

	// RFC 8601 §5: fields that claim our authserv-id and arrive from outside
	// are forged. The index of SMFIR_CHGHEADER is 1-based among the fields of
	// that name; deleting from the last one keeps the lower indexes valid
	// whatever the MTA does with deleted fields.
	for i := len(msg.ar); i >= 1; i-- {
		if headers.ClaimsAuthservID(msg.ar[i-1], id) {
			if err := ed.ChangeHeader(i, arName, ""); err != nil {
				return "", err
			}
			s.log().Info("removed a forged Authentication-Results field", "queue_id", msg.queueID, "index", i)
		}
	}

	if msg.cfg != nil {
		fields := msg.cfg.Fields(msg.facts, msg.dec)
		// Inserting each at the top, last first, leaves them on top in
		// Fields' order.
		for i := len(fields) - 1; i >= 0; i-- {
			if err := ed.InsertHeader(0, fields[i].Name, fields[i].Value); err != nil {
				return "", err
			}
		}
	}
	switch {
	case msg.atRcpt:
		msg.dec.Action, msg.reason = ActionAccept, ReasonNeverReject
		s.report(msg, "recipients_spared", msg.spared, "recipients_refused", msg.refused)
	case msg.dec.Reply != "":
		s.report(msg, "dry_run_reply", msg.dec.Reply)
	case msg.dec.Quarantine != "" && msg.cfg.DryRun:
		s.report(msg, "dry_run_quarantine", msg.dec.Quarantine)
	case msg.dec.Quarantine != "" && !s.conn.canQuarantine():
		// The MTA was not asked for SMFIF_QUARANTINE when the connection
		// opened (the setting came with a reload since): the message is
		// marked only.
		s.log().Warn("quarantine not negotiated on this connection; message marked only", "queue_id", msg.queueID)
		msg.dec.Action = ActionAccept
		s.report(msg, "quarantine_unavailable", msg.dec.Quarantine)
	case msg.dec.Quarantine != "":
		if err := ed.Quarantine(msg.dec.Quarantine); err != nil {
			return "", err
		}
		s.report(msg, "quarantine", msg.dec.Quarantine)
	default:
		s.report(msg)
	}
	return "", nil
}

// shadowDiff reports a shadow verdict that differs from the live one.
func (s *session) shadowDiff(msg *message) {
	if d := &msg.dec; d.ShadowDiffers() {
		s.srv.obs.ShadowDifference(string(d.Action), string(d.Shadow.Action))
		s.log().Info("shadow policy differs", "queue_id", msg.queueID, "client_ip", addrString(msg.facts.IP),
			"helo", msg.facts.HELO, "sender", msg.facts.Sender,
			"helo_result", resultLabel(d.HELO), "mailfrom_result", resultLabel(d.MailFrom),
			"live_action", string(d.Action), "live_reason", d.Exempt, "live_reply", d.Reply,
			"shadow_action", string(d.Shadow.Action), "shadow_reason", d.Shadow.Exempt, "shadow_reply", d.Shadow.Reply)
	}
}

// relayVerdict evaluates a message from a trusted relay for the host the
// relay received it from. Without a usable Received field of the relay,
// the relay itself is checked, and the message is marked, never refused.
// A recipient of NeverRejectRecipients turns a refusal into a mark too.
func (s *session) relayVerdict(msg *message) {
	names := []string{msg.relay.By}
	if msg.relay.By == "" {
		names = []string{s.helo, s.hostname}
	}
	ip, helo, ok := relayHop(msg.received, names...)
	ctx, stop := s.checkContext()
	defer stop()
	var hc *heloCheck // the original client's HELO, not the connection's
	if !ok {
		msg.dec = msg.cfg.evaluate(ctx, msg.facts, &hc, s.srv.obs)
		s.log().Warn("no Received field of the trusted relay with a client address; checked as the relay's own, marked only",
			"queue_id", msg.queueID, "relay", addrString(s.ip), "received_fields", len(msg.received))
		s.spare(msg, ReasonRelayNoReceived)
		return
	}
	msg.facts.IP, msg.facts.HELO = ip, helo
	msg.dec = msg.cfg.evaluate(ctx, msg.facts, &hc, s.srv.obs)
	msg.dec.Relay = s.ip
	s.shadowDiff(msg)
	if msg.spared > 0 && msg.dec.Action != ActionAccept {
		s.spare(msg, ReasonNeverReject)
	}
}

// spare turns msg's verdict into a mark, for reason.
func (s *session) spare(msg *message, reason string) {
	msg.reason = reason
	msg.dec.Action, msg.dec.Identity, msg.dec.Reply, msg.dec.Quarantine = ActionAccept, "", "", ""
}

func (s *session) Abort(m *gomilter.Modifier) error {
	if s.conn != nil {
		s.conn.msg = nil
	}
	if s.msg != nil && !s.msg.done {
		s.log().Debug("milter transaction aborted", "queue_id", s.msg.queueID, "sender", s.msg.facts.Sender)
	}
	s.msg = nil
	return nil
}

// report writes the message's verdict line and tells the Observer.
func (s *session) report(msg *message, extra ...any) {
	d := msg.dec
	action, reason := string(d.Action), ""
	switch {
	case d.Skip != "":
		action, reason = ActionSkip, d.Skip
	case msg.cfg.DryRun:
		reason = ReasonDryRun
	case msg.reason != "":
		reason = msg.reason
	case d.Exempt != "":
		reason = d.Exempt
	}
	s.srv.obs.Action(action, reason)

	attrs := []any{
		"queue_id", msg.queueID,
		"client_ip", addrString(s.ip),
		"helo", msg.facts.HELO,
		"sender", msg.facts.Sender,
		"helo_result", resultLabel(d.HELO),
		"mailfrom_result", resultLabel(d.MailFrom),
		"action", action,
	}
	if d.HELO != nil && d.HELO.NotChecked {
		attrs = append(attrs, "helo_not_checked", d.HELO.Problem)
	}
	if d.HELO != nil && d.HELO.Cause != "" {
		attrs = append(attrs, "helo_cause", string(d.HELO.Cause))
	}
	if d.MailFrom != nil && d.MailFrom.Cause != "" {
		attrs = append(attrs, "mailfrom_cause", string(d.MailFrom.Cause))
	}
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	if d.Identity != "" {
		attrs = append(attrs, "identity", string(d.Identity))
	}
	if d.Exempt != "" {
		attrs = append(attrs, "exempt", d.Exempt, "exempt_by", d.ExemptBy)
	}
	if d.Relay.IsValid() {
		attrs = append(attrs, "relay", addrString(d.Relay), "relayed_client_ip", addrString(msg.facts.IP))
	}
	if msg.authAuthen != "" {
		attrs = append(attrs, "auth", msg.authAuthen)
	}
	if d.RescueOutcome != "" {
		attrs = append(attrs, "dkim_rescue", d.RescueOutcome)
		if d.Rescued != nil {
			attrs = append(attrs, "dkim_domain", d.Rescued.Domain)
		}
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", time.Since(msg.start))
	s.log().Info("spf verdict", attrs...)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// EnvelopeAddress is the MAIL FROM address as SPF wants it: without angle
// brackets and without an RFC 5321 §4.1.2 source route ("@a,@b:user@c").
// The check command reads its --sender through it too.
func EnvelopeAddress(from string) string {
	a := strings.TrimSpace(from)
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	if strings.HasPrefix(a, "@") {
		if i := strings.IndexByte(a, ':'); i >= 0 {
			a = a[i+1:]
		}
	}
	return a
}

func trusted(nets []netip.Prefix, ip netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// nopObserver stands in when Options.Observer is nil.
type nopObserver struct{}

func (nopObserver) ConnOpened()                             {}
func (nopObserver) ConnClosed()                             {}
func (nopObserver) SPFResult(string, string, time.Duration) {}
func (nopObserver) Permerror(string, string)                {}
func (nopObserver) Action(string, string)                   {}
func (nopObserver) ShadowDifference(string, string)         {}
func (nopObserver) Error(string)                            {}
func (nopObserver) DKIMRescue(string)                       {}
