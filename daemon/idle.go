package daemon

import (
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// An idle station PC gives memory back and sleeps more. Most of an idle
// node's RSS is not its heap but pages of its mapped store files (badger
// maps every table, value log and memtable file): 91 of 120 MiB of an idle
// node holding 1,000,000 events (BENCHMARKS.md). The kernel can reclaim
// them, but only under memory pressure, and while they stay mapped the node
// looks (and, on a clerk's PC with 4 GiB, is) that much bigger. After
// idleTrimAfter without a new raft entry applied, the node returns its free
// heap to the OS and asks the kernel to page out its store mappings
// (trimMappings: Linux MADV_PAGEOUT, elsewhere nothing); the next reads
// fault the pages they need back from disk. It does so once per idle
// period.
//
// It also runs Go code on one core and collects garbage at a lower heap
// goal (idleGCPercent) while idle (idleProcs): most of an idle
// node's CPU is the cost of waking up (raft heartbeats, QUIC), and with
// several cores the Go scheduler wakes further threads to look for work
// that is not there. Measured on the bench VM (2 cores, idle 3-node
// station): a follower 2.1 -> 1.7 % of a core, the leader 4.7 -> 3.6 %.
// While idle the node checks every idleBusyCheck whether entries are
// applied again, and gets its cores back within that.
const (
	idleTrimAfter = 2 * time.Minute
	idleCheck     = time.Minute
	idleBusyCheck = time.Second
)

// idleState follows the applied raft index from check to check.
type idleState struct {
	last  uint64
	since time.Time // when last changed
	idle  bool
}

// observe takes the applied index at now and says whether the node has
// just become idle (nothing applied for idleTrimAfter) or busy again.
func (s *idleState) observe(applied uint64, now time.Time) (enter, leave bool) {
	if s.since.IsZero() || applied != s.last {
		s.last, s.since = applied, now
		if s.idle {
			s.idle = false
			return false, true
		}
		return false, false
	}
	if !s.idle && now.Sub(s.since) >= idleTrimAfter {
		s.idle = true
		return true, false
	}
	return false, false
}

func (d *Daemon) runIdleTrim() {
	defer d.wg.Done()
	procs.start()
	var s idleState
	defer func() { procs.stop(s.idle) }()
	s.observe(d.node.AppliedIndex(), time.Now()) // idle from start on
	t := time.NewTimer(idleCheck)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		enter, leave := s.observe(d.node.AppliedIndex(), time.Now())
		switch {
		case enter:
			procs.idle()
			debug.FreeOSMemory()
			if n, err := trimMappings(d.cfg.DataDir); err != nil {
				d.logger.Debug("idle: page out store mappings", "error", err)
			} else {
				d.logger.Debug("idle: memory given back, one core", "mappings", n)
			}
		case leave:
			procs.busy()
			d.logger.Debug("idle: busy again, all cores")
		}
		if s.idle {
			t.Reset(idleBusyCheck)
		} else {
			t.Reset(idleCheck)
		}
	}
}

// procs puts the process on one core while every node in it is idle (the
// demo and the tests run several nodes in one process) and gives the
// runtime its default back as soon as one is busy or none runs. A
// GOMAXPROCS set in the environment is left alone.
var procs = &idleProcs{
	set:     func(n int) { runtime.GOMAXPROCS(n) },
	restore: func() { runtime.SetDefaultGOMAXPROCS() },
	fixed:   os.Getenv("GOMAXPROCS") != "",
	gc:      debug.SetGCPercent,
	gcFixed: os.Getenv("GOGC") != "",
}

// idleGCPercent is the garbage collector's GOGC while every node of the
// process is idle: the heap may grow to 1.5 times what is live before a
// collection instead of twice. What an idle node allocates (heartbeats,
// probes, badger's idle checks) grew its heap back to the default goal
// within minutes of FreeOSMemory, and that heap is most of its anonymous
// RSS: an idle node holding 1,000,000 events had 66 MiB of heap in use
// for ~35 MiB live (bench footprint, 2026-11-29 09:18). Idle, a node
// allocates little, so collecting at a lower goal costs little CPU.
const idleGCPercent = 50

type idleProcs struct {
	mu      sync.Mutex
	running int // nodes running
	idleN   int // of them idle
	single  bool
	set     func(int)
	restore func()
	fixed   bool
	gc      func(int) int // debug.SetGCPercent; nil: leave GOGC alone
	gcFixed bool          // GOGC set in the environment
	gcPrev  int           // GOGC before the process went idle
}

func (p *idleProcs) start() { p.update(func() { p.running++ }) }
func (p *idleProcs) idle()  { p.update(func() { p.idleN++ }) }
func (p *idleProcs) busy()  { p.update(func() { p.idleN-- }) }

// stop: a node stopped, idle or not.
func (p *idleProcs) stop(idle bool) {
	p.update(func() {
		p.running--
		if idle {
			p.idleN--
		}
	})
}

func (p *idleProcs) update(change func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change()
	allIdle := p.running > 0 && p.idleN == p.running
	gc := p.gc != nil && !p.gcFixed
	switch {
	case allIdle && !p.single:
		p.single = true
		if !p.fixed {
			p.set(1)
		}
		if gc {
			p.gcPrev = p.gc(idleGCPercent)
		}
	case !allIdle && p.single:
		p.single = false
		if !p.fixed {
			p.restore()
		}
		if gc {
			p.gc(p.gcPrev)
		}
	}
}
