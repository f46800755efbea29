package replication

import (
	"testing"
	"time"
)

// TestStateChangedWakesOnElectionAndStepDown: a waiter on StateChanged is
// woken when its node becomes the leader and when the leader, cut off from
// the others, steps down; nobody polls.
func TestStateChangedWakesOnElectionAndStepDown(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	// Wait on the channel only: the leader is found by being woken.
	elected := make(chan int, len(c.nodes))
	done := make(chan struct{})
	defer close(done)
	for i, tn := range c.nodes {
		n := tn.n
		go func() {
			deadline := time.After(20 * time.Second)
			for {
				ch := n.StateChanged()
				if n.IsLeader() {
					elected <- i
					return
				}
				select {
				case <-ch:
				case <-deadline:
					return
				case <-done:
					return
				}
			}
		}()
	}
	var leader int
	select {
	case leader = <-elected:
	case <-time.After(20 * time.Second):
		t.Fatal("no node was woken as the leader within 20 s")
	}
	n := c.nodes[leader].n
	ch := n.StateChanged()
	if !n.IsLeader() {
		t.Fatalf("%s woken as the leader is not the leader", c.nodes[leader].id)
	}
	c.partition([]int{leader})
	defer c.heal()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s, cut off, did not report stepping down within 20 s", c.nodes[leader].id)
	}
	if n.IsLeader() {
		t.Errorf("%s woken by stepping down still says it is the leader", c.nodes[leader].id)
	}
}
