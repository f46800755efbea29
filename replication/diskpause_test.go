package replication

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

const pauseBound = 30 * time.Second

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

// TestPauseWritesWhileLosingLeadership: the disk guard may pause a leader
// at any moment of an election it is losing: cut off from the others,
// or just back and learning of a newer term. PauseWrites must return
// (bounded) in every case, and the node must resume and catch up. The
// chaos run once found a PC stuck for good in PauseWrites there.
func TestPauseWritesWhileLosingLeadership(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	putItem(t, c.nodes[c.waitLeader()].n, "XC-L-0001")
	// Clerks write at every node throughout, as at a station: the leader
	// being paused has entries in flight to its followers.
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for i, tn := range c.nodes {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				cx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				createCase(tn.n, cx, fmt.Sprintf("load-%d-%05d", i, k)) // refused while paused or leaderless: fine
				cancel()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	defer writers.Wait()
	defer close(stop)
	delays := []time.Duration{0, 40 * time.Millisecond, 400 * time.Millisecond}
	for round, d := range delays {
		for _, whilePartitioned := range []bool{true, false} {
			leader := c.waitLeader()
			v := c.nodes[leader].n
			c.partition([]int{leader})
			if !whilePartitioned {
				// The others elect a new leader; the old one learns of
				// the newer term just after the heal.
				eventually(t, "the others elect a leader", func() bool {
					for i, tn := range c.nodes {
						if i != leader && tn.n.Status().State == "leader" {
							return true
						}
					}
					return false
				})
				c.heal()
			}
			time.Sleep(d)
			done := make(chan error, 1)
			go func() { done <- v.PauseWrites() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("round %d: pause: %v", round, err)
				}
			case <-time.After(pauseBound):
				buf := make([]byte, 1<<22)
				t.Fatalf("round %d (partitioned %v, after %v): PauseWrites did not return within %v; goroutines:\n%s",
					round, whilePartitioned, d, pauseBound, buf[:runtime.Stack(buf, true)])
			}
			c.heal()
			if err := v.ResumeWrites(); err != nil {
				t.Fatalf("round %d: resume: %v", round, err)
			}
			t.Logf("round %d (partitioned %v, after %v): paused and resumed", round, whilePartitioned, d)
			try := 0
			eventually(t, "the resumed node takes writes", func() bool {
				try++ // a new case each try: a try may have been written but answered late
				return createCase(v, ctx(t), fmt.Sprintf("case-%d-%v-%d", round, whilePartitioned, try)) == nil
			})
		}
	}
}
