package replication

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ErrWritesPaused: the node paused its writes (PauseWrites): nothing is
// written to its stores until ResumeWrites.
var ErrWritesPaused = errors.New("this node's writes are paused: its data folder's disk is nearly full")

// Pausing writes. The daemon's disk guard pauses a node whose data folder
// is about to fill up, before badger or raft reach a full disk: badger
// writes its memtable WAL, value log and tables through mmapped sparse
// files, and a store into a page the file system cannot allocate kills the
// process with SIGBUS; raft panics when it cannot persist its term.
//
// A paused node has no raft instance: PauseWrites hands leadership over
// (when it leads) and shuts raft down, which also closes its transport, so
// the station sees it as a stopped member and goes on with the others
// (with three nodes, two keep the quorum). Value-log GC is paused too.
// Reads keep working from the state store. New writes get
// ErrWritesPaused at once; the outbox takes none and delivers none.
// ResumeWrites starts a new raft instance on the same stores and
// transport, as a restart would: the node is still a member, and the
// leader sends it what it missed.

// Paused reports whether writes are paused.
func (n *Node) Paused() bool { return n.paused.Load() }

// PauseWrites pauses the node's writes (see above). It is a no-op when
// they are paused already.
func (n *Node) PauseWrites() error {
	n.pauseMu.Lock()
	defer n.pauseMu.Unlock()
	if n.paused.Load() {
		return nil
	}
	if n.cfg.RaftTransport != nil {
		return errors.New("pause writes: not supported with a custom raft transport")
	}
	n.paused.Store(true)
	start := time.Now()
	rr := n.run()
	if rr.State() == raft.Leader {
		if err := rr.wait(rr.LeadershipTransfer()); err != nil {
			n.logger.Warn("pause writes: leadership transfer failed; shutting down as leader", "error", err)
		}
	}
	if err := n.stopLogging(rr, "pause writes"); err != nil {
		return fmt.Errorf("pause writes: raft shutdown: %w", err)
	}
	n.fsm.drain() // raft has stopped: its last commit is written before the pause
	n.logs.PauseGC(true)
	if n.stateGC != nil {
		n.stateGC.Pause(true)
	}
	n.logger.Warn("writes paused: raft stopped on this node", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// ResumeWrites restarts raft on the node's stores and ends the pause.
func (n *Node) ResumeWrites() error {
	n.pauseMu.Lock()
	defer n.pauseMu.Unlock()
	if !n.paused.Load() {
		return nil
	}
	select {
	case <-n.closing:
		return ErrClosed
	default:
	}
	n.raftNet = n.newRaftNet()
	if err := n.startRaft(n.hl); err != nil {
		if c, ok := n.raftNet.(raft.WithClose); ok {
			c.Close()
		}
		return fmt.Errorf("resume writes: %w", err)
	}
	n.logs.PauseGC(false)
	if n.stateGC != nil {
		n.stateGC.Pause(false)
	}
	n.paused.Store(false)
	select {
	case n.outbox.kick <- struct{}{}:
	default:
	}
	n.logger.Info("writes resumed: raft restarted on this node", "applied_index", n.fsm.applied.Load())
	return nil
}

// stopLogging stops a raft run, logging every stopWarnEvery while it has
// not stopped: raft waits for its replication goroutines, and a stuck one
// would otherwise leave the node silently half-stopped.
func (n *Node) stopLogging(rr *raftRun, what string) error {
	done := make(chan error, 1)
	go func() { done <- rr.stop() }()
	start := time.Now()
	t := time.NewTicker(stopWarnEvery)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			n.logger.Error(what+": raft has not stopped yet; still waiting", "waited", time.Since(start).Round(time.Second))
		}
	}
}

// stopWarnEvery: how often stopLogging says raft has not stopped yet.
const stopWarnEvery = 10 * time.Second
