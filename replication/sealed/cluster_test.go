package sealed

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM keeps the applied commands. Its snapshot is the commands, one a
// line; it records what it persisted and what it restored.
type listFSM struct {
	mu        sync.Mutex
	cmds      []string
	persisted [][]byte
	restored  [][]byte
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return nil
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b bytes.Buffer
	for _, c := range f.cmds {
		b.WriteString(c + "\n")
	}
	return &listSnapshot{fsm: f, data: b.Bytes()}, nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored = append(f.restored, b)
	f.cmds = nil
	for line := range strings.Lines(string(b)) {
		f.cmds = append(f.cmds, strings.TrimSuffix(line, "\n"))
	}
	return nil
}

func (f *listFSM) state() (cmds int, restored [][]byte, persisted [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cmds), slices.Clone(f.restored), slices.Clone(f.persisted)
}

type listSnapshot struct {
	fsm  *listFSM
	data []byte
}

func (s *listSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return err
	}
	s.fsm.mu.Lock()
	s.fsm.persisted = append(s.fsm.persisted, s.data)
	s.fsm.mu.Unlock()
	return sink.Close()
}

func (s *listSnapshot) Release() {}

type testNode struct {
	id      raft.ServerID
	addr    raft.ServerAddress
	trans   *raft.InmemTransport
	fsm     *listFSM
	logs    *raft.InmemStore
	snaps   *SnapshotStore
	snapDir string
	raft    *raft.Raft
}

func testRaftConfig(id raft.ServerID, logOut io.Writer) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 40 // snapshots only when the test asks
	c.SnapshotInterval = time.Hour
	c.TrailingLogs = 2
	c.Logger = hclog.New(&hclog.LoggerOptions{Name: string(id), Output: logOut, Level: hclog.Info})
	return c
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a log sink shared by the raft instances.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClusterInstallsSealedSnapshot runs three raft nodes, each sealing its
// snapshots with its own key. A follower that was away while the others
// snapshotted and truncated their logs must catch up by InstallSnapshot:
// the leader decrypts with its key, the follower seals with its own, and
// the follower's FSM gets exactly the leader's snapshot bytes.
func TestClusterInstallsSealedSnapshot(t *testing.T) {
	logOut := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("DUMP") != "" {
			t.Logf("raft log:\n%s", logOut)
		}
	})

	nodes := make([]*testNode, 3)
	for i := range nodes {
		n := &testNode{id: raft.ServerID(fmt.Sprintf("n%d", i+1)), fsm: &listFSM{}, logs: raft.NewInmemStore()}
		n.addr, n.trans = raft.NewInmemTransport("")
		n.snapDir = t.TempDir()
		inner, err := raft.NewFileSnapshotStore(n.snapDir, 2, logOut)
		if err != nil {
			t.Fatal(err)
		}
		if n.snaps, err = NewSnapshotStore(inner, newKey(t)); err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
	}
	connect := func(a, b *testNode) {
		a.trans.Connect(b.addr, b.trans)
		b.trans.Connect(a.addr, a.trans)
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			connect(a, b)
		}
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: n.id, Address: n.addr})
	}
	for _, n := range nodes {
		r, err := raft.NewRaft(testRaftConfig(n.id, logOut), n.fsm, n.logs, n.logs, n.snaps, n.trans)
		if err != nil {
			t.Fatal(err)
		}
		n.raft = r
		t.Cleanup(func() { r.Shutdown().Error() })
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}

	leader := func() *testNode {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				return n
			}
		}
		return nil
	}
	apply := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			var err error
			for range 100 { // retry across a leader change
				l := leader()
				if l == nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				// ~4 KiB a command: the snapshot spans several chunks.
				cmd := fmt.Sprintf("applicant %d id=%s phone=13800138000 %s", i, marker, strings.Repeat("x", 4000))
				if err = l.raft.Apply([]byte(cmd), 5*time.Second).Error(); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("apply %d: %v", i, err)
			}
		}
	}
	waitApplied := func(want int, ns ...*testNode) {
		t.Helper()
		for _, n := range ns {
			waitFor(t, fmt.Sprintf("%s to apply %d commands", n.id, want), func() bool {
				c, _, _ := n.fsm.state()
				return c == want
			})
		}
	}

	waitFor(t, "a leader", func() bool { return leader() != nil })
	apply(0, 10)
	waitApplied(10, nodes...)

	// Cut one follower off; the other two go on, snapshot and truncate.
	var away *testNode
	var stay []*testNode
	for _, n := range nodes {
		if n != leader() && away == nil {
			away = n
		} else {
			stay = append(stay, n)
		}
	}
	for _, n := range stay {
		n.trans.Disconnect(away.addr)
	}
	away.trans.DisconnectAll()
	apply(10, 40)
	waitApplied(40, stay...)
	for _, n := range stay {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", n.id, err)
		}
		first, err := n.logs.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		if first <= away.raft.LastIndex()+1 {
			t.Fatalf("%s kept its log from %d: the follower at %d would not need a snapshot", n.id, first, away.raft.LastIndex())
		}
	}
	var sent [][]byte
	for _, n := range stay {
		_, _, p := n.fsm.state()
		sent = append(sent, p...)
	}

	// Back: the follower can only catch up from a snapshot.
	for _, n := range stay {
		connect(n, away)
	}
	waitFor(t, "the follower to restore a snapshot", func() bool {
		_, r, _ := away.fsm.state()
		return len(r) > 0
	})
	waitApplied(40, away)
	_, restored, _ := away.fsm.state()
	if !slices.ContainsFunc(sent, func(b []byte) bool { return bytes.Equal(b, restored[0]) }) {
		t.Fatalf("the follower restored %d bytes that are not a snapshot the others persisted", len(restored[0]))
	}
	if len(restored[0]) < 2*chunkSize {
		t.Errorf("snapshot of %d bytes: want several chunks", len(restored[0]))
	}
	if !bytes.Contains(restored[0], []byte(marker)) {
		t.Fatal("the snapshot does not contain the marker: the test proves nothing")
	}

	// The follower stored the snapshot sealed with its own key, with the
	// plain size in its metadata.
	list, err := away.snaps.List()
	if err != nil || len(list) == 0 {
		t.Fatalf("follower List = %v, %v", list, err)
	}
	if list[0].Size != int64(len(restored[0])) {
		t.Errorf("follower snapshot size %d, want plain %d", list[0].Size, len(restored[0]))
	}

	// Replication goes on normally afterwards.
	apply(40, 45)
	waitApplied(45, nodes...)

	// No snapshot file on any node holds the marker, and every state file
	// is sealed.
	for _, n := range nodes {
		if found := filesWith(t, n.snapDir, marker); len(found) > 0 {
			t.Errorf("%s: marker found in %v", n.id, found)
		}
		states, _ := filepath.Glob(filepath.Join(n.snapDir, "snapshots", "*", "state.bin"))
		if len(states) == 0 {
			t.Errorf("%s: no snapshot on disk", n.id)
		}
		for _, p := range states {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("SSEAL\x01")) {
				t.Errorf("%s: %s is not sealed", n.id, p)
			}
		}
	}

	// A restart restores the FSM from the sealed snapshot on disk.
	if err := away.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	fresh := &listFSM{}
	_, trans := raft.NewInmemTransport("")
	r, err := raft.NewRaft(testRaftConfig(away.id, logOut), fresh, away.logs, away.logs, away.snaps, trans)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer r.Shutdown()
	_, got, _ := fresh.state()
	if len(got) != 1 || !slices.ContainsFunc(sent, func(b []byte) bool { return bytes.Equal(b, got[0]) }) {
		t.Errorf("restart restored %d snapshots, want the installed one", len(got))
	}
}
