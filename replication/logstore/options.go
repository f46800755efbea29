package logstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Badger sizing used by [Options]. Badger's defaults (5 x 64 MiB memtables,
// a 256 MiB block cache, 1 GiB value-log files) reach gigabytes of RSS; a
// node must stay under roughly 96 MiB idle with up to three badger databases
// open (raft log, FSM state, outbox), so everything is sized down.
//
// Measured with one Store after a burst of ~100 MiB of writes, once badger's
// pooled table-builder buffers were released (a few seconds idle) and the Go
// heap returned to the OS: 8 MiB memtables left ~38 MiB anonymous RSS, 4 MiB
// memtables ~16 MiB. Mmapped value-log and memtable files add file-backed
// RSS (~65 MiB in that test) that the kernel can reclaim.
const (
	memTableSize       = 4 << 20  // per memtable; a transaction holds at most 15% of it (~600 KiB)
	numMemtables       = 2        // mutable + one being flushed
	baseTableSize      = 1 << 20  // SSTable size at the base level; table builders allocate 2x this
	baseLevelSize      = 8 << 20  // target size of the base level
	blockCacheSize     = 4 << 20  // required because tables are Snappy-compressed
	indexCacheSize     = 2 << 20  // bounds table index/bloom memory instead of keeping all in RAM
	valueLogFileSize   = 64 << 20 // per value-log file (mmapped at twice this size, file-backed)
	valueThreshold     = 64 << 10 // values at or above this go to the value log, not the LSM tree
	numLevelZeroTables = 2        // compact L0 early ...
	numL0TablesStall   = 8        // ... and stall writes well before the default 15 tables
	numCompactors      = 2        // badger rejects exactly 1; 2 is the smallest working value
	numGoroutines      = 2        // used by badger's Stream framework
)

// Options returns badger options for the database in dir, sized for a station
// office PC: two 4 MiB memtables, 1 MiB base tables, a 4 MiB block cache, a
// 2 MiB index cache, 64 MiB value-log files, values of 64 KiB and more kept in
// the value log, early L0 compaction with two compactors, and metrics off.
//
// sync sets SyncWrites: every committed transaction is fsynced before Commit
// returns. Use it for anything that must survive a power cut (raft log,
// outbox); it costs one fsync per transaction.
//
// Badger's own log output goes to logger at warn level and above (badger's
// info and debug messages are dropped). A nil logger discards everything.
//
// The returned value can be adjusted with badger's With... methods; keep
// MemTableSize and BlockCacheSize small (the tests check both stay at or
// below 16 MiB).
func Options(dir string, sync bool, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(sync).
		WithLogger(newBadgerLogger(logger)).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBaseTableSize(baseTableSize).
		WithBaseLevelSize(baseLevelSize).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(numL0TablesStall).
		WithNumCompactors(numCompactors).
		WithNumGoroutines(numGoroutines).
		WithMetricsEnabled(false)
}

// ForState resizes Options for a node's state store (the FSM's records),
// which takes the bulk of a station's writes (an event writes its record,
// its case's head and a feed change): 8 MiB memtables, 4 MiB base tables
// and a 32 MiB base level instead of 4, 1 and 8 MiB. Every new table is
// msynced, and with 1 MiB tables a follower catching up on 100,000 events
// spent 16 % of the CPU in msync and its FSM waited on compaction: the
// catch-up took 12.2 s, 9.5 s with these sizes (bench catchup section).
// About 8 MiB more memtable and 6 MiB more table-builder memory under load.
func ForState(o badger.Options) badger.Options {
	return o.
		WithMemTableSize(8 << 20).
		WithBaseTableSize(4 << 20).
		WithBaseLevelSize(32 << 20)
}

// ForDistrict resizes Options for the district center's state store,
// which holds every station's records and takes them in bulk: 32 MiB
// memtables, 4 MiB base tables, a 64 MiB base level, L0 compacted from
// 4 tables, 32 MiB block and 64 MiB index caches. With a station PC's
// sizes the center benchmark spent 43 % of its CPU compacting and wrote
// 5.2 GiB to store 173 MiB of records; bigger tables and levels compact
// less often. About 200 MiB more memory, on a server.
func ForDistrict(o badger.Options) badger.Options {
	return o.
		WithMemTableSize(32 << 20).
		WithBaseTableSize(4 << 20).
		WithBaseLevelSize(64 << 20).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(64 << 20)
}

// badgerLogger adapts a *slog.Logger to badger.Logger. Only warnings and
// errors are forwarded; badger's info and debug output is chatty and not
// useful on an unattended node.
type badgerLogger struct {
	l *slog.Logger
}

var _ badger.Logger = badgerLogger{}

func newBadgerLogger(l *slog.Logger) badgerLogger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return badgerLogger{l: l.With("component", "badger")}
}

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// Errorf implements badger.Logger.
func (b badgerLogger) Errorf(format string, args ...any) { b.log(slog.LevelError, format, args) }

// Warningf implements badger.Logger. badger's cache monitor warns every
// minute that a cache "might be too small" (and its life expectancy) once
// the hit ratio of its cumulative counts is low, which it stays on a node
// whose caches are small on purpose (Options): an idle station logged two
// warnings a minute for as long as it ran. Those go out at debug level.
func (b badgerLogger) Warningf(format string, args ...any) {
	level := slog.LevelWarn
	if strings.Contains(format, "might be too small") || strings.HasPrefix(format, "Cache life expectancy") {
		level = slog.LevelDebug
	}
	b.log(level, format, args)
}

// Infof implements badger.Logger; badger's info messages are dropped.
func (b badgerLogger) Infof(string, ...any) {}

// Debugf implements badger.Logger; badger's debug messages are dropped.
func (b badgerLogger) Debugf(string, ...any) {}

// gcDiscardRatio is the fraction of a value-log file that must be garbage
// before badger rewrites it (badger's recommended value).
const gcDiscardRatio = 0.5

// DefaultGCInterval is the value-log GC interval used by [Open], and by
// [StartGC] when given a non-positive interval.
const DefaultGCInterval = 5 * time.Minute

// GC runs badger value-log garbage collection periodically until Stop is
// called. Create it with [StartGC]. Stop it before closing the database.
type GC struct {
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	paused   atomic.Bool
}

// Pause skips GC runs while p is true (a value-log rewrite needs disk
// space: see the daemon's disk guard).
func (g *GC) Pause(p bool) { g.paused.Store(p) }

// StartGC starts a goroutine that runs value-log GC on db every interval
// (DefaultGCInterval if interval <= 0). Each run rewrites value-log files
// until badger reports there is nothing left worth rewriting. Failures are
// logged to logger (nil discards them) and never stop the loop.
func StartGC(db *badger.DB, interval time.Duration, logger *slog.Logger) *GC {
	if interval <= 0 {
		interval = DefaultGCInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &GC{stop: make(chan struct{}), done: make(chan struct{})}
	go g.run(db, interval, logger)
	return g
}

func (g *GC) run(db *badger.DB, interval time.Duration, logger *slog.Logger) {
	defer close(g.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		if g.paused.Load() {
			continue
		}
		for rewrites := 0; ; rewrites++ {
			select {
			case <-g.stop:
				return
			default:
			}
			err := db.RunValueLogGC(gcDiscardRatio)
			if err == nil {
				continue // a file was rewritten; try the next one
			}
			switch {
			case errors.Is(err, badger.ErrNoRewrite):
				// Nothing (more) to collect.
			case errors.Is(err, badger.ErrRejected):
				// Another GC is running or the database is closing.
				logger.Debug("value-log GC rejected", "err", err)
			default:
				logger.Warn("value-log GC failed", "err", err, "rewrites", rewrites)
			}
			if rewrites > 0 {
				logger.Debug("value-log GC done", "rewrites", rewrites)
			}
			break
		}
	}
}

// Stop ends the GC loop and waits for the goroutine to exit, including a GC
// run in progress. It is safe to call more than once.
func (g *GC) Stop() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
}
