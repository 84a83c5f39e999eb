// Package milter is spfmilter's session handler for the milter protocol: it
// collects the SMTP facts, asks spf for verdicts, applies the policy and
// writes the headers.
package milter

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/spfmilter/spfmilter/spf"
)

// Action is what the milter does with a message after a verdict.
type Action string

// The actions.
const (
	ActionAccept   Action = "accept" // mark with headers and let it through
	ActionReject   Action = "reject"
	ActionTempfail Action = "tempfail"
)

// Policy maps each identity's result to an action; a missing entry means accept.
type Policy struct {
	MailFrom map[spf.Result]Action
	HELO     map[spf.Result]Action
}

// Config is the reloadable part of the milter's behaviour. A *Config is
// never modified after it is handed to the Server.
type Config struct {
	Checker           *spf.Checker
	Policy            Policy
	AuthservID        string // "" means the MTA's j macro, then the host name
	HideReceiver      bool
	TrustedNetworks   []netip.Prefix
	SkipAuthenticated bool
	DryRun            bool
	// RejectText is the reply text template; see the package docs for its
	// placeholders.
	RejectText string
}

// Observer receives the events metrics count. Labels are small fixed sets.
type Observer interface {
	ConnOpened()
	ConnClosed()
	// SPFResult is called once per evaluated identity ("helo", "mailfrom").
	SPFResult(identity, result string, d time.Duration)
	// Action is called once per message: action is "accept", "reject",
	// "tempfail" or "skip"; reason is "" or, for skip, "trusted_network" or
	// "authenticated"; dry-run verdicts report the action they would take
	// with reason "dry_run".
	Action(action, reason string)
	// Error counts failures by milter stage ("connect", "helo", "mail",
	// "header", "eom").
	Error(stage string)
}

// Options are fixed for the life of a Server.
type Options struct {
	Config         *Config
	Logger         *slog.Logger
	Observer       Observer      // may be nil
	IdleTimeout    time.Duration // per-connection read idle timeout; 0 = none
	MaxConnections int           // 0 = unlimited
}

// Server accepts milter connections.
type Server struct {
	_ struct{}
}

// NewServer returns a Server ready to Serve.
func NewServer(o Options) *Server { panic("not implemented yet") }

// SetConfig atomically replaces the config; new messages use it.
func (s *Server) SetConfig(c *Config) { panic("not implemented yet") }

// Serve accepts connections on ln until Shutdown; it then returns nil.
func (s *Server) Serve(ln net.Listener) error { panic("not implemented yet") }

// Shutdown stops accepting, lets in-flight sessions finish until ctx is done,
// then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error { panic("not implemented yet") }

// ActiveConnections is the number of open milter connections.
func (s *Server) ActiveConnections() int { panic("not implemented yet") }
