package main

// Section "footprint": an idle station of three `stationsync run`
// processes holding 1,000,000 case events, beside a 3-member etcd holding
// 1,000,000 keys of the same size: cold start, idle RSS and CPU over the
// same window, data on disk, binary size, and the failover of both with
// that much data.
//
// The station is filled through the Go API in-process (HTTP takes one
// event per request): the three nodes are opened as `stationsync run`
// opens them from the station.yaml newStation wrote (fpOpen: the data
// folder, the encryption key file and the QUIC reset key are where the
// processes look for them), the events are submitted on the leader, many
// per Submit, and the nodes are closed; then the real processes start on
// those folders.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/etcd/api/v3/version"

	"github.com/stationsync/stationsync/pki"
	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/sealed"
	"github.com/stationsync/stationsync/replication/transport"
)

func init() {
	addSection(section{name: "footprint", run: runFootprint, markdown: footprintMarkdown})
}

const (
	fpEventsFull  = 1_000_000
	fpEventsSmoke = 2_000
	fpIdleFull    = 10 * time.Minute
	fpIdleSmoke   = 2 * time.Second
	// fpTail: the idle CPU is also reported over the last minute of the
	// window, once whatever the start left to do (compactions) is done.
	fpTail = time.Minute
	// fpDataBytes is the size of an event's data ({"note":"..."}, random
	// letters so that badger's compression does not flatter the disk
	// size); the stored event (ids, times, type) is about twice that.
	fpDataBytes = 200
	// One Submit carries fpCasesPerSubmit whole cases (a creation and
	// eventsPerCase events each, 51 ops, ~25 KiB): a case's ops never
	// race with each other across concurrent Submits. fpSubmitters
	// Submits run at once; the batcher may put two in one raft entry, so
	// an entry stays below badger's 64 KiB value threshold as a real
	// station's entries do (larger values would go to the raft log's
	// value log).
	fpCasesPerSubmit = 3
	fpSubmitters     = 4
	// fpTrailingLogs: raft.trailing_logs of the loading nodes only. A
	// station that took a million events one per request keeps its last
	// 10,240 entries (10,240 events) after a snapshot; with ~50 events
	// per entry the same number of entries would keep a quarter of the
	// store in the raft log, so the loaders keep 256 entries (~13K
	// events) and each takes a snapshot at the end.
	fpTrailingLogs = 256
)

// fpProc is one process's usage over the idle window.
type fpProc struct {
	Name               string
	CPU, CPULast       float64 // % of one core over the window, over its last minute
	RSS, Anon, File    int64   // at the end of the window
	PeakRSS, StartRSS  int64   // max during the window; right after the cold start
	HeapInuse, GoSys   int64   // Go runtime (from /metrics) at the end of the window
	NextGC, Goroutines int64
	CtxSwitches        float64       // per second over the window, all threads
	ColdAPI, ColdRead  time.Duration // process start to the API answering / a local read
	ColdQuorum         time.Duration // etcd: to a linearizable Get
	Disk               int64         // data folder, allocated blocks
	Restored           bool          // stationsync: restored its snapshot at the cold start
	DiskParts          []fpPart
	metricsURL, stName string
}

type fpPart struct {
	Name  string
	Bytes int64
}

// fpSystem is one side of the comparison.
type fpSystem struct {
	Procs      []fpProc
	LoadTook   time.Duration
	Keys       int // events (stationsync) or keys (etcd) stored
	Cases      int
	Entries    uint64        // stationsync: raft log index after the load
	Retries    int           // stationsync: Submits repeated after a leader change during the load
	LeaderAt   time.Duration // stationsync: first process start to an agreed leader
	BinSize    int64
	BinNote    string
	Failovers  []time.Duration
	FailErrors int
}

type footprintResult struct {
	Ran        bool
	Events     int
	EventBytes int // JSON size of one stored event (the etcd value size)
	Idle       time.Duration
	St, Etcd   fpSystem
	Profile    string // where the optional idle profile went (footprint_profile.go)
	Heap       string // heap profile of the station node with the most RSS at the end of the idle window
}

func fpEvent(typ, caseID, node string, clock *records.Clock, rnd *rand.Rand) records.Event {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	note := make([]byte, fpDataBytes-len(`{"note":""}`))
	for i := range note {
		note[i] = letters[rnd.IntN(len(letters))]
	}
	ev := records.Event{Type: typ, Actor: "bench", Data: json.RawMessage(`{"note":"` + string(note) + `"}`)}
	records.PrepareEvent(&ev, caseID, node, clock.Now())
	return ev
}

// fpEventType is the type of a case's k-th event (0-based), as the write
// workload posts them: accepted, then paused and resumed in turn.
func fpEventType(k int) string {
	switch {
	case k == 0:
		return records.EventAccepted
	case k%2 == 1:
		return records.EventPaused
	default:
		return records.EventResumed
	}
}

func runFootprint(rep *report, root string, smoke bool) {
	res := &rep.sec.footprint
	res.Ran = true
	res.Events, res.Idle = fpEventsFull, fpIdleFull
	failRuns := 10
	if smoke {
		res.Events, res.Idle, failRuns = fpEventsSmoke, fpIdleSmoke, 1
	}
	// For working on the section: BENCH_FOOTPRINT_EVENTS=N and
	// BENCH_FOOTPRINT_IDLE=DURATION override the counts of the mode.
	if v, err := strconv.Atoi(os.Getenv("BENCH_FOOTPRINT_EVENTS")); err == nil && v > 0 {
		res.Events = v
	}
	if v, err := time.ParseDuration(os.Getenv("BENCH_FOOTPRINT_IDLE")); err == nil && v > 0 {
		res.Idle = v
	}
	// An event as stored, for the etcd value size.
	{
		ev := fpEvent(records.EventPaused, "fp-0000000", "pc-1", records.NewClock(nil), rand.New(rand.NewPCG(1, 2)))
		b, _ := json.Marshal(ev)
		res.EventBytes = len(b)
	}
	res.St.BinSize = rep.binSize
	if err := os.MkdirAll(root, 0o755); err != nil {
		rep.fail("footprint: %v", err)
		return
	}

	// 1. The station's store, through the Go API in-process.
	s, err := newStation(rep.bin, filepath.Join(root, "station"), 3)
	if err != nil {
		rep.fail("footprint: station setup: %v", err)
		return
	}
	defer s.killAll()
	t0 := time.Now()
	if err := fpLoadStation(s, res); err != nil {
		rep.fail("footprint: load the station: %v", err)
		return
	}
	res.St.LoadTook = time.Since(t0)
	fmt.Printf("bench: footprint: station loaded with %d events (%d cases, raft index %d, %d Submits repeated after a leader change) in %v\n", res.St.Keys, res.St.Cases, res.St.Entries, res.St.Retries, res.St.LoadTook.Round(time.Millisecond))

	// 2. etcd with as many keys of the size of a stored event, then
	// stopped for its cold start.
	eroot := filepath.Join(root, "etcd")
	os.MkdirAll(eroot, 0o755)
	e, err := startEtcd(eroot)
	if err != nil {
		rep.fail("footprint: etcd: %v", err)
		return
	}
	defer e.Close()
	t0 = time.Now()
	if err := fpLoadEtcd(e, res); err != nil {
		rep.fail("footprint: load etcd: %v", err)
		return
	}
	res.Etcd.LoadTook = time.Since(t0)
	fmt.Printf("bench: footprint: etcd loaded with %d keys of %d bytes in %v\n", res.Etcd.Keys, res.EventBytes, res.Etcd.LoadTook.Round(time.Millisecond))
	e.fpStopAll()

	// 3. Cold start of the station (etcd is down), then of etcd.
	if err := fpColdStation(s, res); err != nil {
		rep.fail("footprint: station cold start: %v", err)
		return
	}
	for _, p := range res.St.Procs {
		fmt.Printf("bench: footprint: %s: /v1/status after %v, /v1/cases?limit=1 after %v, RSS %s\n", p.Name, p.ColdAPI.Round(time.Millisecond), p.ColdRead.Round(time.Millisecond), mib(p.StartRSS))
	}
	fmt.Printf("bench: footprint: station leader agreed %v after the first process start\n", res.St.LeaderAt.Round(time.Millisecond))
	if err := fpColdEtcd(e, res); err != nil {
		rep.fail("footprint: etcd cold start: %v", err)
		return
	}
	for _, p := range res.Etcd.Procs {
		fmt.Printf("bench: footprint: %s: Status after %v, serializable Get after %v, linearizable Get after %v, RSS %s\n", p.Name, p.ColdAPI.Round(time.Millisecond), p.ColdRead.Round(time.Millisecond), p.ColdQuorum.Round(time.Millisecond), mib(p.StartRSS))
	}

	// 4. Both idle over the same window.
	fmt.Printf("bench: footprint: idle window of %v (both systems)\n", res.Idle)
	var pids []int
	var procs []*fpProc
	for i, n := range s.nodes {
		pids = append(pids, n.pid())
		res.St.Procs[i].metricsURL = n.url + "/metrics"
		procs = append(procs, &res.St.Procs[i])
	}
	for i, pid := range e.pids() {
		pids = append(pids, pid)
		res.Etcd.Procs[i].metricsURL = e.endpoints[i] + "/metrics"
		procs = append(procs, &res.Etcd.Procs[i])
	}
	if err := fpIdle(pids, procs, res.Idle); err != nil {
		rep.fail("footprint: idle: %v", err)
		return
	}
	for _, p := range procs {
		fmt.Printf("bench: footprint: %s idle: CPU %.2f%% (last part %.2f%%), RSS %s (anon %s, file %s, peak %s), Go heap in use %s, Go sys %s, %d goroutines\n",
			p.Name, p.CPU, p.CPULast, mib(p.RSS), mib(p.Anon), mib(p.File), mib(p.PeakRSS), mib(p.HeapInuse), mib(p.GoSys), p.Goroutines)
		fmt.Printf("bench: footprint: %s: next GC at %s heap, %.0f context switches/s\n", p.Name, mib(p.NextGC), p.CtxSwitches)
	}
	// A heap profile that cannot be had fails the run but not the rows.
	h, err := fpHeapProfile(s, res.St.Procs, smoke)
	if err != nil {
		rep.fail("footprint: heap profile: %v", err)
		h = fmt.Sprintf("No heap profile: %v", err)
	}
	res.Heap = h
	fmt.Printf("bench: footprint: %s\n", h)
	for i, n := range s.nodes {
		res.St.Procs[i].Disk, res.St.Procs[i].DiskParts = fpDisk(filepath.Join(n.dir, "data"), "raft", "state", "snapshots")
		res.St.Procs[i].DiskParts[2].Name = "snapshots (raft keeps 2)"
	}
	for i := range res.Etcd.Procs {
		dir := filepath.Join(eroot, fmt.Sprintf("e%d", i+1))
		res.Etcd.Procs[i].Disk, res.Etcd.Procs[i].DiskParts = fpDisk(dir, "member/snap/db", "member/wal")
	}

	// 5. Failover of both, with the data in place.
	for k := range failRuns {
		fr, err := s.failover()
		if err != nil {
			rep.fail("footprint: station failover %d: %v", k+1, err)
			break
		}
		fmt.Printf("bench: footprint: station failover %d: killed %s, write accepted (201) after %v\n", k+1, fr.Killed, fr.Took.Round(time.Millisecond))
		res.St.Failovers = append(res.St.Failovers, fr.Took)
		res.St.FailErrors += fr.Errors
		if err := s.restartNode(s.leaderIndexByID(fr.Killed)); err != nil {
			rep.fail("footprint: restart after failover: %v", err)
			break
		}
		time.Sleep(rep.Warmup)
	}
	for k := range failRuns {
		d, errs, killed, err := e.fpFailover()
		if err != nil {
			rep.fail("footprint: etcd failover %d: %v", k+1, err)
			break
		}
		fmt.Printf("bench: footprint: etcd failover %d: killed %s, put accepted after %v\n", k+1, killed, d.Round(time.Millisecond))
		res.Etcd.Failovers = append(res.Etcd.Failovers, d)
		res.Etcd.FailErrors += errs
		time.Sleep(rep.Warmup)
	}

	// 6. Optional: a CPU profile of the idle station in-process.
	if dir := os.Getenv("BENCH_FOOTPRINT_PROFILE"); dir != "" {
		s.killAll()
		e.fpStopAll()
		if err := fpProfileIdle(s, dir, res.Idle); err != nil {
			rep.fail("footprint: profile: %v", err)
		} else {
			res.Profile = dir
		}
	}

	// 7. etcd's binary, built like ours (not in smoke mode: a minute of
	// compiling).
	if smoke {
		res.Etcd.BinNote = "not built in smoke mode"
	} else if n, err := fpBuildEtcd(filepath.Join(root, "etcdbin")); err != nil {
		res.Etcd.BinNote = "build failed"
		fmt.Println("bench: footprint: etcd binary:", err)
	} else {
		res.Etcd.BinSize = n
	}
}

// ---- the station ----

// fpNode is one station node opened in this process.
type fpNode struct {
	node *replication.Node
	tr   *transport.Transport
	log  *os.File
}

// fpOpen opens node i of s in this process as `stationsync run` opens it
// with the station.yaml newStation wrote (daemon.Open: the key file
// data.key beside the config, created on the first start; the QUIC reset
// key in the data folder; the certificates; the district's default time
// zone; no advertise: the transport advertises its 127.0.0.1 listen
// address, as the daemon does for it). The daemon package is not linked
// into the bench (its dependencies are not in bench/go.mod); what it adds
// around the node (the HTTP API) is not used for loading. wrap runs the
// opening (pprof labels).
func fpOpen(s *station, i int, trailing uint64, wrap func(func())) (*fpNode, error) {
	n := s.nodes[i]
	var peers []string
	for _, m := range s.nodes {
		peers = append(peers, m.addr)
	}
	dataDir := filepath.Join(n.dir, "data")
	storeExists := false
	for _, sub := range []string{"raft", "state"} {
		if _, err := os.Stat(filepath.Join(dataDir, sub)); err == nil {
			storeExists = true
		}
	}
	key, err := sealed.LoadOrCreateKey(filepath.Join(n.dir, "data.key"), !storeExists)
	if err != nil {
		return nil, err
	}
	tl, err := pki.LoadTLS(filepath.Join(n.dir, "ca.crt"), filepath.Join(n.dir, "node.crt"), filepath.Join(n.dir, "node.key"))
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation("Asia/Shanghai") // daemon.DefaultConfig's timezone
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== bench: %s opened in the bench process at %s\n", n.id, time.Now().Format(time.RFC3339Nano))
	logger := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", n.id)
	tr, err := transport.New(transport.Config{Listen: n.addr, TLS: tl, Station: "BENCH-01", StatelessResetKeyFile: filepath.Join(dataDir, "quic-reset.key"), Logger: logger})
	if err != nil {
		logf.Close()
		return nil, err
	}
	node := replication.New(replication.Config{NodeID: n.id, Station: "BENCH-01", DataDir: dataDir, Peers: peers, Expect: len(s.nodes), Location: loc, TrailingLogs: trailing, EncryptionKey: key, Logger: logger}, tr)
	wrap(func() {
		if err = tr.Open(); err != nil {
			return
		}
		if err = node.Open(); err != nil {
			tr.Close()
		}
	})
	if err != nil {
		logf.Close()
		return nil, err
	}
	return &fpNode{node: node, tr: tr, log: logf}, nil
}

func (n *fpNode) Close() {
	n.node.Close()
	n.tr.Close()
	n.log.Close()
}

// fpOpenStation opens the three nodes of s in this process and waits for
// a leader; it returns the nodes, a function closing them, and the
// leader's index.
func fpOpenStation(s *station, trailing uint64, wrap func(i int, open func())) ([]*fpNode, func(), int, error) {
	var ns []*fpNode
	closeAll := func() {
		var wg sync.WaitGroup
		for _, n := range ns {
			wg.Add(1)
			go func() { defer wg.Done(); n.Close() }()
		}
		wg.Wait()
	}
	for i := range s.nodes {
		n, err := fpOpen(s, i, trailing, func(f func()) { wrap(i, f) })
		if err != nil {
			closeAll()
			return nil, nil, -1, fmt.Errorf("open %s: %w", s.nodes[i].id, err)
		}
		ns = append(ns, n)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range ns {
			if n.node.IsLeader() {
				return ns, closeAll, i, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	closeAll()
	return nil, nil, -1, errors.New("no leader within 60 s")
}

func fpLoadStation(s *station, res *footprintResult) error {
	ds, closeAll, li, err := fpOpenStation(s, fpTrailingLogs, func(_ int, open func()) { open() })
	if err != nil {
		return err
	}
	// For working on the section: BENCH_FOOTPRINT_LOADPROFILE=FILE
	// profiles the load (the three nodes, in this process).
	if p := os.Getenv("BENCH_FOOTPRINT_LOADPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	var retries atomic.Int64
	var cur atomic.Int32 // the leader's index, as last seen
	cur.Store(int32(li))
	ctx := context.Background()
	closed := false
	defer func() {
		if !closed {
			closeAll()
		}
	}()
	// submit writes ops on the current leader, again (same ids: a repeat
	// is answered as such) when leadership moved under the load.
	var last atomic.Uint64 // raft index of the last write
	submit := func(ops []records.Op) error {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			n := ds[cur.Load()].node
			for i, d := range ds {
				if d.node.IsLeader() {
					n = d.node
					cur.Store(int32(i))
				}
			}
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			rs, err := n.Submit(sctx, ops)
			cancel()
			if err != nil {
				// A follower's forward may come back as the leader's
				// message ("leader ...: no leader reachable ..."), not a
				// wrapped ErrNoLeader: everything but a refused write is
				// tried again.
				if time.Now().Before(deadline) && !errors.Is(err, replication.ErrTooLarge) && !errors.Is(err, replication.ErrClosed) {
					retries.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				return err
			}
			for j, r := range rs {
				if r.Error != nil {
					return fmt.Errorf("op %d (%s): %v", j, ops[j].Kind, r.Error)
				}
				for {
					l := last.Load()
					if r.Index <= l || last.CompareAndSwap(l, r.Index) {
						break
					}
				}
			}
			return nil
		}
	}
	it := records.Item{Code: "BENCH-0001", Name: "bench item", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}
	if err := submit([]records.Op{{Kind: records.OpPutItem, Item: &it}}); err != nil {
		return fmt.Errorf("put item: %w", err)
	}
	node := s.nodes[cur.Load()].id
	cases := (res.Events + eventsPerCase - 1) / eventsPerCase
	clock := records.NewClock(nil)
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range fpSubmitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				first := int(next.Add(fpCasesPerSubmit)) - fpCasesPerSubmit
				if first >= cases {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				var ops []records.Op
				nev := 0
				for c := first; c < min(first+fpCasesPerSubmit, cases); c++ {
					cse := records.Case{ID: fmt.Sprintf("fp-%07d", c), ItemCode: "BENCH-0001", Channel: "window", Actor: "bench", Applicant: records.Applicant{Kind: "person", Name: "bench"}}
					records.PrepareCase(&cse, "BENCH-01", node, clock.Now())
					ops = append(ops, records.Op{Kind: records.OpCreateCase, Case: &cse})
					for k := 0; k < eventsPerCase && c*eventsPerCase+k < res.Events; k++ {
						ev := fpEvent(fpEventType(k), cse.ID, node, clock, rnd)
						ops = append(ops, records.Op{Kind: records.OpAppendEvent, Event: &ev})
						nev++
					}
				}
				if err := submit(ops); err != nil {
					errOnce.Do(func() { firstErr = err; close(stop) })
					return
				}
				done.Add(int64(nev))
			}
		}()
	}
	progress := make(chan struct{})
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-progress:
				return
			case <-t.C:
				d := done.Load()
				fmt.Printf("bench: footprint: %d / %d events loaded (%.0f/s)\n", d, res.Events, float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	wg.Wait()
	close(progress)
	if firstErr != nil {
		return firstErr
	}
	res.St.Keys, res.St.Cases = int(done.Load()), cases
	// The followers apply what the leader did, then every node takes a
	// snapshot, which truncates its raft log to fpTrailingLogs entries.
	var target uint64
	for _, d := range ds {
		target = max(target, d.node.Status().AppliedIndex)
	}
	res.St.Entries, res.St.Retries = target, int(retries.Load())
	deadline := time.Now().Add(5 * time.Minute)
	for i, d := range ds {
		for d.node.Status().AppliedIndex < target {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not apply up to %d", s.nodes[i].id, target)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, d := range ds {
		if err := d.node.Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return fmt.Errorf("snapshot %s: %w", s.nodes[i].id, err)
		}
	}
	// One more write after the snapshots, applied everywhere, so the
	// measured start is that of a station that wrote since its last
	// snapshot. (Before 55cadc2 a snapshot ending in the barrier the leader
	// appends after each write made every start restore the whole
	// snapshot; Node.Open now skips barriers.) fpColdStation reports a
	// restore if one happens.
	if err := submit([]records.Op{{Kind: records.OpPutItem, Item: &it}}); err != nil {
		return fmt.Errorf("put item after the snapshots: %w", err)
	}
	for i, d := range ds {
		for d.node.Status().AppliedIndex < last.Load() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not apply up to %d", s.nodes[i].id, last.Load())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A node verifies the tables it wrote every 10 minutes while it runs
	// (replication.Node.VerifyNewTables), so a restart reads only those
	// written since; a station holding 1,000,000 events has run for months.
	// The loader ran ~9 minutes: it makes its last pass before it stops.
	for i, d := range ds {
		t0 := time.Now()
		if err := d.node.VerifyNewTables(); err != nil {
			return fmt.Errorf("verify the tables of %s: %w", s.nodes[i].id, err)
		}
		fmt.Printf("bench: footprint: %s verified its new tables in %v before stopping\n", s.nodes[i].id, time.Since(t0).Round(time.Millisecond))
	}
	closed = true
	closeAll()
	return nil
}

var fpReadClient = &http.Client{Timeout: 30 * time.Second}

// fpColdStation starts the three processes together and measures, per
// node, process start until /v1/status answers and until
// /v1/cases?limit=1 answers, then until all agree on a leader.
func fpColdStation(s *station, res *footprintResult) error {
	res.St.Procs = make([]fpProc, len(s.nodes))
	first := time.Now()
	for i := range s.nodes {
		if err := s.start(i); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(s.nodes))
	for i, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &res.St.Procs[i]
			p.Name = "stationsync " + n.id
			d, err := s.waitReady(i, 5*time.Minute) // minutes if it restores its snapshot
			if err != nil {
				errs[i] = err
				return
			}
			p.ColdAPI = d
			deadline := time.Now().Add(60 * time.Second)
			for {
				resp, err := fpReadClient.Get(n.url + "/v1/cases?limit=1")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 && strings.Contains(string(b), "fp-") {
						p.ColdRead = time.Since(n.started)
						break
					}
					err = fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
				}
				if time.Now().After(deadline) {
					errs[i] = fmt.Errorf("%s: /v1/cases?limit=1: %v", n.id, err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			p.StartRSS, _ = rssBytes(n.pid())
			p.Restored = fpRestoredOnStart(n.logPath)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := s.waitLeader(60 * time.Second); err != nil {
		return err
	}
	res.St.LeaderAt = time.Since(first)
	return nil
}

// fpRestoredOnStart reports whether the node's log shows a snapshot
// restore since its last start by the bench.
func fpRestoredOnStart(logPath string) bool {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return false
	}
	l := string(b)
	if i := strings.LastIndex(l, "=== bench: start"); i >= 0 {
		l = l[i:]
	}
	return strings.Contains(l, "starting restore from snapshot")
}

// ---- idle window ----

// fpRSSParts reads VmRSS, RssAnon and RssFile+RssShmem of pid.
func fpRSSParts(pid int) (rss, anon, file int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "VmRSS:":
			rss = kb << 10
		case "RssAnon:":
			anon = kb << 10
		case "RssFile:", "RssShmem:":
			file += kb << 10
		}
	}
	return rss, anon, file, nil
}

// fpIdle measures pids (procs[i] is pids[i]) over window: CPU over the
// window and over its last fpTail (when the window is longer), RSS every
// second (peak) and at the end, and the Go runtime's memory from the
// processes' /metrics.
func fpIdle(pids []int, procs []*fpProc, window time.Duration) error {
	ticks := func() ([]int64, error) {
		out := make([]int64, len(pids))
		for i, p := range pids {
			t, err := cpuTicks(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", procs[i].Name, err)
			}
			out[i] = t
		}
		return out, nil
	}
	t0, err := ticks()
	if err != nil {
		return err
	}
	cs0 := make([]int64, len(pids))
	for i, p := range pids {
		cs0[i] = fpCtxSwitches(p)
	}
	loadStart := fpLoadAvg()
	start := time.Now()
	tailAt := start.Add(window - fpTail)
	var tail []int64
	var tailStart time.Time
	if window <= fpTail {
		tail, tailStart = t0, start
	}
	sec := time.NewTicker(time.Second)
	defer sec.Stop()
	for time.Since(start) < window {
		for i, p := range pids {
			if r, err := rssBytes(p); err == nil {
				procs[i].PeakRSS = max(procs[i].PeakRSS, r)
			}
		}
		if tail == nil && !time.Now().Before(tailAt) {
			if tail, err = ticks(); err != nil {
				return err
			}
			tailStart = time.Now()
		}
		wait := min(time.Second, window-time.Since(start))
		if wait <= 0 {
			break
		}
		select {
		case <-sec.C:
		case <-time.After(wait):
		}
	}
	t1, err := ticks()
	if err != nil {
		return err
	}
	end := time.Now()
	loadAvg = [2]string{loadStart, fpLoadAvg()}
	if tail == nil {
		tail, tailStart = t0, start
	}
	for i, p := range procs {
		p.CPU = float64(t1[i]-t0[i]) / userHZ / end.Sub(start).Seconds() * 100
		p.CPULast = float64(t1[i]-tail[i]) / userHZ / end.Sub(tailStart).Seconds() * 100
		if p.RSS, p.Anon, p.File, err = fpRSSParts(pids[i]); err != nil {
			return err
		}
		p.PeakRSS = max(p.PeakRSS, p.RSS)
		m := fpMetrics(p.metricsURL)
		p.HeapInuse, p.GoSys, p.Goroutines = int64(m["go_memstats_heap_inuse_bytes"]), int64(m["go_memstats_sys_bytes"]), int64(m["go_goroutines"])
		p.NextGC = int64(m["go_memstats_next_gc_bytes"])
		p.CtxSwitches = float64(fpCtxSwitches(pids[i])-cs0[i]) / end.Sub(start).Seconds()
	}
	return nil
}

// loadAvg is /proc/loadavg at the start and the end of the idle window
// (other work on the machine).
var loadAvg [2]string

func fpLoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	fs := strings.Fields(string(b))
	if len(fs) < 3 {
		return "?"
	}
	return strings.Join(fs[:3], " ")
}

// fpCtxSwitches is the number of context switches of all of pid's threads
// (voluntary and not).
func fpCtxSwitches(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				fs := strings.Fields(l)
				v, _ := strconv.ParseInt(fs[len(fs)-1], 10, 64)
				n += v
			}
		}
	}
	return n
}

// fpMetrics scrapes the unlabelled samples of a Prometheus text page.
func fpMetrics(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := statusClient.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || l[0] == '#' || strings.Contains(l, "{") {
			continue
		}
		fs := strings.Fields(l)
		if len(fs) == 2 {
			if v, err := strconv.ParseFloat(fs[1], 64); err == nil {
				out[fs[0]] = v
			}
		}
	}
	return out
}

// fpDisk is the space allocated to the files under dir (as du counts it:
// badger's value-log files are sparse), with the share of each part.
func fpDisk(dir string, parts ...string) (int64, []fpPart) {
	size := func(d string) int64 {
		var n int64
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			var st syscall.Stat_t
			if syscall.Lstat(p, &st) == nil {
				n += st.Blocks * 512
			}
			return nil
		})
		return n
	}
	var out []fpPart
	for _, p := range parts {
		out = append(out, fpPart{p, size(filepath.Join(dir, p))})
	}
	return size(dir), out
}

// ---- markdown ----

func fpMax[T int64 | float64 | time.Duration](ps []fpProc, f func(p fpProc) T) T {
	var m T
	for _, p := range ps {
		m = max(m, f(p))
	}
	return m
}

// fpArgmax is the process with the largest f.
func fpArgmax[T int64 | float64](ps []fpProc, f func(p fpProc) T) fpProc {
	var best fpProc
	for i, p := range ps {
		if i == 0 || f(p) > f(best) {
			best = p
		}
	}
	return best
}

func footprintMarkdown(rep *report) string {
	res := rep.sec.footprint
	var b strings.Builder
	fmt.Fprintf(&b, "## Footprint with %s events\n\n", fpCount(res.Events))
	if !res.Ran || len(res.St.Procs) == 0 {
		b.WriteString("Not measured (failed earlier, see Failures).\n")
		return b.String()
	}
	fmt.Fprintf(&b, "What: a station of three `stationsync run` processes (loopback, static peers, encryption at rest) holding %s case events, beside a 3-member etcd %s (embed, defaults, fsync on, one process per member) holding %s keys whose values are stored events (%d bytes of JSON each). "+
		"Each system's three processes are started cold together (the station first, with etcd stopped; then etcd, with the station up and idle), measured from each process's start; then both idle over the same %v window (nothing talks to them), CPU = utime+stime from /proc/PID/stat over the window, RSS = VmRSS at its end; every figure is the max over the three processes unless it says otherwise.\n\n",
		fpCount(res.St.Keys), "v"+version.Version, fpCount(res.Etcd.Keys), res.EventBytes, res.Idle)
	perEntry := 0.0
	if res.St.Entries > 0 {
		perEntry = float64(res.St.Keys+res.St.Cases) / float64(res.St.Entries)
	}
	fmt.Fprintf(&b, "How the stores were filled: stationsync through the Go API in-process (option (a)): the three nodes opened in the bench process as `stationsync run` opens them from each node's station.yaml (`replication.New` on the same data folder, the same data.key, QUIC reset key, certificates and addresses), "+
		"%s cases (`records.OpCreateCase`, which stores the case's `received` event, then %d `records.OpAppendEvent` each, types accepted/paused/resumed as the write workload posts them, %d-byte random data) submitted on the leader, %d cases (%d ops) per `Submit`, %d Submits at a time: %s raft entries (%.0f ops each) in %v, %d Submits repeated after a leader change under the load. "+
		"The loading nodes ran with `raft.trailing_logs: %d` and each took a snapshot at the end, so their raft log keeps about as many events as a node that took the events one per request keeps with the default 10,240 entries, then took one more write (the bench item again), so that the newest snapshot is not past the last entry the FSM applied (a start would restore the whole snapshot otherwise); the processes then run with the default config. "+
		"etcd: `Txn`s of 128 puts, 8 at a time, in %v.\n\n",
		fpCount(res.St.Cases), eventsPerCase, fpDataBytes, fpCasesPerSubmit, fpCasesPerSubmit*(eventsPerCase+1), fpSubmitters, fpCount(int(res.St.Entries)), perEntry, fpDur(res.St.LoadTook), res.St.Retries,
		fpTrailingLogs, fpDur(res.Etcd.LoadTook))

	st, et := res.St.Procs, res.Etcd.Procs
	var restored []string
	for _, p := range st {
		if p.Restored {
			restored = append(restored, p.Name)
		}
	}
	if len(restored) > 0 {
		fmt.Fprintf(&b, "**At the cold start %s restored the whole raft snapshot** (the newest snapshot's index was past the FSM's applied index), so the cold start below measures that restore.\n\n", strings.Join(restored, ", "))
	}
	b.WriteString("| metric | stationsync | etcd | ratio | target | met |\n|---|---|---|---|---|---|\n")
	row := func(metric, a, e, r, target, met string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", metric, a, e, r, target, met)
	}
	ebin := mib(res.Etcd.BinSize)
	if res.Etcd.BinSize == 0 {
		ebin = "n/a (" + res.Etcd.BinNote + ")"
	}
	row(fmt.Sprintf("binary size (`go build -trimpath -ldflags '-s -w'`, linux/%s; etcd: a main that only runs `embed.StartEtcd`, built the same way, not the release binary)", runtime.GOARCH), mib(res.St.BinSize), ebin, ratio(float64(res.St.BinSize), float64(res.Etcd.BinSize)), "", "")
	sd := fpArgmax(st, func(p fpProc) int64 { return p.Disk })
	ed := fpArgmax(et, func(p fpProc) int64 { return p.Disk })
	row("data on disk, one node (allocated blocks, at the end of the idle window)", mib(sd.Disk)+" ("+fpParts(sd.DiskParts)+")", mib(ed.Disk)+" ("+fpParts(ed.DiskParts)+")", ratio(float64(sd.Disk), float64(ed.Disk)), "", "")
	coldAPI := fpMax(st, func(p fpProc) time.Duration { return p.ColdAPI })
	coldRead := fpMax(st, func(p fpProc) time.Duration { return p.ColdRead })
	eAPI := fpMax(et, func(p fpProc) time.Duration { return p.ColdAPI })
	eRead := fpMax(et, func(p fpProc) time.Duration { return p.ColdRead })
	eQuorum := fpMax(et, func(p fpProc) time.Duration { return p.ColdQuorum })
	row("cold start: process start to the API answering (stationsync `GET /v1/status`; etcd `Maintenance.Status`)", ms(coldAPI), ms(eAPI), ratio(float64(coldAPI), float64(eAPI)), "< 2 s", yesno(coldAPI > 0 && coldAPI < 2*time.Second))
	row("cold start: process start to serving a read of the data (stationsync `GET /v1/cases?limit=1`; etcd serializable `Get`)", ms(coldRead), ms(eRead), ratio(float64(coldRead), float64(eRead)), "< 2 s", yesno(coldRead > 0 && coldRead < 2*time.Second))
	row("cold start: to a cluster that takes writes (stationsync: first process start to all agreeing on a leader; etcd: each member's start to a linearizable `Get`)", ms(res.St.LeaderAt), ms(eQuorum), ratio(float64(res.St.LeaderAt), float64(eQuorum)), "", "")
	sr := fpMax(st, func(p fpProc) int64 { return p.StartRSS })
	er := fpMax(et, func(p fpProc) int64 { return p.StartRSS })
	row("RSS right after the cold start", mib(sr), mib(er), ratio(float64(sr), float64(er)), "", "")
	si := fpArgmax(st, func(p fpProc) int64 { return p.RSS })
	ei := fpArgmax(et, func(p fpProc) int64 { return p.RSS })
	row(fmt.Sprintf("idle RSS at the end of the %v window", res.Idle), mib(si.RSS), mib(ei.RSS), ratio(float64(si.RSS), float64(ei.RSS)), "< 96 MiB", yesno(si.RSS > 0 && si.RSS < 96<<20))
	row("… of which anonymous / file-backed (that process; file-backed: pages of mmapped files, i.e. badger tables or the bbolt file and the binary, which the kernel can reclaim)", mib(si.Anon)+" / "+mib(si.File), mib(ei.Anon)+" / "+mib(ei.File), "", "", "")
	row("… Go heap in use / next GC goal / Go runtime total (`go_memstats_sys_bytes`), goroutines (that process)", fmt.Sprintf("%s / %s / %s, %d", mib(si.HeapInuse), mib(si.NextGC), mib(si.GoSys), si.Goroutines), fmt.Sprintf("%s / %s / %s, %d", mib(ei.HeapInuse), mib(ei.NextGC), mib(ei.GoSys), ei.Goroutines), "", "", "")
	sp := fpMax(st, func(p fpProc) int64 { return p.PeakRSS })
	ep := fpMax(et, func(p fpProc) int64 { return p.PeakRSS })
	row("peak RSS during the window (sampled every second)", mib(sp), mib(ep), ratio(float64(sp), float64(ep)), "", "")
	sc := fpMax(st, func(p fpProc) float64 { return p.CPU })
	ec := fpMax(et, func(p fpProc) float64 { return p.CPU })
	row(fmt.Sprintf("idle CPU over the %v window (%% of one core)", res.Idle), fmt.Sprintf("%.2f %%", sc), fmt.Sprintf("%.2f %%", ec), ratio(sc, ec), "< 1 %", yesno(si.RSS > 0 && sc < 1))
	if res.Idle > fpTail {
		sl := fpMax(st, func(p fpProc) float64 { return p.CPULast })
		el := fpMax(et, func(p fpProc) float64 { return p.CPULast })
		row(fmt.Sprintf("idle CPU over the last %v of the window", fpTail), fmt.Sprintf("%.2f %%", sl), fmt.Sprintf("%.2f %%", el), ratio(sl, el), "< 1 %", yesno(sl < 1))
	}
	scs := fpMax(st, func(p fpProc) float64 { return p.CtxSwitches })
	ecs := fpMax(et, func(p fpProc) float64 { return p.CtxSwitches })
	row("context switches per second over the window (all threads; each wakeup of an idle Go process costs a few)", fmt.Sprintf("%.0f", scs), fmt.Sprintf("%.0f", ecs), ratio(scs, ecs), "", "")
	sf, ef := fpP50(res.St.Failovers), fpP50(res.Etcd.Failovers)
	ref := "empty store: the Failover section of a run without -only"
	if len(rep.failovers) > 0 {
		var ds []time.Duration
		for _, f := range rep.failovers {
			ds = append(ds, f.Took)
		}
		ref = fmt.Sprintf("empty store: %s in the Failover section", ms(fpP50(ds)))
	}
	row(fmt.Sprintf("failover with the data: SIGKILL of the leader to the first write accepted through a survivor (stationsync: case created, 201, as in the Failover section; etcd: `Put`), p50 of %d", len(res.Etcd.Failovers)),
		fmt.Sprintf("%s (%s)", ms(sf), ref), ms(ef), ratio(float64(sf), float64(ef)), "p50 <= 1.5 s", yesno(sf > 0 && sf <= 1500*time.Millisecond))
	b.WriteString("\nPer process: ")
	for i, p := range append(slices.Clone(st), et...) {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: CPU %.2f %%", p.Name, p.CPU)
		if res.Idle > fpTail {
			fmt.Fprintf(&b, " (last minute %.2f %%)", p.CPULast)
		}
		fmt.Fprintf(&b, ", RSS %s, cold start %s / %s", mib(p.RSS), ms(p.ColdAPI), ms(p.ColdRead))
	}
	fmt.Fprintf(&b, ". Load average of the machine (other benchmarks ran beside this one) at the start / end of the idle window: %s / %s.\n", loadAvg[0], loadAvg[1])
	if len(res.St.Failovers) > 0 || len(res.Etcd.Failovers) > 0 {
		fmt.Fprintf(&b, "\nFailover runs, stationsync: %s; etcd: %s (a killed member is restarted and caught up before the next run).\n", fpList(res.St.Failovers), fpList(res.Etcd.Failovers))
	}
	if res.Heap != "" {
		fmt.Fprintf(&b, "\n%s.\n", res.Heap)
	}
	if res.Profile != "" {
		fmt.Fprintf(&b, "\nCPU profiles of the idle station in-process: %s.\n", res.Profile)
	}
	return b.String()
}

func fpDur(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func fpCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fpParts(ps []fpPart) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s %s", p.Name, mib(p.Bytes)))
	}
	return strings.Join(out, ", ")
}

func fpP50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return pct(s, 0.5)
}

func fpList(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	var out []string
	for _, d := range ds {
		out = append(out, ms(d))
	}
	return strings.Join(out, ", ")
}

// fpHeapProfile fetches, at the end of the idle window, the heap profile
// of the station node with the most RSS from its profiling listener
// (after a GC: pprof's gc=1) into footprint-heap-<node>.pprof in the
// working directory (bench/ under make bench), and says where it went:
// `go tool pprof -sample_index=inuse_space FILE` shows what holds the
// idle heap. In smoke mode it is fetched and checked, not written.
func fpHeapProfile(s *station, procs []fpProc, smoke bool) (string, error) {
	top := 0
	for i := range procs {
		if procs[i].RSS > procs[top].RSS {
			top = i
		}
	}
	n := s.nodes[top]
	resp, err := fpReadClient.Get("http://" + n.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s: read heap profile: %w", n.id, err)
	}
	if resp.StatusCode != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		return "", fmt.Errorf("%s: /debug/pprof/heap answered %s, %d bytes, not a gzipped profile", n.id, resp.Status, len(body))
	}
	if smoke {
		return fmt.Sprintf("Heap profile of %s (most RSS, %s) fetched at the end of the idle window: %d bytes (smoke run: not kept)", n.id, mib(procs[top].RSS), len(body)), nil
	}
	name := "footprint-heap-" + n.id + ".pprof"
	if err := os.WriteFile(name, body, 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("Heap profile of %s (the most RSS, %s) at the end of the idle window, after a GC: `%s` (`go tool pprof -sample_index=inuse_space %s`)", n.id, mib(procs[top].RSS), name, name), nil
}
