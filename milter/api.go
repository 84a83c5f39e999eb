// Package milter is spfmilter's session handler for the milter protocol: it
// collects the SMTP facts, asks spf for verdicts, applies the policy and
// writes the headers.
//
// An MTA opens one milter connection per SMTP session and reports each SMTP
// step over it (connect, HELO, MAIL FROM, header fields, end of message).
// The milter evaluates SPF at MAIL FROM — the HELO identity first, then
// MAIL FROM (RFC 7208 §2.3, §2.4) — so a rejection happens before DATA. The
// HELO result is computed once per HELO name and reused for the following
// messages of the connection. Both checks of one MAIL command share one
// deadline, the checker's Timeout (check_timeout), so the MTA has its
// answer within that time of sending MAIL whatever DNS does; its milter
// timeout for MAIL must be longer. A HELO that names no domain (empty, an
// address literal, one label) is not checked (RFC 7208 §2.3): it is
// reported as not checked, left out of Authentication-Results, and no
// Policy.HELO entry applies to it. Every MAIL FROM starts a new verdict;
// ABORT (RSET, STARTTLS, a rejection) forgets the current one.
//
// With Config.DKIMRescue on, a MAIL FROM reject waits for the end of the
// message (see Rescue): the connection asks the MTA for the body, which is
// collected (up to the verifier's byte bound) only for such messages and
// answered and dropped for all others; at end of message the reject is
// either sent then, with the same reply, or the message is accepted with
// the dkim= results and the rescue noted in its headers.
//
// A reject or tempfail is answered with an SMFIR_REPLYCODE reply (RFC 7372:
// fail, softfail, neutral, none → 550 5.7.23; permerror → 550 5.7.24;
// temperror → 451 4.7.24 when deferred). Its text is Config.RejectText, see
// expandReply for the placeholders ({result}, {identity}, {domain},
// {sender}, {ip}, {helo}, {explanation}); it is sanitised to one line of
// printable ASCII of at most 200 bytes ('§' spelt "section"; see
// sanitizeReply for why never UTF-8), with '%' doubled as both MTAs expect.
// An accepted message gets Received-SPF and Authentication-Results at the top
// of its header at end of message; Authentication-Results fields that carry
// our authserv-id are deleted first (RFC 8601 §5), also for skipped messages.
//
// SPF is skipped, with a log line and Observer.Action("skip", reason), for
// clients in Config.TrustedNetworks ("trusted_network"), SASL-authenticated
// sessions when Config.SkipAuthenticated is set ("authenticated"), and when
// the MTA gives no client address at all, as `sendmail -bs` does
// ("no_client_ip"). Skipped messages get no SPF headers.
//
// go-milter v0.5.0 starts a fresh handler after any final answer (accept,
// reject, discard, tempfail), which would lose the connection's IP and HELO.
// This package therefore never sends one: rejections are SMFIR_REPLYCODE,
// which the library treats as non-final, and the end of message is answered
// with continue, which both Postfix and Sendmail take as accept.
package milter

import (
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/spfmilter/spfmilter/dkim"
	"github.com/spfmilter/spfmilter/spf"
)

// Action is what the milter does with a message after a verdict.
type Action string

// The actions.
const (
	ActionAccept   Action = "accept" // mark with headers and let it through
	ActionReject   Action = "reject"
	ActionTempfail Action = "tempfail"
	// ActionQuarantine accepts the message with its headers and asks the
	// MTA to hold it at end of message (SMFIR_QUARANTINE: Postfix's hold
	// queue, Sendmail's quarantine).
	ActionQuarantine Action = "quarantine"
)

// Policy maps each identity's result to an action; a missing entry means
// accept. A permerror is looked up by its cause first (MailFromPermerror,
// HELOPermerror), then as a result.
type Policy struct {
	MailFrom          map[spf.Result]Action
	HELO              map[spf.Result]Action
	MailFromPermerror map[spf.Cause]Action
	HELOPermerror     map[spf.Cause]Action
}

// Uses says whether any entry of p is a.
func (p Policy) Uses(a Action) bool {
	for _, m := range []map[spf.Result]Action{p.MailFrom, p.HELO} {
		for _, v := range m {
			if v == a {
				return true
			}
		}
	}
	for _, m := range []map[spf.Cause]Action{p.MailFromPermerror, p.HELOPermerror} {
		for _, v := range m {
			if v == a {
				return true
			}
		}
	}
	return false
}

// Config is the reloadable part of the milter's behaviour. A *Config is
// never modified after it is handed to the Server.
type Config struct {
	Checker    *spf.Checker
	Policy     Policy
	AuthservID string // "" means the MTA's j macro, then HostName
	// HostName is this host's name, taken when the configuration is built;
	// the authserv-id when neither AuthservID nor the j macro gives one,
	// "localhost" when it is empty too.
	HostName string
	// Receiver is Received-SPF's receiver (RFC 7208 §9.1); "" means the
	// authserv-id in use. HideReceiver leaves it out.
	Receiver          string
	HideReceiver      bool
	TrustedNetworks   []netip.Prefix
	SkipAuthenticated bool
	DryRun            bool
	// RejectText is the reply text template; see the package docs for its
	// placeholders.
	RejectText string
	// DKIMRescue is the dkim_rescue setting ("" is RescueOff); DKIM
	// verifies the signatures when it is on (nil turns it off).
	DKIMRescue Rescue
	DKIM       *dkim.Verifier
	// NeverRejectRecipients are the recipients a reject or tempfail never
	// applies to: "local@domain", "@domain" (every address of the domain)
	// or "local@" (that local-part at every domain), lower-case. When it is
	// set and the policy can reject or defer, the refusal moves from MAIL
	// FROM to RCPT TO (see RcptStage).
	NeverRejectRecipients []string
	// ForwarderDomains exempt a client from any action but accept when it
	// passes SPF for one of them; AllowHELO when its HELO identity passes
	// SPF and is one of them. Names are lower-case A-labels without the
	// trailing dot.
	ForwarderDomains []string
	AllowHELO        []string
	// TrustedRelays are the relays whose clients are checked from the
	// Received field the relay added, at end of message (see Relay).
	TrustedRelays []Relay
	// Shadow, when not nil, is a candidate policy: its Policy,
	// ForwarderDomains and AllowHELO are applied to the same outcomes
	// beside this one's, and never acted on (Decision.Shadow). Its other
	// fields are not used.
	Shadow *Config
}

// RcptStage says whether the milter needs the MTA's RCPT TO stage: only
// when a refusal can move there (see NeverRejectRecipients). Otherwise the
// MTA is told to skip it, as before the setting existed.
func (cfg *Config) RcptStage() bool {
	return cfg != nil && !cfg.DryRun && len(cfg.NeverRejectRecipients) > 0 &&
		(cfg.Policy.Uses(ActionReject) || cfg.Policy.Uses(ActionTempfail))
}

// refusesAtMail says whether MAIL FROM can be answered with anything but
// continue under cfg: a reject or tempfail that does not move to RCPT TO.
// When it cannot, the MTA is told not to wait for the answer
// (SMFIP_NR_MAIL).
func (cfg *Config) refusesAtMail() bool {
	return cfg != nil && !cfg.DryRun && !cfg.RcptStage() &&
		(cfg.Policy.Uses(ActionReject) || cfg.Policy.Uses(ActionTempfail))
}

// NeverReject says whether rcpt, an envelope address without angle
// brackets, is one of NeverRejectRecipients. Addresses compare without
// regard to case: RFC 5321 §4.5.1 makes "postmaster" case-insensitive, and
// sites treat their other local-parts alike.
func (cfg *Config) NeverReject(rcpt string) bool {
	rcpt = strings.ToLower(rcpt)
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 {
		// RFC 5321 §4.1.1.3: the bare "Postmaster" recipient.
		rcpt, at = rcpt+"@", len(rcpt)
	}
	local, domain := rcpt[:at+1], rcpt[at:]
	for _, p := range cfg.NeverRejectRecipients {
		if p == rcpt || p == domain || p == local {
			return true
		}
	}
	return false
}

// Observer receives the events metrics count. Labels are small fixed sets.
type Observer interface {
	ConnOpened()
	ConnClosed()
	// SPFResult is called once per evaluated identity (IdentityLabels):
	// result is the RFC 7208 result, or ResultNotChecked for a HELO that
	// names no domain (then d is the time taken to find that out). A HELO
	// result reused for a later message of the same connection is not
	// evaluated again and not reported again.
	SPFResult(identity, result string, d time.Duration)
	// Permerror is called with SPFResult for each permerror, with its
	// cause (one of CauseLabels).
	Permerror(identity, cause string)
	// Action is called once per message: action is one of ActionLabels;
	// reason is "" or, for ActionSkip, one of SkipReasons
	// (SkipUnconfigured is also counted as Error(StageMail)); dry-run
	// verdicts report the action they would take with reason ReasonDryRun;
	// an accept has ReasonNeverReject, ExemptForwarder, ExemptAllowHELO or
	// ReasonRelayNoReceived when one of those spared the message a
	// refusal. Reject and tempfail are reported when answered (MAIL FROM,
	// the first refused RCPT TO, or the end of a relayed message), the
	// others at end of message, so a transaction aborted before its end is
	// not counted. A message refused at RCPT TO for some recipients and
	// delivered to spared ones is reported twice: reject, then accept with
	// ReasonNeverReject. A message that waits for its DKIM signatures
	// (dkim_rescue) is reported at end of message whatever its action.
	Action(action, reason string)
	// ShadowDifference is called once per message whose shadow verdict
	// (Config.Shadow) differs from the live one, with both actions (the
	// Action constants).
	ShadowDifference(live, shadow string)
	// Error counts failures by milter stage (StageLabels): StageMail,
	// StageEOM, and StageConnection for a connection closed for a size
	// bound or a timeout (idle, packet or session).
	Error(stage string)
	// DKIMRescue is called once per message that waited for its end
	// under dkim_rescue, with what the signatures decided
	// (RescueLabels).
	DKIMRescue(outcome string)
}

// Values the Observer is called with besides the Action constants and the
// spf results. metrics builds its label sets from these lists.
const (
	// ActionSkip is the Observer's action for a message SPF was not
	// evaluated for; it is never a Policy entry.
	ActionSkip = "skip"
	// ReasonDryRun is the reason of every action of a dry run.
	ReasonDryRun = "dry_run"
	// ReasonNeverReject is the reason of an accept at end of message for a
	// message the policy refused at RCPT TO, delivered to the recipients
	// of NeverRejectRecipients only.
	ReasonNeverReject = "never_reject_recipient"
	// The exemptions (Decision.Exempt), also the reasons of the accepts
	// they give.
	ExemptForwarder = "forwarder"
	// ReasonRelayNoReceived: a message from a trusted relay without a
	// usable Received field of that relay; it is checked as the relay's
	// own, marked and never refused.
	ReasonRelayNoReceived = "relay_no_received"
	ExemptAllowHELO       = "allow_helo"
	// ResultNotChecked is the result reported for a HELO identity that
	// names no domain (spf.Outcome.NotChecked): no check ran.
	ResultNotChecked = "not_checked"
	// The milter stages an Error is counted at. StageConnection is a
	// connection closed for a size bound or a timeout.
	StageMail       = "mail"
	StageEOM        = "eom"
	StageConnection = "connection"
)

// IdentityLabels are the identities SPFResult reports.
func IdentityLabels() []string {
	return []string{string(spf.IdentityHELO), string(spf.IdentityMailFrom)}
}

// ActionLabels are the actions Action reports.
func ActionLabels() []string {
	return []string{string(ActionAccept), string(ActionReject), string(ActionTempfail), string(ActionQuarantine), ActionSkip}
}

// CauseLabels are the permerror causes Permerror reports.
func CauseLabels() []string {
	var out []string
	for _, c := range spf.Causes() {
		out = append(out, string(c))
	}
	return out
}

// SkipReasons are the reasons Action reports with ActionSkip.
func SkipReasons() []string {
	return []string{SkipTrustedNetwork, SkipAuthenticated, SkipNoClientIP, SkipUnconfigured}
}

// StageLabels are the stages Error reports.
func StageLabels() []string { return []string{StageMail, StageEOM, StageConnection} }

// Options are fixed for the life of a Server.
type Options struct {
	Config   *Config
	Logger   *slog.Logger
	Observer Observer // may be nil
	// IdleTimeout bounds the wait for the MTA's next packet and for the MTA
	// to take our answer; 0 = none. PacketTimeout bounds the time from a
	// packet's first byte to its last, however slowly it trickles in;
	// SessionTimeout bounds a connection's whole life. 0 = none.
	IdleTimeout    time.Duration
	PacketTimeout  time.Duration
	SessionTimeout time.Duration
	// MaxConnections caps the open milter connections; 0 = unlimited.
	// Connections beyond it wait in the listen backlog (see NewServer).
	MaxConnections int

	clock func() time.Time // for tests; nil is time.Now
}
