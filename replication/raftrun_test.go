package replication

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// unanswered is a raft future raft dropped at shutdown: Error blocks
// until the test ends.
type unanswered struct{ release chan struct{} }

func (f unanswered) Error() error { <-f.release; return errors.New("released") }

// TestRaftRunWaitEndsWhenStopped: waiting on a future raft never answers
// returns raft.ErrRaftShutdown once the run is stopped, and at once
// after; an answered future's error comes through.
func TestRaftRunWaitEndsWhenStopped(t *testing.T) {
	rr := &raftRun{stopped: make(chan struct{})}
	f := unanswered{release: make(chan struct{})}
	defer close(f.release)
	got := make(chan error, 1)
	go func() { got <- rr.wait(f) }()
	select {
	case err := <-got:
		t.Fatalf("wait returned %v before the run stopped", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(rr.stopped)
	select {
	case err := <-got:
		if !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("wait: %v, want ErrRaftShutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not return after the run stopped")
	}
	if err := rr.wait(f); !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("wait on a stopped run: %v", err)
	}

	live := &raftRun{stopped: make(chan struct{})}
	answered := unanswered{release: make(chan struct{})}
	close(answered.release)
	if err := live.wait(answered); err == nil || err.Error() != "released" {
		t.Fatalf("wait on an answered future: %v", err)
	}
}

// TestRaftTransportDoesNotPipeline: the node's raft transport refuses
// pipelined replication (raftRPCsInFlight: hashicorp/raft's pipeline can
// deadlock a follower's replication and raft's Shutdown).
func TestRaftTransportDoesNotPipeline(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	n := c.nodes[leader].n
	peer := c.nodes[c.follower(leader)]
	p, err := n.raftNet.AppendEntriesPipeline(raft.ServerID(peer.id), raft.ServerAddress(peer.addr))
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		if p != nil {
			p.Close()
		}
		t.Fatalf("AppendEntriesPipeline: %v, want ErrPipelineReplicationNotSupported", err)
	}
}

// TestSnapshotSoonAfterRestart: a node whose log holds SnapshotThreshold
// entries after its last snapshot takes one soon after it starts, even
// though raft's own check (every SnapshotInterval of a run) has not come:
// a PC restarted more often than that would otherwise never snapshot,
// and every start would read its whole log.
func TestSnapshotSoonAfterRestart(t *testing.T) {
	const after = 200 * time.Millisecond
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotAfterStart = after   // the test's nodes still run after it returns: a Config field, not a package variable
		cfg.SnapshotInterval = time.Hour // raft's own check never comes in this test
		cfg.SnapshotThreshold = 64
	})
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	victim := c.follower(leader)
	// Before the threshold is reached: the check after start finds
	// nothing to do, and no snapshot is taken.
	for i := 0; i < 10; i++ {
		if err := createCase(c.nodes[leader].n, ctx(t), fmt.Sprintf("case-a%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.stop(victim)
	c.start(victim)
	time.Sleep(after + 2*time.Second)
	if metas, _ := c.nodes[victim].n.snapshots.List(); len(metas) != 0 {
		t.Fatalf("a snapshot was taken below the threshold, at %d", metas[0].Index)
	}
	for i := 0; i < 80; i++ {
		if err := createCase(c.nodes[leader].n, ctx(t), fmt.Sprintf("case-b%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the victim has every case", func() bool { return hasCase(c.nodes[victim].n, "case-b079") })
	last := c.nodes[victim].n.r().LastIndex()
	c.stop(victim)
	c.start(victim)
	eventually(t, "a snapshot after the restart", func() bool {
		metas, err := c.nodes[victim].n.snapshots.List()
		return err == nil && len(metas) > 0 && metas[0].Index >= last-2
	})
}

// TestUnfinishedSnapshotRemovedAtStart: the folder of a snapshot a
// killed process left half-written is removed when the node starts;
// finished snapshots stay.
func TestUnfinishedSnapshotRemovedAtStart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	victim := c.follower(leader)
	eventually(t, "a snapshot of the follower", func() bool { return c.nodes[victim].n.Snapshot() == nil })
	dir := filepath.Join(c.nodes[victim].dir, "data", "snapshots", "snapshots")
	half := filepath.Join(dir, "9-999-1795690000000.tmp")
	if err := os.MkdirAll(half, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "state.bin"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.stop(victim)
	c.start(victim)
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Fatalf("the unfinished snapshot is still there: %v", err)
	}
	if metas, err := c.nodes[victim].n.snapshots.List(); err != nil || len(metas) != 1 {
		t.Fatalf("finished snapshots after the start: %d %v", len(metas), err)
	}
}
