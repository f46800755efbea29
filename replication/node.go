package replication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/internal/slot"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/logstore"
	"github.com/stationsync/stationsync/replication/sealed"
	"github.com/stationsync/stationsync/replication/transport"
)

// Errors a caller can act on.
var (
	// ErrNoLeader: no leader could be reached in time; the write was not
	// made. Case writes fall back to the outbox (Record).
	ErrNoLeader = errors.New("no leader reachable")
	// ErrOutcomeUnknown: the write went to the leader but its answer was
	// lost (the link broke); it may or may not be made. Repeating it with
	// the same ids is safe.
	ErrOutcomeUnknown = errors.New("the leader did not answer")
	// ErrClosed: the node is shutting down.
	ErrClosed = errors.New("node closed")
	// ErrTooLarge: the ops do not fit one raft entry.
	ErrTooLarge = errors.New("write too large")
)

// Config configures a Node. Zero durations take the LAN defaults below.
type Config struct {
	NodeID  string
	Station string
	DataDir string
	// Peers are static peer QUIC addresses (host:port).
	Peers []string
	// Discover returns the peers announced by discovery (mDNS); nil for
	// static peers only. Called about once a second.
	Discover func() []Hint
	// Expect is how many nodes (this one included) must answer before the
	// first bootstrap.
	Expect int
	// BootstrapWindow: on a first start, how long to wait for Expect nodes.
	// After it, the lowest node id bootstraps with the nodes seen if they
	// are a majority of Expect (default 30s).
	BootstrapWindow time.Duration
	// RemoveUnreachableAfter removes a member the leader could not reach
	// for this long, when quorum stays safe; 0 (default) never does.
	RemoveUnreachableAfter time.Duration

	HeartbeatTimeout time.Duration // default 500ms
	ElectionTimeout  time.Duration // default 500ms
	// LeaderLeaseTimeout, default HeartbeatTimeout (its most): a leader
	// that has not heard from a quorum for this long steps down. It also
	// spaces the heartbeats (heartbeatInterval).
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration // default 500ms: a fallback; followers learn of commits at once (kickCommit)
	SnapshotInterval   time.Duration // default 2m
	// SnapshotAfterStart: how long after raft starts (Open, ResumeWrites)
	// the node checks whether its log needs a snapshot (snapshotIfBehind),
	// default 30s. Not at once: a PC that was off catches up first (a
	// snapshot writes the whole state, and would compete with it).
	SnapshotAfterStart time.Duration
	SnapshotThreshold  uint64 // default 8192 entries
	TrailingLogs       uint64 // default 10240 entries
	// ApplyTimeout bounds one write end to end (default 10s).
	ApplyTimeout time.Duration
	// OutboxAfter: a case write not committed through a leader within it
	// waits in the node's outbox (default 2s; outbox.go).
	OutboxAfter time.Duration
	// Location is the district's time zone, for monthly digests (UTC if
	// nil).
	Location *time.Location
	// EncryptionKey (32 bytes) encrypts the raft log, the state store and
	// the snapshots at rest; nil stores them in the clear.
	EncryptionKey []byte
	// RaftTransport: nil runs raft over the node's QUIC transport;
	// benchmarks set hashicorp's TCP transport to compare. Raft server
	// addresses double as QUIC addresses (forwarding, probes, joins), so
	// its LocalAddr must equal the QUIC AdvertiseAddr: a TCP listener on
	// the same host:port does (TCP and UDP ports are separate), and Open
	// refuses any other. Forwarding, feeds and probes stay on QUIC. The
	// node closes it in Close.
	RaftTransport raft.Transport
	// StateOptions adjusts the state store's badger options (nil: the
	// sizes of logstore.Options, for a station PC). The center's store
	// holds a district: logstore.ForDistrict.
	StateOptions func(badger.Options) badger.Options
	// CachedHeads is how many case heads the state machine keeps decoded
	// between writes (records.HeadCache; 0: records.DefaultCachedHeads,
	// for a station). The center merges the open cases of a whole
	// district.
	CachedHeads int

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	def(&c.CommitTimeout, 500*time.Millisecond)
	def(&c.SnapshotInterval, 2*time.Minute)
	def(&c.SnapshotAfterStart, 30*time.Second)
	def(&c.ApplyTimeout, 10*time.Second)
	def(&c.BootstrapWindow, 30*time.Second)
	def(&c.OutboxAfter, 2*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Expect <= 0 {
		c.Expect = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Node is one station node: raft, its stores, group commit, forwarding and
// bootstrap. New does no I/O; Open starts it; Close stops everything it
// started and is safe to call twice.
type Node struct {
	cfg    Config
	tr     *transport.Transport
	logger *slog.Logger

	logs      *logstore.Store
	stateDB   *badger.DB
	stateGC   *logstore.GC
	fsm       *fsm
	snapshots raft.SnapshotStore
	raftNet   raft.Transport
	raftp     atomic.Pointer[raftRun] // replaced when writes resume after a pause (diskpause.go)
	hl        hclog.Logger

	stateMu sync.Mutex
	stateCh chan struct{} // closed and replaced at each raft state change (StateChanged)

	pauseMu sync.Mutex  // serializes PauseWrites and ResumeWrites
	paused  atomic.Bool // writes paused (diskpause.go)
	kick    kicker      // tells followers a write committed (commit.go)

	submitC chan *request
	ready   chan struct{} // closed once raft runs: RPCs wait for it
	closing chan struct{}
	wg      sync.WaitGroup

	// Callers that read or write the stores from outside the node's own
	// goroutines (the transport's feed and RPC handlers, the center's
	// catalogue handler) hold the node open (hold/release): Close waits
	// for them before it closes the stores, so none reads a closed badger
	// (its tables unmapped under the read: the process dies of SIGSEGV).
	usersMu sync.Mutex
	closed  bool
	users   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	bootstraps atomic.Uint64 // times this process bootstrapped a cluster

	reachMu     sync.Mutex
	reachable   map[string]time.Time     // node id -> last successful probe
	noted       map[string]bool          // log-once keys already logged (unverified peers, false announcements)
	clockOffset map[string]time.Duration // node id -> its clock minus ours, at the last probe

	outbox *outbox

	ctx    context.Context // ends when the node closes
	cancel context.CancelFunc
}

// bounded returns a context that ends after d or when the node closes.
func (n *Node) bounded(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(n.ctx, d)
}

// New returns a node that will use tr for raft and forwarding. It
// registers its RPC handler on tr, so call it before tr.Open.
func New(cfg Config, tr *transport.Transport) *Node {
	cfg.setDefaults()
	n := &Node{
		cfg:         cfg,
		tr:          tr,
		logger:      cfg.Logger.With("component", "replication"),
		submitC:     make(chan *request, 1024),
		ready:       make(chan struct{}),
		closing:     make(chan struct{}),
		stateCh:     make(chan struct{}),
		reachable:   map[string]time.Time{},
		noted:       map[string]bool{},
		clockOffset: map[string]time.Duration{},
		kick:        kicker{wake: make(chan struct{}, 1)},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	tr.Handle(transport.KindRPC, n.serveRPC)
	return n
}

// Open opens the stores, starts raft and the node's goroutines, and begins
// forming or joining the cluster in the background.
func (n *Node) Open() (err error) {
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	key := n.cfg.EncryptionKey
	// A damaged store is refused before badger sees it (damage.go).
	if errs := checkStores(n.cfg, true); len(errs) > 0 {
		return errs[0]
	}
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	n.logs, err = logstore.OpenEncrypted(raftDir, key, n.logger)
	if err != nil {
		return fmt.Errorf("open raft log: %w", openFailure(StoreRaft, raftDir, err))
	}
	if n.outbox, err = openOutbox(n.logs.DB()); err != nil {
		return err
	}
	// The state store is not fsynced per write: the raft log is (one fsync
	// per entry, like etcd's WAL). After a crash the state may lack its
	// last applies; raft replays them from the log, and when the state is
	// behind the last snapshot (whose entries the log may have dropped)
	// raft restores the snapshot first (see NoSnapshotRestoreOnStart
	// below).
	stateDir := filepath.Join(n.cfg.DataDir, "state")
	stateOpts := logstore.ForState(logstore.Options(stateDir, false, n.logger))
	if n.cfg.StateOptions != nil {
		stateOpts = n.cfg.StateOptions(stateOpts)
	}
	// The state machine is the store's only writer, and it commits
	// without waiting for a commit to be written (fsm.commit), which
	// badger's conflict detection would refuse.
	stateOpts = stateOpts.WithDetectConflicts(false)
	n.stateDB, err = badger.Open(logstore.WithKey(stateOpts, key))
	if err != nil {
		return fmt.Errorf("open state store: %w", openFailure(StoreState, stateDir, logstore.KeyError(stateDir, key, err)))
	}
	n.stateGC = logstore.StartGC(n.stateDB, 5*time.Minute, n.logger)
	n.fsm, err = newFSM(n.stateDB, n.logger, n.cfg.CachedHeads)
	if err != nil {
		return fmt.Errorf("open state store: %w", err)
	}
	hl := newHCLog(n.logger)
	files, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(n.cfg.DataDir, "snapshots"), 2, hl)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	n.removeUnfinishedSnapshots(filepath.Join(n.cfg.DataDir, "snapshots", "snapshots"))
	n.snapshots = files
	if key != nil {
		if n.snapshots, err = sealed.NewSnapshotStore(files, key); err != nil {
			return fmt.Errorf("open snapshot store: %w", err)
		}
	}
	n.hl = hl
	if n.raftNet = n.cfg.RaftTransport; n.raftNet == nil {
		n.raftNet = n.newRaftNet()
	} else if a := string(n.raftNet.LocalAddr()); a != n.tr.AdvertiseAddr() {
		return fmt.Errorf("raft transport at %s: must be at the QUIC address %s", a, n.tr.AdvertiseAddr())
	}

	if err := n.startRaft(hl); err != nil {
		return err
	}
	close(n.ready)
	n.logger.Info("node open", "node", n.cfg.NodeID, "station", n.cfg.Station, "address", n.tr.AdvertiseAddr(), "applied_index", n.fsm.applied.Load())

	n.wg.Add(5)
	go n.runOutbox()
	go n.runBatcher()
	go n.runFormation()
	go n.runMonitor()
	go n.runTableVerifier()
	return nil
}

// raftRPCsInFlight turns raft's pipelined replication off (below 2 the
// network transport refuses to pipeline, and raft replicates with one
// AppendEntries at a time per follower, each carrying up to
// MaxAppendEntries entries). hashicorp/raft v1.8's pipeline can deadlock:
// when a follower answers with a newer term or a refusal, pipelineDecode
// returns and nobody reads the pipeline's answers any more; the
// transport's decoder then blocks handing one over, the next send blocks
// handing its request to the decoder, and the follower's replication
// goroutine never returns. That follower gets heartbeats but no entries
// while this node leads, and raft's Shutdown waits for that goroutine for
// ever: the chaos run found a PC stuck in PauseWrites so (it had just
// read "peer has newer term, stopping replication"). grafana/pyroscope
// met the same (their PR 5518) and turned pipelining off too.
const raftRPCsInFlight = 1

// removeUnfinishedSnapshots removes the folders of snapshots a killed
// process left half-written (raft's FileSnapshotStore writes a snapshot
// into "<name>.tmp" and renames it when complete). Raft ignores them but
// never removes them, so a PC killed during snapshots would collect
// them. Called before raft starts: no snapshot is being written.
func (n *Node) removeUnfinishedSnapshots(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // none yet
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			n.logger.Warn("remove an unfinished snapshot", "dir", p, "error", err)
			continue
		}
		n.logger.Info("removed an unfinished snapshot (the process stopped while writing it)", "dir", p)
	}
}

// newRaftNet is raft's transport over the node's QUIC transport. Raft
// closes it when it shuts down (and the QUIC raft layer with it).
func (n *Node) newRaftNet() raft.Transport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          n.tr.RaftLayer(),
		MaxPool:         3,
		Timeout:         5 * time.Second,
		Logger:          n.hl,
		MaxRPCsInFlight: raftRPCsInFlight,
	})
}

// r is the node's raft instance (nil before Open).
func (n *Node) r() *raft.Raft {
	if rr := n.raftp.Load(); rr != nil {
		return rr.Raft
	}
	return nil
}

// run is the node's current raft run (raftrun.go): wait on its futures
// with its wait.
func (n *Node) run() *raftRun { return n.raftp.Load() }

// heartbeatInterval is the least time between two heartbeats of the
// leader to a follower; raft randomises each wait between it and twice it
// (third_party/raft, PATCHES.md). Upstream sends them every tenth of the
// heartbeat timeout, which makes heartbeats most of an idle station's
// work: each one wakes a dozen goroutines on both PCs over QUIC. A
// quarter still gives a follower at least two heartbeats in every
// heartbeat timeout, and a third of the lease at least one answer from
// each follower in every lease, so neither times out while the leader is
// up.
func heartbeatInterval(heartbeatTimeout, leaderLease time.Duration) time.Duration {
	return min(heartbeatTimeout/4, leaderLease/3)
}

// startRaft starts a raft instance on the node's stores, FSM and
// transport: at Open, and again when writes resume after a pause.
func (n *Node) startRaft(hl hclog.Logger) error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.HeartbeatInterval = heartbeatInterval(n.cfg.HeartbeatTimeout, n.cfg.LeaderLeaseTimeout)
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.Logger = hl
	// The FSM state is durable in badger: restoring the last snapshot on
	// start would only rewrite it. Restore only if the state is behind the
	// snapshot (a store copied in from elsewhere, say). The FSM records the
	// last entry it saw; a snapshot's index may be a later barrier or no-op
	// it never sees, and those put the state behind nothing.
	if metas, err := n.snapshots.List(); err == nil && (len(metas) == 0 || n.fsm.applied.Load() >= metas[0].Index ||
		n.onlyUnseenEntries(n.fsm.applied.Load(), metas[0].Index, 1024)) {
		rc.NoSnapshotRestoreOnStart = true
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft config: %w", err)
	}
	r, err := raft.NewRaft(rc, n.fsm, n.logs, n.logs, n.snapshots, n.raftNet)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raftp.Store(newRaftRun(r, n.raftNet))
	r.RegisterObserver(raft.NewObserver(nil, false, n.observeState))
	n.stateChanged() // a new run: whoever waits looks at it
	return nil
}

// observeState runs in raft's goroutine at each observation: a change of
// the raft state (after raft has set it) wakes StateChanged's waiters. It
// sends nothing, so raft never waits on it.
func (n *Node) observeState(o *raft.Observation) bool {
	if _, ok := o.Data.(raft.RaftState); ok {
		n.stateChanged()
	}
	return false
}

func (n *Node) stateChanged() {
	n.stateMu.Lock()
	close(n.stateCh)
	n.stateCh = make(chan struct{})
	n.stateMu.Unlock()
}

// StateChanged returns a channel that is closed at the next change of the
// node's raft state (to follower, candidate, leader or shut down). Take it
// before looking at IsLeader and wait on it instead of polling: a node
// just elected starts its leader's work at once.
func (n *Node) StateChanged() <-chan struct{} {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	return n.stateCh
}

// snapshotIfBehind takes a snapshot when the log the run started with
// held SnapshotThreshold entries or more after the last snapshot (what
// the run wrote since is raft's own check's). Raft checks only every
// SnapshotInterval (2 to 4 minutes) of a run, and every new run (a
// restart, writes resumed after a pause) starts that clock again: a PC
// restarted or paused more often than that never took a snapshot, its
// log grew without end, and each start took longer, because raft.NewRaft
// reads every entry after the last snapshot (210,000 entries took 20 s
// in the 30-minute chaos run).
func (n *Node) snapshotIfBehind(rr *raftRun) {
	last := rr.startLast
	var snap uint64
	if metas, err := n.snapshots.List(); err == nil && len(metas) > 0 {
		snap = metas[0].Index
	}
	if last < snap+n.cfg.SnapshotThreshold {
		return
	}
	start := time.Now()
	if err := rr.wait(rr.Snapshot()); err != nil {
		n.logger.Warn("snapshot after start", "entries_since_last", last-snap, "error", err)
		return
	}
	n.logger.Info("snapshot taken after start", "entries_since_last", last-snap, "took", time.Since(start).Round(time.Millisecond))
}

// Close stops the node: its goroutines, raft, and the stores. The
// transport is the caller's to close (after Close).
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.closing)
		n.cancel()
		n.usersMu.Lock()
		n.closed = true
		n.usersMu.Unlock()
		n.users.Wait()
		n.wg.Wait()
		var errs []error
		if rr := n.run(); rr != nil {
			if err := n.stopLogging(rr, "close"); err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		if c, ok := n.raftNet.(raft.WithClose); ok {
			c.Close()
		}
		if n.fsm != nil {
			n.fsm.drain() // raft has stopped: its last commit is written, its next transaction discarded
		}
		if n.stateGC != nil {
			n.stateGC.Stop()
		}
		if n.stateDB != nil {
			if err := n.stateDB.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close state store: %w", err))
			}
		}
		if n.logs != nil {
			if err := n.logs.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close raft log: %w", err))
			}
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// hold keeps Close from closing the stores until release; false (hold
// nothing) once Close has begun. Holds may nest.
func (n *Node) hold() bool {
	n.usersMu.Lock()
	defer n.usersMu.Unlock()
	if n.closed {
		return false
	}
	n.users.Add(1)
	return true
}

func (n *Node) release() { n.users.Done() }

// View runs fn with a consistent read-only view of this node's state.
func (n *Node) View(fn func(records.Reader) error) error {
	if !n.hold() {
		return ErrClosed
	}
	defer n.release()
	return n.stateDB.View(func(txn *badger.Txn) error { return fn(txnReader{txn}) })
}

// FeedPage is a page of the change feed.
type FeedPage struct {
	ClusterID string       `json:"cluster_id"`
	Changes   []FeedChange `json:"changes"`
	// Next is the since to ask for the following page: the last seq
	// returned, or since itself when nothing is newer.
	Next uint64 `json:"next"`
	// Head is the last seq of the feed when the page was read.
	Head uint64 `json:"head"`
}

// Feed returns up to limit changes with seq > since, in seq order.
func (n *Node) Feed(since uint64, limit int) (FeedPage, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if !n.hold() {
		return FeedPage{}, ErrClosed
	}
	defer n.release()
	page := FeedPage{ClusterID: n.fsm.clusterID.Load().(string), Changes: []FeedChange{}, Next: since}
	err := n.stateDB.View(func(txn *badger.Txn) error {
		var err error
		if page.Head, err = getUint64(txn, keySeq); err != nil {
			return err
		}
		if id, err := getBytes(txn, keyClusterID); err != nil {
			return err
		} else if len(id) > 0 {
			page.ClusterID = string(id)
		}
		opts := iterOptions(prefixFeed)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(feedKey(since + 1)); it.ValidForPrefix(prefixFeed) && len(page.Changes) < limit; it.Next() {
			var fc FeedChange
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &fc) }); err != nil {
				return fmt.Errorf("read feed: %w", err)
			}
			if fc.Ref != "" {
				data, err := getBytes(txn, []byte(fc.Ref))
				if err != nil {
					return fmt.Errorf("read feed change %d: %w", fc.Seq, err)
				}
				if data == nil {
					return fmt.Errorf("read feed change %d: the record it refers to (%q) is not in the store", fc.Seq, fc.Ref)
				}
				fc.Data, fc.Ref = data, ""
			}
			page.Changes = append(page.Changes, fc)
			page.Next = fc.Seq
		}
		return nil
	})
	return page, err
}

// Member is one server of the raft configuration.
type Member struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Suffrage  string `json:"suffrage"` // voter | nonvoter
	Reachable bool   `json:"reachable"`
	// ClockOffsetMS is how far the member's wall clock was ahead of this
	// node's (negative: behind) at the last probe, in milliseconds; 0 for
	// this node or a member not reached yet.
	ClockOffsetMS int64 `json:"clock_offset_ms"`
}

// Status is a snapshot of the node's replication state.
type Status struct {
	Node          string   `json:"node"`
	Station       string   `json:"station"`
	Address       string   `json:"address"`
	State         string   `json:"state"`
	Term          uint64   `json:"term"`
	Leader        string   `json:"leader"`
	LeaderAddress string   `json:"leader_address"`
	AppliedIndex  uint64   `json:"applied_index"`
	CommitIndex   uint64   `json:"commit_index"`
	LastLogIndex  uint64   `json:"last_log_index"`
	Members       []Member `json:"members"`
	ClusterID     string   `json:"cluster_id"`
	Seq           uint64   `json:"seq"`
	// EntriesApplied counts raft entries applied (not skipped) since this
	// process opened the store.
	EntriesApplied uint64 `json:"entries_applied"`
	// Bootstrapped is true when this process bootstrapped the cluster.
	Bootstrapped bool `json:"bootstrapped"`
	// Outbox is the writes waiting in this node's outbox.
	Outbox OutboxStatus `json:"outbox"`
}

// OutboxStatus is the depth of a node's outbox and when its oldest write
// was queued (zero when empty).
type OutboxStatus struct {
	Pending int       `json:"pending"`
	Oldest  time.Time `json:"oldest,omitzero"`
}

// appliedIndex is the index up to which this node's state holds every
// entry. The FSM records the last command it applied (fsm, the index it
// was given); raft's applied index also counts the entries the FSM never
// sees (no-ops, barriers) but runs ahead of the FSM by whatever raft has
// handed it and it has not applied yet (many entries while catching up).
// So raft's index counts only when every entry between the two is one the
// FSM does not see.
func (n *Node) appliedIndex(fsmApplied uint64) uint64 {
	raftApplied := n.r().AppliedIndex()
	if raftApplied > fsmApplied && n.onlyUnseenEntries(fsmApplied, raftApplied, 64) {
		return raftApplied
	}
	return fsmApplied
}

// onlyUnseenEntries reports whether every log entry after from up to to
// is one the FSM never sees (no-op, barrier): at most limit of them, all
// still in the log.
func (n *Node) onlyUnseenEntries(from, to, limit uint64) bool {
	if to <= from || to-from > limit {
		return false
	}
	var l raft.Log
	for i := from + 1; i <= to; i++ {
		if err := n.logs.GetLog(i, &l); err != nil {
			return false // compacted or unreadable: do not claim it
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// AppliedIndex is Status().AppliedIndex without the rest of Status (raft's
// stats and configuration, which wake raft's main loop): cheap to poll.
func (n *Node) AppliedIndex() uint64 {
	applied := n.fsm.applied.Load()
	if n.r() == nil {
		return applied
	}
	return n.appliedIndex(applied)
}

// Status reports the node's replication state.
func (n *Node) Status() Status {
	st := Status{
		Node:           n.cfg.NodeID,
		Station:        n.cfg.Station,
		Address:        n.tr.AdvertiseAddr(),
		AppliedIndex:   n.AppliedIndex(),
		ClusterID:      n.fsm.clusterID.Load().(string),
		Seq:            n.fsm.seq.Load(),
		EntriesApplied: n.fsm.entriesApplied.Load(),
		Bootstrapped:   n.bootstraps.Load() > 0,
		Members:        []Member{},
	}
	if n.outbox != nil {
		st.Outbox.Pending, st.Outbox.Oldest = n.outbox.stats()
	}
	if n.r() == nil {
		st.State = "starting"
		return st
	}
	st.State = stateName(n.r().State())
	addr, id := n.r().LeaderWithID()
	st.Leader, st.LeaderAddress = string(id), string(addr)
	stats := n.r().Stats()
	st.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	st.CommitIndex, _ = strconv.ParseUint(stats["commit_index"], 10, 64)
	st.LastLogIndex, _ = strconv.ParseUint(stats["last_log_index"], 10, 64)
	if f := n.r().GetConfiguration(); f.Error() == nil {
		n.reachMu.Lock()
		for _, s := range f.Configuration().Servers {
			m := Member{ID: string(s.ID), Address: string(s.Address), Suffrage: "voter"}
			if s.Suffrage != raft.Voter {
				m.Suffrage = "nonvoter"
			}
			last := n.reachable[m.ID]
			m.Reachable = m.ID == n.cfg.NodeID || time.Since(last) < reachableFor
			m.ClockOffsetMS = n.clockOffset[m.ID].Milliseconds()
			st.Members = append(st.Members, m)
		}
		n.reachMu.Unlock()
	}
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

// IsLeader says whether this node is the raft leader now.
func (n *Node) IsLeader() bool { return n.r() != nil && n.r().State() == raft.Leader }

// Snapshot forces a raft snapshot (and log truncation past TrailingLogs).
func (n *Node) Snapshot() error {
	rr := n.run()
	return rr.wait(rr.Snapshot())
}

// WaitLeader waits until some node is known as leader.
func (n *Node) WaitLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, id := n.r().LeaderWithID(); id != "" {
			return string(id), nil
		}
		select {
		case <-ctx.Done():
			return "", ErrNoLeader
		case <-n.closing:
			return "", ErrClosed
		case <-t.C:
		}
	}
}

// runMonitor, every monitorEvery (on the slot clock, so an idle node
// wakes for it together with raft's heartbeats): gives the cluster its id
// once it has a leader, probes the members every probeEvery ticks so
// Status can say which are reachable (within reachableFor), and on the
// leader does the membership housekeeping (membership.go).
// probeEvery: members are probed every 3 s (two probes fit reachableFor);
// an idle station's probes are a good part of its CPU.
const (
	monitorEvery = 750 * time.Millisecond
	probeEvery   = 4
)

func (n *Node) runMonitor() {
	defer n.wg.Done()
	t := slot.NewTimer(monitorEvery)
	defer t.Stop()
	tick := -1 // probe at the first tick
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
			t.Next()
		}
		if n.r().State() == raft.Leader && n.fsm.clusterID.Load().(string) == "" {
			n.applyInit()
		}
		if tick++; tick%probeEvery == 0 {
			n.probeMembers()
		}
		// The check after start, once the run has applied what its log
		// held at the start (a snapshot is taken at the applied index:
		// before the replay it would not cover the log it is meant to),
		// or a minute later at the latest (a tail of the log that the
		// leader replaced is never applied).
		if rr := n.run(); time.Since(rr.started) >= n.cfg.SnapshotAfterStart &&
			(rr.AppliedIndex() >= rr.startLast || time.Since(rr.started) >= n.cfg.SnapshotAfterStart+time.Minute) &&
			rr.snapChecked.CompareAndSwap(false, true) {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.snapshotIfBehind(rr)
			}()
		}
		if n.r().State() == raft.Leader {
			n.admitDiscovered()
			n.reapUnreachable()
		}
	}
}

func (n *Node) applyInit() {
	data, err := encodeEnvelope(envelope{Init: &initCommand{ClusterID: newClusterID()}})
	if err != nil {
		return
	}
	rr := n.run()
	if err := rr.wait(rr.Apply(data, n.cfg.ApplyTimeout)); err != nil {
		n.logger.Warn("name the cluster", "error", err)
	}
}

func newClusterID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (n *Node) probeMembers() {
	f := n.r().GetConfiguration()
	if f.Error() != nil {
		return
	}
	ids := map[string]string{} // address -> id
	var addrs []string
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != n.cfg.NodeID {
			ids[string(s.Address)] = string(s.ID)
			addrs = append(addrs, string(s.Address))
		}
	}
	for _, r := range n.probe(addrs, time.Second) {
		if r.err == nil {
			n.reachMu.Lock()
			n.reachable[ids[r.addr]] = time.Now()
			n.clockOffset[ids[r.addr]] = r.offset
			n.reachMu.Unlock()
		}
	}
}

// probeResult is one peer's answer to an info probe.
type probeResult struct {
	addr string
	info *peerInfo
	err  error
	// offset is the peer's clock minus ours: its time in the answer
	// against the middle of the round trip here.
	offset time.Duration
}

// probe asks every address for its info, concurrently, each within
// timeout. The identity in each answer was proven by the peer's
// certificate (the QUIC handshake admits only this station's nodes).
func (n *Node) probe(addrs []string, timeout time.Duration) []probeResult {
	out := make([]probeResult, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			in, err := n.info(addr, timeout)
			out[i] = probeResult{addr: addr, info: in, err: err}
			if err == nil {
				mid := start.Add(time.Since(start) / 2)
				out[i].offset = time.UnixMilli(in.UnixMilli).Sub(mid)
			}
		}()
	}
	wg.Wait()
	return out
}

// addMember adds a verified node of this station as planAdmission says. A
// known id at a new address is removed first and re-added at the new one.
func (n *Node) addMember(id, address string) error {
	if id == "" || address == "" {
		return errors.New("join: node id and address are required")
	}
	rr := n.run()
	f := rr.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	for _, s := range servers {
		if string(s.ID) != id {
			continue
		}
		if string(s.Address) == address {
			return nil // already a member
		}
		n.logger.Info("member moved: re-adding at its new address", "member", id, "old", s.Address, "new", address)
		if err := rr.wait(rr.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout)); err != nil {
			return fmt.Errorf("remove %s before re-adding: %w", id, err)
		}
		if f = rr.GetConfiguration(); f.Error() != nil {
			return f.Error()
		}
		servers = f.Configuration().Servers
	}
	plan := planAdmission(servers, raft.ServerID(id))
	for _, p := range plan.Promote {
		for _, s := range servers {
			if s.ID == p {
				if err := rr.wait(rr.AddVoter(s.ID, s.Address, 0, n.cfg.ApplyTimeout)); err != nil {
					return fmt.Errorf("promote %s to voter: %w", p, err)
				}
				n.logger.Info("member promoted to voter", "member", p)
			}
		}
	}
	var fut raft.IndexFuture
	if plan.Suffrage == raft.Voter {
		fut = rr.AddVoter(raft.ServerID(id), raft.ServerAddress(address), 0, n.cfg.ApplyTimeout)
	} else {
		fut = rr.AddNonvoter(raft.ServerID(id), raft.ServerAddress(address), 0, n.cfg.ApplyTimeout)
	}
	if err := rr.wait(fut); err != nil {
		return fmt.Errorf("add %s at %s: %w", id, address, err)
	}
	n.logger.Info("member added", "member", id, "address", address, "voter", plan.Suffrage == raft.Voter)
	return nil
}
