package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stationsync/stationsync/internal/harness"
)

// TestDamagedStoreRefusedThenRebuilt: a follower of a 3-node station is
// stopped and a file of one of its stores damaged. `stationsync run`
// refuses to start, exits non-zero at once with one line naming the store,
// the file, what is wrong and the rebuild command (no panic, nothing
// repaired silently); `stationsync rebuild` moves the stores aside and the
// node, started again, rejoins and holds every case the station
// acknowledged, including those written while it was down. Two rounds: the
// state store (a table overwritten in the middle) and the raft log (its
// MANIFEST deleted: the outbox inside it is unreadable, and rebuild says
// so).
func TestDamagedStoreRefusedThenRebuilt(t *testing.T) {
	t.Parallel()
	const station = "XC-E2E-DF"
	// Small snapshot settings: the leader compacts its log, so the rebuilt
	// node must take a snapshot (InstallSnapshot), not only log entries.
	st := harness.NewStation(t, station, 3, harness.WithConfig(func(i int, cfg map[string]any) {
		cfg["raft"] = map[string]any{"snapshot_interval": "1s", "snapshot_threshold": 4, "trailing_logs": 2}
	}))
	st.StartAll()
	leader := st.WaitLeader(leaderTimeout)
	if err := st.Node(leader).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	var acked []string
	write := func(i int, tag string, count int) {
		t.Helper()
		for k := range count {
			id, err := writeCase(st.Node(i), station, fmt.Sprintf("%s%d", tag, k))
			if err != nil {
				t.Fatal(err)
			}
			acked = append(acked, id)
		}
	}
	for i := range 3 {
		write(i, fmt.Sprintf("n%d-", i), 4)
	}
	st.WaitSync(syncTimeout)

	f := (leader + 1) % 3
	node := st.Node(f)
	rounds := []struct {
		name, store, sub string
		damage           func(t *testing.T, dir string) string // returns the file damaged
		outboxLost       bool
	}{
		{"state-table-overwritten", "state", "state", overwriteTable, false},
		{"raft-manifest-deleted", "raft log", "raft", deleteManifest, true},
	}
	for r, round := range rounds {
		t.Logf("round %s", round.name)
		leader = st.WaitLeader(leaderTimeout)
		if leader == f {
			t.Fatalf("%s became leader", node.ID)
		}
		if err := st.Stop(f); err != nil {
			t.Fatalf("stop %s: %v", node.ID, err)
		}
		file := round.damage(t, filepath.Join(node.DataDir, round.sub))

		start := time.Now()
		res := harness.RunCLI(t, "run", "--config", node.ConfigPath)
		took := time.Since(start)
		if res.ExitCode == 0 {
			t.Fatalf("run on a damaged store exited 0:\n%s", res.Stderr)
		}
		if strings.Contains(res.Stderr, "panic") || strings.Contains(res.Stderr, "goroutine ") {
			t.Fatalf("run panicked:\n%s", res.Stderr)
		}
		lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
		last := lines[len(lines)-1]
		for _, want := range []string{"stationsync: the " + round.store + " ", filepath.Join(node.DataDir, round.sub), file, "damaged", "stationsync rebuild --config " + node.ConfigPath} {
			if !strings.Contains(last, want) {
				t.Fatalf("the last line of run's output does not say %q:\n%s", want, last)
			}
		}
		t.Logf("run refused in %v: %s", took.Round(time.Millisecond), last)

		// The station goes on meanwhile, long enough for the leader to
		// snapshot and compact its log.
		write(leader, fmt.Sprintf("r%d-", r), 6)
		time.Sleep(2500 * time.Millisecond)

		res = harness.RunCLI(t, "rebuild", "--config", node.ConfigPath)
		if res.ExitCode != 0 {
			t.Fatalf("rebuild: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
		}
		t.Logf("rebuild:\n%s", res.Stdout)
		if !strings.Contains(res.Stdout, "damaged-") || strings.Contains(res.Stdout, "WARNING: the outbox") != round.outboxLost {
			t.Fatalf("rebuild's report (outbox lost: %v):\n%s", round.outboxLost, res.Stdout)
		}
		aside, _ := filepath.Glob(filepath.Join(node.DataDir, "damaged-*", round.sub))
		if len(aside) == 0 {
			t.Fatalf("the damaged %s store was not kept aside", round.sub)
		}
		for _, keep := range []string{filepath.Join(node.Dir, "node.crt"), filepath.Join(node.Dir, "node.key"), filepath.Join(node.Dir, "data.key")} {
			if _, err := os.Stat(keep); err != nil {
				t.Fatalf("identity file gone: %v", err)
			}
		}
		// Rebuilding a healthy (or no) store needs --force.
		if res := harness.RunCLI(t, "rebuild", "--config", node.ConfigPath); res.ExitCode == 0 || !strings.Contains(res.Stderr, "nothing") {
			t.Fatalf("rebuild of a healthy store: exit %d %s", res.ExitCode, res.Stderr)
		}

		start = time.Now()
		st.Start(f)
		st.WaitSync(syncTimeout)
		t.Logf("rebuilt %s caught up in %v", node.ID, time.Since(start).Round(time.Millisecond))
		if log, err := os.ReadFile(node.LogPath); err == nil {
			runs := strings.Split(string(log), "=== harness: start")
			if !strings.Contains(strings.ToLower(runs[len(runs)-1]), "installed remote snapshot") {
				t.Fatalf("the rebuilt %s caught up without a snapshot from the leader; its log:\n%s", node.ID, runs[len(runs)-1])
			}
		}
		for i := range 3 {
			requireCases(t, st.Node(i), acked)
		}
		// It takes writes again, and they reach the others.
		write(f, fmt.Sprintf("after%d-", r), 2)
		st.WaitSync(syncTimeout)
		for i := range 3 {
			requireCases(t, st.Node(i), acked)
		}
	}
}

// overwriteTable overwrites 64 bytes in the middle of the store's first
// table file.
func overwriteTable(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(m) == 0 {
		t.Fatalf("no table in %s", dir)
	}
	f, err := os.OpenFile(m[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 64)), fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	return filepath.Base(m[0])
}

func deleteManifest(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	return "MANIFEST"
}
