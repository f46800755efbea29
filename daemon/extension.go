package daemon

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records/calendar"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// Extension is what a role adds to the common wiring of a node (config,
// certificates, transport, replication, local API). The station role is
// built in; the district center (package center) plugs in here, so this
// package does not depend on it.
type Extension interface {
	// Start is called once the replication node is open, before the API
	// serves. Goroutines it starts are its own; Close stops them.
	Start(h Host) error
	// Routes adds the role's HTTP endpoints (and its page at "GET /{$}").
	Routes(mux *http.ServeMux)
	// ServeFeed answers a feed stream (transport.KindFeed) from peer.
	ServeFeed(c net.Conn, peer pki.Identity)
	// Close stops what Start started; called before the node closes.
	Close() error
}

// Enroller is an Extension that enrolls new nodes (the center): it
// answers enrollment connections (transport.EnrollALPN).
type Enroller interface {
	ServeEnroll(c net.Conn, remote net.Addr)
}

// Host is what a running node offers an Extension.
type Host interface {
	Config() Config
	Node() *replication.Node
	Transport() *transport.Transport
	Location() *time.Location
	Calendar() *calendar.Calendar
	Logger() *slog.Logger
}

// Option configures a Daemon.
type Option func(*Daemon)

// WithExtension plugs a role into the daemon (required for role center).
func WithExtension(e Extension) Option { return func(d *Daemon) { d.ext = e } }

// Config returns the node's configuration.
func (d *Daemon) Config() Config { return d.cfg }

// Transport returns the node's QUIC transport.
func (d *Daemon) Transport() *transport.Transport { return d.tr }

// Location returns the district's time zone.
func (d *Daemon) Location() *time.Location { return d.loc }

// Calendar returns the holiday calendar.
func (d *Daemon) Calendar() *calendar.Calendar { return d.cal.Load() }

// Logger returns the node's logger.
func (d *Daemon) Logger() *slog.Logger { return d.logger }

func (d *Daemon) isCenter() bool { return d.cfg.Role == "center" }
