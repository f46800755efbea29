package replication

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// raftRun is one run of raft on the node's stores: from Open, or from
// ResumeWrites, until PauseWrites or Close shuts it down.
//
// hashicorp/raft does not answer every future it took when it shuts
// down: an Apply or Barrier still in its buffered apply channel
// (Config.BatchApplyCh), or committed and queued for the FSM, is dropped,
// and its Error() then blocks for ever. A node that pauses its writes
// (diskpause.go) shuts raft down under load and goes on running, so every
// wait on a raft future goes through wait, which gives up with
// raft.ErrRaftShutdown once the run is stopped.
type raftRun struct {
	*raft.Raft
	net      raft.Transport // raft's transport (commit notices, commit.go)
	stopped  chan struct{}  // closed by stop
	stopOnce sync.Once

	started     time.Time   // when the run started
	startLast   uint64      // its last log index then
	snapChecked atomic.Bool // the check after start (snapshotIfBehind) is taken
}

func newRaftRun(r *raft.Raft, net raft.Transport) *raftRun {
	return &raftRun{Raft: r, net: net, stopped: make(chan struct{}), started: time.Now(), startLast: r.LastIndex()}
}

// stop shuts raft down and waits until it has stopped; waits on this
// run's futures return at once.
func (rr *raftRun) stop() error {
	f := rr.Shutdown()
	rr.stopOnce.Do(func() { close(rr.stopped) })
	return f.Error()
}

// wait is f.Error(), or raft.ErrRaftShutdown once the run is stopped.
// A future raft dropped is never answered: the goroutine waiting for it
// then stays blocked, one per write in flight when the run stopped
// (raft's Future has no channel to select on). Futures raft answers, all
// of them while the run lasts, end it.
func (rr *raftRun) wait(f raft.Future) error {
	select {
	case <-rr.stopped:
		return raft.ErrRaftShutdown
	default:
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-rr.stopped:
		return raft.ErrRaftShutdown
	}
}
