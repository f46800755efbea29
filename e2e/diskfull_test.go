//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stationsync/stationsync/internal/harness"
)

// TestDiskFullStopsWritesAndResumes: one node of a 3-node station keeps its
// data_dir on a small tmpfs. Filling that file system with a file until
// less than disk_reserve_mb (64 MiB) is free makes the node answer writes
// with 507 {"error":{"code":"disk_full"}} naming data_dir and the free
// space, show it in /v1/status and /metrics, and leave replication; the
// process stays alive and the other nodes keep taking writes. Deleting the
// file lets the node resume by itself (no restart): it takes writes again
// and catches up with everything written meanwhile. Restarted, its stores
// open cleanly (the start verifies them: see TestDamagedStoreRefusedThenRebuilt).
//
// Two runs: the full node is a follower (pc-3), and the leader (pc-1, the
// node that bootstraps: it hands leadership over before it stops raft).
func TestDiskFullStopsWritesAndResumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	t.Run("follower", func(t *testing.T) { testDiskFull(t, "XC-E2E-DISK1", 2) })
	t.Run("leader", func(t *testing.T) { testDiskFull(t, "XC-E2E-DISK2", 0) })
}

func testDiskFull(t *testing.T, station string, victim int) {
	mnt := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	// Registered before the station: runs after its nodes are killed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	dataDir := filepath.Join(mnt, "data")
	st := harness.NewStation(t, station, 3, harness.WithConfig(func(i int, cfg map[string]any) {
		if i == victim {
			cfg["data_dir"] = dataDir
		}
	}))
	st.StartAll()
	leader := st.WaitLeader(leaderTimeout)
	t.Logf("leader %s; %s's data_dir is on the tmpfs", st.Node(leader).ID, st.Node(victim).ID)
	if (victim == 0) != (leader == victim) {
		t.Logf("note: the full node %s is not in the role this run is for (leader %s)", st.Node(victim).ID, st.Node(leader).ID)
	}
	if err := st.Node(leader).PutItem(itemCode, "企业开办"); err != nil {
		t.Fatal(err)
	}
	var acked []string
	writeOn := func(i int, tag string) {
		t.Helper()
		id, err := writeCase(st.Node(i), station, tag)
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, id)
	}
	for k := range 6 {
		writeOn(k%3, fmt.Sprintf("before%d", k))
	}
	st.WaitSync(syncTimeout)
	node := st.Node(victim)

	// Fill the file system until 40 MiB are free (the reserve is 64 MiB).
	filler := filepath.Join(mnt, "filler")
	free := statfsFree(t, mnt)
	fillTo(t, filler, int64(free)-40<<20)
	t.Logf("filled %s: %d MiB free", mnt, statfsFree(t, mnt)>>20)
	start := time.Now()
	var status int
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		status, body, err = node.Do(http.MethodPost, "/v1/cases", harness.CaseRequest{ItemCode: itemCode, Actor: "clerk-x", Applicant: harness.Applicant{Kind: "person", Name: "满盘"}})
		if err != nil {
			t.Fatal(err)
		}
		if status == http.StatusInsufficientStorage {
			break
		}
		if status == http.StatusCreated || status == http.StatusAccepted {
			var c struct {
				Case harness.Case `json:"case"`
			}
			if json.Unmarshal(body, &c) == nil && c.Case.ID != "" {
				acked = append(acked, c.Case.ID) // taken before the guard tripped
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 507 within 10 s of the disk filling: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("507 after %v: %s", time.Since(start).Round(time.Millisecond), body)
	var apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &apiErr); err != nil {
		t.Fatalf("507 body is not the JSON error: %s", body)
	}
	if apiErr.Error.Code != "disk_full" || !strings.Contains(apiErr.Error.Message, dataDir) || !strings.Contains(apiErr.Error.Message, "MiB free") {
		t.Fatalf("507 error: %+v", apiErr.Error)
	}
	var sv struct {
		Disk struct {
			Stopped bool   `json:"writes_stopped"`
			Free    uint64 `json:"free_bytes"`
			DataDir string `json:"data_dir"`
		} `json:"disk"`
		Warnings []string `json:"warnings"`
	}
	if _, err := node.Get("/v1/status", &sv); err != nil {
		t.Fatal(err)
	}
	if !sv.Disk.Stopped || sv.Disk.DataDir != dataDir || len(sv.Warnings) == 0 {
		t.Fatalf("/v1/status while the disk is full: %+v", sv)
	}
	if m := metricsText(t, node); !strings.Contains(m, "stationsync_disk_writes_stopped 1") {
		t.Fatalf("/metrics has no stationsync_disk_writes_stopped 1")
	}

	// The others go on (a new leader if the victim led).
	others := []int{(victim + 1) % 3, (victim + 2) % 3}
	deadline = time.Now().Add(leaderTimeout)
	for k := 0; k < 6; {
		i := others[k%2]
		id, err := writeCase(st.Node(i), station, fmt.Sprintf("during%d", k))
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the other nodes take no writes while %s's disk is full: %v", node.ID, err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		acked = append(acked, id)
		k++
	}
	if !node.Running() {
		t.Fatalf("%s exited", node.ID)
	}
	if _, err := node.ListCases(); err != nil {
		t.Fatalf("reads on the full node: %v", err)
	}

	// Space back: the node resumes by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	deadline = time.Now().Add(20 * time.Second)
	for k := 0; ; k++ {
		id, err := writeCase(node, station, fmt.Sprintf("after%d", k))
		if err == nil {
			acked = append(acked, id)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s takes no writes 20 s after space came back: %v", node.ID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s took a write %v after the file was deleted", node.ID, time.Since(start).Round(time.Millisecond))
	st.WaitSync(syncTimeout)
	t.Logf("%s caught up %v after the file was deleted", node.ID, time.Since(start).Round(time.Millisecond))
	for i := range 3 {
		requireCases(t, st.Node(i), acked)
	}
	if _, err := node.Get("/v1/status", &sv); err != nil || sv.Disk.Stopped {
		t.Fatalf("status after resuming: %+v %v", sv, err)
	}

	// Restarted, the store opens cleanly and holds everything.
	st.Restart(victim)
	st.WaitSync(syncTimeout)
	requireCases(t, node, acked)
	if log, _ := os.ReadFile(node.LogPath); strings.Contains(string(log), "panic") || strings.Contains(string(log), "SIGBUS") {
		t.Fatalf("%s's log shows a crash", node.ID)
	}
}

func statfsFree(t *testing.T, dir string) uint64 {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return uint64(s.Bavail) * uint64(s.Bsize)
}

// fillTo writes a file of size bytes.
func fillTo(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for size > 0 {
		n := min(int64(len(buf)), size)
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		size -= n
	}
}

func metricsText(t *testing.T, n *harness.Node) string {
	t.Helper()
	resp, err := n.HTTPClient().Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
