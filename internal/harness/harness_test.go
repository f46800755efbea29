package harness

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "stationsync", "main.go")); err != nil {
		t.Fatalf("module root %s has no cmd/stationsync: %v", root, err)
	}
}

func TestFreePortsDistinct(t *testing.T) {
	a, err := FreePorts("127.0.0.1", 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FreePorts("127.0.0.1", 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range append(a, b...) {
		if p <= 0 || seen[p] {
			t.Fatalf("port %d handed out twice or invalid: %v %v", p, a, b)
		}
		seen[p] = true
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("STATIONSYNC_API_URL", "http://127.0.0.1:1")
	env := Environ("STATIONSYNC_EXPECT=2")
	var ours []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "STATIONSYNC_") {
			ours = append(ours, kv)
		}
	}
	if len(ours) != 1 || ours[0] != "STATIONSYNC_EXPECT=2" {
		t.Fatalf("STATIONSYNC_* in Environ: %v", ours)
	}
}

func TestRunCLI(t *testing.T) {
	t.Parallel()
	res := MustRunCLI(t, "version")
	if !strings.HasPrefix(res.Stdout, "stationsync ") {
		t.Fatalf("version printed %q", res.Stdout)
	}
	res = RunCLI(t, "no-such-command")
	if res.ExitCode == 0 {
		t.Fatalf("unknown command exited 0: %+v", res)
	}
}

// TestNodeLifecycle starts, stops, restarts and kills a one-node station.
func TestNodeLifecycle(t *testing.T) {
	t.Parallel()
	st := NewStation(t, "XC-HT-01", 1, WithConfig(func(i int, cfg map[string]any) {
		cfg["log"] = map[string]any{"level": "debug"}
	}))
	n := st.Node(0)
	cfgText, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node_id: pc-1", "station_id: XC-HT-01", "level: debug", "expect: 1"} {
		if !strings.Contains(string(cfgText), want) {
			t.Errorf("config lacks %q:\n%s", want, cfgText)
		}
	}

	st.StartAll()
	if li := st.WaitLeader(20 * time.Second); li != 0 {
		t.Fatalf("leader index %d", li)
	}
	s, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.Node != "pc-1" || s.Station != "XC-HT-01" || s.Raft.State != "leader" || s.Raft.Leader != "pc-1" || s.Raft.LeaderAddress != n.QUIC {
		t.Fatalf("status %+v", s)
	}

	_, err = n.GetCase("no-such-case")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != "not_found" {
		t.Fatalf("GetCase of a missing case: %v", err)
	}
	if err := n.PutItem("XC-L-0001", "企业开办"); err != nil {
		t.Fatal(err)
	}
	id, code, err := n.CreateCase(CaseRequest{ItemCode: "XC-L-0001"})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("CreateCase: %q %d %v", id, code, err)
	}

	if err := st.Stop(0); err != nil {
		t.Fatalf("SIGTERM: node exited with %v", err)
	}
	if n.Running() || len(st.Running()) != 0 {
		t.Fatal("node still running after Stop")
	}
	st.Start(0)
	st.WaitLeader(20 * time.Second)
	if c, err := n.GetCase(id); err != nil || c.ID != id {
		t.Fatalf("case after restart: %+v %v", c, err)
	}
	st.Kill(0)
	if exited, err := n.Wait(time.Second); !exited || err == nil {
		t.Fatalf("after SIGKILL: exited %v, err %v (want a signal exit)", exited, err)
	}
	log, err := os.ReadFile(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(log), "=== harness: start pc-1"); c != 2 {
		t.Fatalf("log has %d start markers, want 2", c)
	}
}

// TestCleanupKillsNodes checks that a node left running by a test is gone
// once the test's cleanups have run.
func TestCleanupKillsNodes(t *testing.T) {
	t.Parallel()
	var n *Node
	t.Run("leaves-a-node-running", func(t *testing.T) {
		st := NewStation(t, "XC-HT-02", 1)
		st.Start(0)
		n = st.Node(0)
		if !n.Running() || n.PID() == 0 {
			t.Fatal("node not running after Start")
		}
	})
	if n == nil {
		t.Fatal("subtest did not run")
	}
	if n.Running() {
		t.Fatalf("node pid %d still running after its test ended", n.PID())
	}
	if exited, _ := n.Wait(time.Second); !exited {
		t.Fatal("node not reaped")
	}
}
