package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stationsync/stationsync/internal/harness"
)

// TestBackupRestoreRoundTrip: `stationsync backup` of a running follower,
// the node stopped and `stationsync restore` onto it (its data folder
// moved aside): started again, it rejoins its station and catches up with
// what was written meanwhile; nothing is lost or doubled.
func TestBackupRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	st := harness.NewStation(t, "XC-E2E-BK", 3)
	st.StartAll()
	leader := st.WaitLeader(leaderTimeout)
	if err := st.Node(leader).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	var acked []string
	for i := range 10 {
		id, err := writeCase(st.Node(i%3), "XC-E2E-BK", fmt.Sprintf("b%d", i))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, id)
	}
	st.WaitSync(syncTimeout)
	f := (leader + 1) % 3
	node := st.Node(f)
	file := filepath.Join(t.TempDir(), "pc.backup")
	if r := harness.RunCLI(t, "backup", "--api", node.URL, "--out", file); r.ExitCode != 0 {
		t.Fatalf("backup: %s %s", r.Stdout, r.Stderr)
	}
	if r := harness.RunCLI(t, "restore", "--config", node.ConfigPath, file); r.ExitCode == 0 || !strings.Contains(r.Stderr, "running") {
		t.Fatalf("restore onto a running node: exit %d %s", r.ExitCode, r.Stderr)
	}
	if err := st.Stop(f); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		id, err := writeCase(st.Node(leader), "XC-E2E-BK", fmt.Sprintf("a%d", i))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, id)
	}
	r := harness.RunCLI(t, "restore", "--config", node.ConfigPath, file)
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "before-restore") {
		t.Fatalf("restore: exit %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	matches, _ := filepath.Glob(node.DataDir + ".before-restore-*")
	if len(matches) != 1 {
		t.Fatalf("the old data folder was not kept aside: %v", matches)
	}
	if _, err := os.Stat(filepath.Join(node.DataDir, "snapshots")); err != nil {
		t.Fatalf("no restored snapshot: %v", err)
	}
	st.Start(f)
	st.WaitSync(syncTimeout)
	requireCases(t, node, acked)
}
