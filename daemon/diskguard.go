package daemon

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stationsync/stationsync/internal/slot"
)

// The disk guard: a full disk must stop writes with a clear error, never
// corrupt the store (DESIGN.md, known traps). Badger writes its memtable
// WAL (.mem), value log and tables through mmapped files created sparse: a
// store into a page the file system cannot allocate is SIGBUS, which kills
// the process; hashicorp/raft panics when it cannot persist its term. So
// the node must stop writing before the disk is full, not when a write
// fails.
//
// Every second the guard reads the space free on data_dir's file system
// (statfs). Below disk_reserve_mb it trips: local API writes answer 507
// disk_full at once, and the replication node pauses its writes (it hands
// leadership over and stops its raft instance: the station goes on without
// it, as without a stopped PC; replication/diskpause.go). Once the free
// space is back above the reserve plus diskHysteresis, the node restarts
// raft by itself and catches up from the leader; no one restarts the
// process.
//
// Sizing the reserve (default 64 MiB): what badger may still write after
// the guard tripped, for each of the two stores (raft log with the outbox,
// state), with logstore.Options: the rest of the mutable 4 MiB memtable and
// the flush of both memtables to level-0 tables (2 x 4 MiB), a compaction
// into the 8 MiB base level, and a 64 KiB-plus raft entry in the value log:
// about 24 MiB per store, ~48 MiB for both, plus the writes of the second
// between two checks and of the pause itself (a few MiB at a station's
// rates).
const (
	defaultDiskReserveMB = 64
	minDiskReserveMB     = 32
	diskHysteresis       = 16 << 20
	diskCheckEvery       = 750 * time.Millisecond
)

// diskState is the guard's view of data_dir's file system.
type diskState struct {
	Free    uint64    `json:"free_bytes"`
	Reserve uint64    `json:"reserve_bytes"`
	Low     bool      `json:"writes_stopped"`
	Since   time.Time `json:"since,omitzero"` // when writes stopped
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
}

// diskGuard decides, from successive free-space readings, whether writes
// must stop. It is pure logic (a fake statfs in tests).
type diskGuard struct {
	dir      string
	statfs   func(dir string) (uint64, error)
	reserve  uint64
	resumeAt uint64
	now      func() time.Time

	mu sync.Mutex
	st diskState
}

func newDiskGuard(dir string, reserveMB int, statfs func(string) (uint64, error)) *diskGuard {
	r := uint64(reserveMB) << 20
	return &diskGuard{dir: dir, statfs: statfs, reserve: r, resumeAt: r + diskHysteresis, now: time.Now, st: diskState{Reserve: r}}
}

// check reads the free space once. It returns the new state and whether
// writes just stopped (tripped) or just may resume (cleared). A failed
// reading changes nothing.
func (g *diskGuard) check() (st diskState, tripped, cleared bool) {
	free, err := g.statfs(g.dir)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.Checked = g.now()
	if err != nil {
		g.st.Error = err.Error()
		return g.st, false, false
	}
	g.st.Error = ""
	g.st.Free = free
	switch {
	case !g.st.Low && free < g.reserve:
		g.st.Low, g.st.Since, tripped = true, g.now(), true
	case g.st.Low && free >= g.resumeAt:
		g.st.Low, g.st.Since, cleared = false, time.Time{}, true
	}
	return g.st, tripped, cleared
}

func (g *diskGuard) state() diskState {
	if g == nil {
		return diskState{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}

// low reports whether writes are stopped.
func (g *diskGuard) low() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st.Low
}

// message says why writes are stopped, for the 507 answer and the log.
func (g *diskGuard) message() string {
	st := g.state()
	return fmt.Sprintf("the disk of data_dir %s is nearly full: %s free, below the reserve of %s (disk_reserve_mb) that keeps the stores from being corrupted; this PC takes no writes and takes no part in replication until at least %s is free again, then it resumes by itself (the station's other PCs take writes meanwhile); free space on that disk",
		g.dir, mib(st.Free), mib(g.reserve), mib(g.resumeAt))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// runDiskGuard checks data_dir every diskCheckEvery and pauses or resumes
// the node's writes.
func (d *Daemon) runDiskGuard() {
	defer d.wg.Done()
	t := slot.NewTimer(diskCheckEvery) // on the slot clock: an idle node wakes for it with raft's heartbeats
	defer t.Stop()
	retryResume := false
	loggedErr := ""
	for {
		st, tripped, cleared := d.disk.check()
		if st.Error != "" && st.Error != loggedErr {
			d.logger.Warn("disk guard: cannot read the free space of data_dir", "dir", d.cfg.DataDir, "error", st.Error)
		}
		loggedErr = st.Error
		switch {
		case tripped:
			d.logger.Error("disk nearly full: writes stopped", "dir", d.cfg.DataDir, "free", mib(st.Free), "reserve", mib(st.Reserve))
			start := time.Now()
			if err := d.node.PauseWrites(); err != nil {
				d.logger.Error("disk guard: pause writes", "error", err)
			} else {
				d.logger.Info("disk guard: this node's raft stopped", "took", time.Since(start).Round(time.Millisecond))
			}
			retryResume = false
		case cleared || retryResume:
			if cleared {
				d.logger.Info("disk space back: resuming writes", "dir", d.cfg.DataDir, "free", mib(st.Free))
			}
			if err := d.node.ResumeWrites(); err != nil {
				d.logger.Error("disk guard: resume writes; retrying", "error", err)
				retryResume = !d.disk.low()
			} else {
				retryResume = false
			}
		}
		select {
		case <-d.stop:
			return
		case <-t.C:
			t.Next()
		}
	}
}

// refuseWhenDiskLow answers a write with 507 while the disk guard holds
// writes: every request that is not a read, and backups (they write a
// snapshot first).
func (d *Daemon) refuseWhenDiskLow(w http.ResponseWriter, r *http.Request) bool {
	if !d.disk.low() {
		return false
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/v1/backup") {
		return false
	}
	writeError(w, http.StatusInsufficientStorage, "disk_full", d.disk.message())
	return true
}

// diskWarnings: writes stopped, for the status page and /v1/status.
func (d *Daemon) diskWarnings() []string {
	if !d.disk.low() {
		return nil
	}
	return []string{"writes stopped: " + d.disk.message()}
}
