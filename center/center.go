// Package center is the district center's role: it pulls every station's
// change feed into one consolidated store, publishes the district's item
// catalogue down to the stations, and shows the district on a dashboard
// and in monthly reports.
//
// The center is a node like a station's (the same binary, config,
// certificates, QUIC transport and replication node: one PC, or three for
// a center that must survive a PC's loss); this package plugs into the
// daemon as its Extension. The consolidated store is the center node's
// replicated state: each station's records under its own key space
// (records.StationReader), and per station a cursor. A pull writes a page
// of a station's feed and the new cursor as one replicated op, so each
// page is taken exactly once (records/consolidate.go).
package center

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stationsync/stationsync/configs/holidays"
	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/calendar"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// Center is the district center's part of a center node.
type Center struct {
	node   *replication.Node
	tr     *transport.Transport
	loc    *time.Location
	cal    *calendar.Calendar
	logger *slog.Logger

	stations      []daemon.StationRef
	interval      time.Duration
	nodeID        string
	workOrderDays int
	clock         *records.Clock
	caDir         string
	certValidity  time.Duration
	maxBody       int64 // limits.max_body_bytes: the bound of a request body

	mu    sync.Mutex
	state map[string]*pullState // by station id

	// digestSlot (capacity 1): one station's digests are computed at a
	// time, center-wide (verify).
	digestSlot chan struct{}

	mirror   mirrorState
	settings records.Settings // for every station: work-order due time, holiday calendar

	ready  chan struct{}   // closed by Start
	stop   chan struct{}   // closed by Close
	base   context.Context // ends at Close: every call's context derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns the center's extension for daemon.WithExtension.
func New() *Center {
	c := &Center{state: map[string]*pullState{}, ready: make(chan struct{}), stop: make(chan struct{}), logger: slog.New(slog.DiscardHandler),
		digestSlot: make(chan struct{}, 1)}
	c.base, c.cancel = context.WithCancel(context.Background())
	return c
}

// Start begins one pull loop per station of the config.
func (c *Center) Start(h daemon.Host) error {
	cfg := h.Config()
	c.node, c.tr, c.loc, c.cal = h.Node(), h.Transport(), h.Location(), h.Calendar()
	c.logger = h.Logger().With("component", "center")
	c.stations, c.interval = cfg.Stations, time.Duration(cfg.PullInterval)
	c.nodeID, c.workOrderDays, c.clock = cfg.NodeID, cfg.WorkOrderDays, records.NewClock(nil)
	c.caDir, c.certValidity = cfg.CADir, time.Duration(cfg.CertValidity)
	c.maxBody = cfg.Limits.MaxBodyBytes
	if c.caDir != "" {
		if _, err := pki.CAFingerprint(c.caDir); err != nil {
			return fmt.Errorf("ca_dir: %w", err)
		}
	}
	if len(c.stations) == 0 {
		return errors.New("no stations configured")
	}
	settings, err := districtSettings(cfg)
	if err != nil {
		return err
	}
	c.settings = settings
	for _, st := range c.stations {
		ps := &pullState{station: st.ID, addresses: st.Addresses}
		c.state[st.ID] = ps
		c.wg.Add(1)
		go c.runPull(ps)
	}
	if cfg.PostgresURL != "" {
		c.mirror.enabled = true
		c.wg.Add(1)
		go c.runMirror(cfg.PostgresURL)
	}
	close(c.ready)
	c.logger.Info("district center running", "stations", len(c.stations), "pull_interval", c.interval)
	return nil
}

// Close stops the pull loops.
func (c *Center) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		c.cancel()
	}
	c.wg.Wait()
	return nil
}

// ServeFeed answers a station's catalogue fetch: the district items newer
// than the versions it holds.
func (c *Center) ServeFeed(conn net.Conn, peer pki.Identity) {
	select {
	case <-c.ready:
	case <-c.stop:
		conn.Close()
		return
	case <-time.After(5 * time.Second):
	}
	replication.ServeFeedWith(conn, peer, c.logger, func(req replication.FeedRequest) replication.FeedResponse {
		select {
		case <-c.ready:
		default:
			return replication.FeedResponse{Code: "starting", Error: "the center is starting"}
		}
		if peer.Role != pki.RoleStation {
			return replication.FeedResponse{Code: "refused", Error: fmt.Sprintf("%s %s may not fetch the catalogue: station nodes only", peer.Role, peer.Node)}
		}
		if req.Method == replication.FeedMethodRenew {
			return c.renew(peer, req.CSR)
		}
		if req.Method != replication.FeedMethodCatalogue {
			return replication.FeedResponse{Code: "invalid", Error: fmt.Sprintf("the center does not serve %q", req.Method)}
		}
		var delta replication.CatalogueDelta
		err := c.node.View(func(r records.Reader) (err error) {
			if delta.Items, err = records.ItemsNewerThan(r, req.Have); err != nil {
				return err
			}
			delta.Events, err = records.CenterEventsAfter(r, peer.Station, req.EventsAfter, 200)
			return err
		})
		if req.SettingsVersion != c.settings.Version {
			s := c.settings
			delta.Settings = &s
		}
		if err != nil {
			return replication.FeedResponse{Code: "internal", Error: err.Error()}
		}
		c.noteCatalogue(peer.Station)
		return replication.FeedResponse{Catalogue: &delta}
	})
}

// noteCatalogue records a station's catalogue fetch as a contact.
func (c *Center) noteCatalogue(station string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.state[station]; ok {
		ps.catalogueAt = time.Now()
	}
}

// districtSettings are the settings the center gives every station: its
// work_order_days and the holiday calendar, the embedded year files with
// those of holidays_dir (if set) added or replacing them.
func districtSettings(cfg daemon.Config) (records.Settings, error) {
	files, err := holidays.Default()
	if err != nil {
		return records.Settings{}, err
	}
	if cfg.HolidaysDir != "" {
		names, err := filepath.Glob(filepath.Join(cfg.HolidaysDir, "*.yaml"))
		if err != nil {
			return records.Settings{}, err
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				return records.Settings{}, fmt.Errorf("holidays_dir: %w", err)
			}
			files[filepath.Base(n)] = b
		}
	}
	if _, err := calendar.Parse(files); err != nil {
		return records.Settings{}, fmt.Errorf("holiday calendar: %w", err)
	}
	s := records.Settings{WorkOrderDays: cfg.WorkOrderDays, Holidays: map[string]string{}}
	for n, b := range files {
		s.Holidays[n] = string(b)
	}
	s.Seal()
	return s, nil
}
