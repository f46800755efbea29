//go:build chaos

package daemon

import (
	"os"
	"strings"
	"sync"
	"time"
)

// ChaosClockSkewEnv names a file holding a duration ("-90s", "2m", "0s")
// added to the wall time the node's hybrid logical clock reads. The file
// is re-read at most every 200 ms, so a test can change the skew of a
// running node; a missing or unreadable file means no skew. This exists
// only in binaries built with the "chaos" tag (the chaos suite's); the
// product has no such hook.
const ChaosClockSkewEnv = "CHAOS_CLOCK_SKEW_FILE"

func init() {
	path := os.Getenv(ChaosClockSkewEnv)
	if path == "" {
		return
	}
	var mu sync.Mutex
	var skew time.Duration
	var readAt time.Time
	wallClock = func() time.Time {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if now.Sub(readAt) >= 200*time.Millisecond {
			readAt = now
			skew = 0
			if b, err := os.ReadFile(path); err == nil {
				if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
					skew = d
				}
			}
		}
		return now.Add(skew)
	}
}
