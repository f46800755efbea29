package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // station PCs (Windows) may have no zoneinfo

	"github.com/dgraph-io/badger/v4"

	"github.com/stationsync/stationsync/configs/holidays"
	"github.com/stationsync/stationsync/discovery"
	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/records/calendar"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/logstore"
	"github.com/stationsync/stationsync/replication/sealed"
	"github.com/stationsync/stationsync/replication/transport"
)

// Version is stamped at build time (-ldflags -X).
var Version = "dev"

// NewLogger returns the node's slog logger as the config asks.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Daemon is one running node. New does no I/O; Open starts the pieces in
// order; Close stops them in reverse and is safe to call twice.
type Daemon struct {
	cfg      Config
	logger   *slog.Logger
	loc      *time.Location
	cal      atomic.Pointer[calendar.Calendar] // the center's calendar once fetched, else the embedded one
	wod      atomic.Int64                      // work-order due days: the center's setting, else the config's
	setVer   atomic.Value                      // version of the center's settings in use ("" for none)
	renewErr atomic.Value                      // the last certificate renewal error ("" for none)
	clock    *records.Clock
	token    string
	start    time.Time

	tls  *pki.TLS
	tr   *transport.Transport
	disc *discovery.Discovery
	node *replication.Node
	api  *http.Server
	ln   net.Listener
	// pprof serves the profiling endpoints when the config asks (nil: off).
	pprof *pprofServer
	wg    sync.WaitGroup

	metrics    *metrics
	disk       *diskGuard    // stops writes before data_dir's disk is full (diskguard.go)
	importSlot chan struct{} // one item-list import at a time
	ext        Extension     // the center's part; nil for a station
	center     centerContact // a station's contact with the center

	stop      chan struct{}   // closed by Close: the daemon's own goroutines end
	base      context.Context // ends at Close: the daemon's calls derive from it
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

// New returns a daemon for cfg (already validated by LoadConfig).
func New(cfg Config, logger *slog.Logger, opts ...Option) *Daemon {
	station := cfg.StationID
	if cfg.Role == "center" {
		station = "(center)"
	}
	d := &Daemon{cfg: cfg, logger: logger.With("node", cfg.NodeID, "station", station), importSlot: make(chan struct{}, 1), stop: make(chan struct{})}
	d.base, d.cancel = context.WithCancel(context.Background())
	for _, o := range opts {
		o(d)
	}
	return d
}

// Open starts the node: certificates, then the QUIC transport, then the
// replication node (which forms or joins the cluster in the background),
// then the local API.
func (d *Daemon) Open() (err error) {
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	d.start = time.Now()
	if d.loc, err = time.LoadLocation(d.cfg.Timezone); err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	files, err := holidays.Default()
	if err != nil {
		return fmt.Errorf("holiday calendar: %w", err)
	}
	cal, err := calendar.Parse(files)
	if err != nil {
		return fmt.Errorf("holiday calendar: %w", err)
	}
	d.cal.Store(cal)
	d.wod.Store(int64(d.cfg.WorkOrderDays))
	d.setVer.Store("")
	d.renewErr.Store("")
	d.clock = records.NewClock(wallClock)
	if d.cfg.APITokenFile != "" {
		b, err := os.ReadFile(d.cfg.APITokenFile)
		if err != nil {
			return fmt.Errorf("api_token_file: %w", err)
		}
		if d.token = strings.TrimSpace(string(b)); d.token == "" {
			return fmt.Errorf("api_token_file %s is empty", d.cfg.APITokenFile)
		}
	}
	if err := os.MkdirAll(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}

	// 1. The encryption key: created on the first start only, so a lost key
	// is never silently replaced while an encrypted store exists.
	key, err := d.encryptionKey()
	if err != nil {
		return err
	}

	// 2. Certificates: the node's identity must match the config.
	d.tls, err = pki.LoadTLS(d.cfg.TLS.CA, d.cfg.TLS.Cert, d.cfg.TLS.Key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	id := d.tls.Identity()
	if d.isCenter() {
		if d.ext == nil {
			return errors.New("role center: this program was built without the center")
		}
		if id.Role != pki.RoleCenter || id.Node != d.cfg.NodeID {
			return fmt.Errorf("tls: certificate %s names %s %s/%s, but the config says center node %s (issue one with ca issue --role center)",
				d.cfg.TLS.Cert, id.Role, id.Station, id.Node, d.cfg.NodeID)
		}
	} else if id.Role != pki.RoleStation || id.Station != d.cfg.StationID || id.Node != d.cfg.NodeID {
		return fmt.Errorf("tls: certificate %s names %s %s/%s, but the config says station %s node %s",
			d.cfg.TLS.Cert, id.Role, id.Station, id.Node, d.cfg.StationID, d.cfg.NodeID)
	}

	// 3. QUIC transport, and the node that registers its handlers on it.
	advertise := d.cfg.Advertise
	if advertise == "" {
		advertise = detectAdvertise(d.cfg.Listen, d.cfg.Peers, upInterfaceAddrs)
		if advertise != "" {
			d.logger.Info("advertise address detected; set advertise: in the config if peers cannot reach it", "advertise", advertise)
		}
	}
	d.tr, err = transport.New(transport.Config{
		Listen:                d.cfg.Listen,
		Advertise:             advertise,
		TLS:                   d.tls,
		Station:               d.cfg.StationID,
		StatelessResetKeyFile: filepath.Join(d.cfg.DataDir, "quic-reset.key"),
		Logger:                d.logger,
	})
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	r := d.cfg.Raft
	d.node = replication.New(replication.Config{
		NodeID:                 d.cfg.NodeID,
		Station:                d.cfg.StationID,
		DataDir:                d.cfg.DataDir,
		Peers:                  d.cfg.Peers,
		Discover:               d.discoveredHints,
		Location:               d.loc,
		Expect:                 d.cfg.Expect,
		BootstrapWindow:        time.Duration(d.cfg.BootstrapWindow),
		RemoveUnreachableAfter: time.Duration(d.cfg.RemoveUnreachableAfter),
		OutboxAfter:            time.Duration(d.cfg.OutboxAfter),
		HeartbeatTimeout:       time.Duration(r.HeartbeatTimeout),
		ElectionTimeout:        time.Duration(r.ElectionTimeout),
		LeaderLeaseTimeout:     time.Duration(r.LeaderLeaseTimeout),
		CommitTimeout:          time.Duration(r.CommitTimeout),
		SnapshotInterval:       time.Duration(r.SnapshotInterval),
		SnapshotThreshold:      r.SnapshotThreshold,
		TrailingLogs:           r.TrailingLogs,
		EncryptionKey:          key,
		StateOptions:           d.stateOptions(),
		CachedHeads:            d.cachedHeads(),
		Logger:                 d.logger,
	}, d.tr)
	if d.isCenter() {
		d.tr.Handle(transport.KindFeed, d.ext.ServeFeed)
		if e, ok := d.ext.(Enroller); ok {
			d.tr.HandleEnroll(e.ServeEnroll)
		}
	} else {
		d.tr.Handle(transport.KindFeed, d.serveFeed)
	}
	if err := d.tr.Open(); err != nil {
		return fmt.Errorf("transport: listen on %s: %w", d.cfg.Listen, err)
	}

	// 4. Discovery: mDNS announces this node and finds the others; the
	// replication node reads what it found.
	if err := d.openDiscovery(); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}

	// 5. Replication: stores and raft. The clock starts past every
	// timestamp this PC wrote or applied, whatever its wall clock says.
	if err := d.node.Open(); err != nil {
		var sd *replication.StoreDamagedError
		if errors.As(err, &sd) {
			return &StoreDamagedError{Err: sd, ConfigFile: d.cfg.file}
		}
		return err
	}
	latest, err := d.node.LatestHLC()
	if err != nil {
		return fmt.Errorf("read the latest timestamp: %w", err)
	}
	d.clock.Observe(latest)
	d.useSettings()
	if d.isCenter() {
		if err := d.ext.Start(d); err != nil {
			return fmt.Errorf("center: %w", err)
		}
	} else if d.cfg.Center != "" {
		d.wg.Add(2)
		go d.runCatalogue()
		go d.runRenewal()
	}

	// The disk guard: its first check runs now, before the API takes
	// writes.
	d.disk = newDiskGuard(d.cfg.DataDir, d.cfg.DiskReserveMB, doctorDiskFree)
	d.wg.Add(2)
	go d.runDiskGuard()
	go d.runIdleTrim()

	// 6. Local API.
	d.metrics = newMetrics(d)
	d.ln, err = net.Listen("tcp", d.cfg.API)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", d.cfg.API, err)
	}
	d.api = &http.Server{
		Handler:           d.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn),
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.api.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logger.Error("api server", "error", err)
		}
	}()
	if d.cfg.Pprof != "" {
		if d.pprof, err = startPprof(d.cfg.Pprof, d.logger); err != nil {
			return err
		}
	}
	d.logger.Info("stationsync node running", "version", Version, "api", d.APIURL(), "quic", d.tr.AdvertiseAddr())
	return nil
}

// encryptionKey loads the key for encryption at rest, creating it (0600)
// when neither it nor a store exists yet.
func (d *Daemon) encryptionKey() ([]byte, error) {
	path := d.cfg.EncryptionKeyFile
	storeExists := false
	for _, sub := range []string{"raft", "state"} {
		if _, err := os.Stat(filepath.Join(d.cfg.DataDir, sub)); err == nil {
			storeExists = true
		}
	}
	key, err := sealed.LoadOrCreateKey(path, !storeExists)
	if err != nil {
		if storeExists && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("encryption_key_file %s is missing but the store in %s is encrypted with it: restore the key file (a new key cannot read the store)", path, d.cfg.DataDir)
		}
		return nil, fmt.Errorf("encryption_key_file: %w", err)
	}
	if ok, err := sealed.KeyFilePermsOK(path); err == nil && !ok {
		d.logger.Warn("encryption key file is readable by other users: chmod 600 it", "file", path)
	}
	return key, nil
}

// Run opens the daemon, waits for ctx to end, and closes it.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Open(); err != nil {
		return err
	}
	<-ctx.Done()
	return d.Close()
}

// Close stops the API, then the node, then the transport.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		if d.pprof != nil {
			if err := d.pprof.stop(); err != nil {
				errs = append(errs, fmt.Errorf("pprof shutdown: %w", err))
			}
		}
		if d.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := d.api.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("api shutdown: %w", err))
			}
			cancel()
		}
		close(d.stop)
		d.cancel()
		if d.ext != nil {
			if err := d.ext.Close(); err != nil {
				errs = append(errs, fmt.Errorf("center close: %w", err))
			}
		}
		d.wg.Wait()
		if d.node != nil {
			if err := d.node.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.disc != nil {
			if err := d.disc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("discovery close: %w", err))
			}
		}
		if d.tr != nil {
			if err := d.tr.Close(); err != nil {
				errs = append(errs, fmt.Errorf("transport close: %w", err))
			}
		}
		d.closeErr = errors.Join(errs...)
		d.logger.Info("stationsync node stopped")
	})
	return d.closeErr
}

// bounded returns a context that ends after dur or when the daemon closes.
func (d *Daemon) bounded(dur time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.base, dur)
}

// APIURL is the base URL of the local API.
func (d *Daemon) APIURL() string {
	if d.ln == nil {
		return ""
	}
	return "http://" + d.ln.Addr().String()
}

// Node returns the replication node (for tests and the demo).
func (d *Daemon) Node() *replication.Node { return d.node }

// stateOptions sizes the state store: the center's holds every
// station's records (logstore.ForDistrict; a read missing its index
// cache decrypts a whole table index, and with a station PC's 2 MiB the
// center benchmark spent 13 % of its CPU there); a station PC's keeps
// logstore's defaults.
func (d *Daemon) stateOptions() func(badger.Options) badger.Options {
	if d.isCenter() {
		return logstore.ForDistrict
	}
	return nil
}

// centerCachedHeads: the center merges pages of a hundred stations in
// turn, each with its own open cases; 16,384 decoded heads are a few tens
// of MiB beside the center's gigabyte-sized store.
const centerCachedHeads = 16384

// cachedHeads is how many case heads the state machine keeps decoded
// (replication.Config.CachedHeads).
func (d *Daemon) cachedHeads() int {
	if d.isCenter() {
		return centerCachedHeads
	}
	return 0
}
