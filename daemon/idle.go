package daemon

import (
	"runtime/debug"
	"time"
)

// An idle station PC gives memory back. Most of an idle node's RSS is not
// its heap but pages of its mapped store files (badger maps every table,
// value log and memtable file): 91 of 120 MiB of an idle node holding
// 1,000,000 events (BENCHMARKS.md). The kernel can reclaim them, but only
// under memory pressure, and while they stay mapped the node looks (and,
// on a clerk's PC with 4 GiB, is) that much bigger. After idleTrimAfter
// without a new raft entry applied, the node returns its free heap to the
// OS and asks the kernel to page out its store mappings (trimMappings:
// Linux MADV_PAGEOUT, elsewhere nothing); the next reads fault the pages
// they need back from disk. It does so once per idle period.
const (
	idleTrimAfter = 2 * time.Minute
	idleCheck     = time.Minute
)

func (d *Daemon) runIdleTrim() {
	defer d.wg.Done()
	t := time.NewTicker(idleCheck)
	defer t.Stop()
	var last uint64
	since := time.Now()
	trimmed := false
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		applied := d.node.Status().AppliedIndex
		if applied != last {
			last, since, trimmed = applied, time.Now(), false
			continue
		}
		if trimmed || time.Since(since) < idleTrimAfter {
			continue
		}
		trimmed = true
		debug.FreeOSMemory()
		n, err := trimMappings(d.cfg.DataDir)
		if err != nil {
			d.logger.Debug("idle: page out store mappings", "error", err)
			continue
		}
		d.logger.Debug("idle: memory given back", "mappings", n)
	}
}
