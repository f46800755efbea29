package logstore

import (
	"crypto/rand"
	"fmt"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The badger in third_party/badger is patched so that an idle DB's
// compactors do not wake every 50 ms (PATCHES.md there). These tests check
// both halves of the patch: writes still get compacted, and an idle DB
// leaves the process asleep.

// TestCompactionFollowsFlushes: enough writes to flush many memtables into
// L0 are compacted out of it (the compactors are woken by the new tables,
// not only by their once-a-second timer), and everything stays readable.
func TestCompactionFollowsFlushes(t *testing.T) {
	db := openTestDB(t, false)
	const n, size = 24 << 10, 1 << 10 // 24 MiB: six memtables of 4 MiB
	val := make([]byte, size)
	for i := 0; i < n; i += 256 {
		wb := db.NewWriteBatch()
		for j := i; j < i+256; j++ {
			rand.Read(val)
			if err := wb.Set(fmt.Appendf(nil, "k%08d", j), append([]byte(nil), val...)); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		l0, below := 0, 0
		for _, l := range db.Levels() {
			if l.Level == 0 {
				l0 = l.NumTables
			} else {
				below += l.NumTables
			}
		}
		if l0 < numLevelZeroTables && below > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the writes L0 still has %d tables (%d below it): compaction does not run", l0, below)
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := db.View(func(txn *badger.Txn) error {
		for _, i := range []int{0, n / 2, n - 1} {
			if _, err := txn.Get(fmt.Appendf(nil, "k%08d", i)); err != nil {
				return fmt.Errorf("key %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIdleStoreSleeps counts goroutine wakeups in this process while two
// idle DBs (a node's raft log and state) are open. Upstream badger wakes
// each of their four compactors 20 times a second; the runtime samples
// every 8th wakeup of each goroutine in /sched/latencies:seconds, so over
// 3 s that alone is about 30 samples. Patched, the compactors wake once a
// second (12 wakeups, 1-2 samples) and the rest of badger (cache and
// size tickers) about as often.
func TestIdleStoreSleeps(t *testing.T) {
	openTestDB(t, true)                 // raft log
	openTestDB(t, false)                // state
	time.Sleep(1500 * time.Millisecond) // compactors start after up to 1 s
	const window = 3 * time.Second
	before := wakeups()
	time.Sleep(window)
	got := wakeups() - before
	t.Logf("sampled goroutine wakeups over %v with two idle DBs: %d", window, got)
	if got >= 20 {
		t.Errorf("%d sampled goroutine wakeups over %v with two idle DBs open, want < 20: their compactors poll (is third_party/badger's patch in effect?)", got, window)
	}
}

// wakeups is the number of goroutine wakeups the runtime has sampled.
func wakeups() uint64 {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	var total uint64
	for _, c := range s[0].Value.Float64Histogram().Counts {
		total += c
	}
	return total
}
