package replication

import (
	"errors"
	"fmt"
	"testing"
)

// TestPauseWritesAndResume: a paused node (the leader, then a follower)
// refuses writes with ErrWritesPaused and queues nothing in its outbox;
// the others go on; resumed, it takes writes again and has every case
// written meanwhile. Run with -race: raft is replaced under the node's
// goroutines.
func TestPauseWritesAndResume(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	putItem(t, c.nodes[leader].n, "XC-L-0001")
	id := 0
	next := func() string { id++; return fmt.Sprintf("case-%03d", id) }
	for _, victim := range []int{leader, c.follower(leader)} {
		v := c.nodes[victim].n
		if err := v.PauseWrites(); err != nil {
			t.Fatal(err)
		}
		if !v.Paused() {
			t.Fatal("not paused")
		}
		if err := createCase(v, ctx(t), next()); !errors.Is(err, ErrWritesPaused) {
			t.Fatalf("write on a paused node: %v", err)
		}
		if _, _, err := v.Record(ctx(t), newCase(next())); !errors.Is(err, ErrWritesPaused) {
			t.Fatalf("record on a paused node: %v", err)
		}
		if n, _ := v.outbox.stats(); n != 0 {
			t.Fatalf("the paused node queued %d writes", n)
		}
		var written []string
		eventually(t, "the others take writes", func() bool {
			for i, tn := range c.nodes {
				if i == victim {
					continue
				}
				cid := next()
				if createCase(tn.n, ctx(t), cid) != nil {
					return false
				}
				written = append(written, cid)
			}
			return len(written) >= 4
		})
		if err := v.ResumeWrites(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the resumed node catches up", func() bool {
			for _, cid := range written {
				if !hasCase(v, cid) {
					return false
				}
			}
			return true
		})
		eventually(t, "the resumed node takes writes", func() bool { return createCase(v, ctx(t), next()) == nil })
		leader = c.waitLeader()
	}
}
