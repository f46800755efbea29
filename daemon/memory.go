package daemon

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// Memory. Under a burst of writes most of a station node's memory is
// garbage: badger's table builders (memtable flushes and compactions of
// three databases) allocate megabytes each and drop them, and the Go
// runtime lets the heap grow to twice what is live before collecting. The
// 64-client benchmark peaked at 265-280 MiB RSS with ~110 MiB live.
// A soft memory limit makes the collector run earlier once the runtime
// nears it, so the peak follows what is live rather than the garbage
// (BENCHMARKS.md: ~190-210 MiB with the limit at 192 MiB, same
// throughput within noise). It is soft: a node whose live data needs more
// goes over it rather than failing.
const (
	stationMemoryMB = 192
	minMemoryMB     = 64
)

// MemoryLimitMB is the soft limit on the Go runtime's memory this config
// asks for, in MiB; 0 means none.
func (c Config) MemoryLimitMB() int {
	if c.Limits.MemoryMB > 0 {
		return c.Limits.MemoryMB
	}
	if c.Role == "center" {
		return 0 // a server consolidating a district: sized by its admin
	}
	return stationMemoryMB
}

// SetMemoryLimit applies the config's memory limit to this process, unless
// GOMEMLIMIT is set (the Go runtime has applied that one). It is for the
// process that runs one node (stationsync run), not for tests or the demo,
// which run several nodes in one process.
func SetMemoryLimit(c Config, logger *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return
	}
	mb := c.MemoryLimitMB()
	if mb == 0 {
		return
	}
	debug.SetMemoryLimit(int64(mb) << 20)
	logger.Debug("soft memory limit set", "limits.memory_mb", mb)
}
