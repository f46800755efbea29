package replication

import (
	"errors"
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
