package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
	"github.com/stationsync/stationsync/replication/transport"
)

// goCluster is a station of three in-process nodes (real QUIC on loopback,
// real badger stores with SyncWrites), built as replication/cluster_test.go
// builds its test cluster.
type goCluster struct {
	nodes  []*replication.Node
	trs    []*transport.Transport
	clocks []*records.Clock
	ids    []string
}

func newGoCluster(root string, n int) (*goCluster, error) {
	sc, err := newSectionCluster(root, n, false)
	if err != nil {
		return nil, err
	}
	return sc.goCluster, nil
}

// stopNode closes node i and its transport, as a PC shut down.
func (c *goCluster) stopNode(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
	}
	if c.trs[i] != nil {
		c.trs[i].Close()
	}
	c.nodes[i], c.trs[i] = nil, nil
}

// Close stops every node still running.
func (c *goCluster) Close() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.stopNode(i)
	}
}

func (c *goCluster) submit(ctx context.Context, i int, op records.Op) error {
	res, err := c.nodes[i].Submit(ctx, []records.Op{op})
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return fmt.Errorf("submit: %d results", len(res))
	}
	if res[0].Error != nil {
		return res[0].Error
	}
	return nil
}

var notePayload = json.RawMessage(func() []byte {
	b, _ := json.Marshal(map[string]any{"note": payload})
	return b
}())

// workload: client w submits on node (first+w)%3 (a follower forwards to
// the leader), the same case-event sequence as the HTTP workload.
func (c *goCluster) workload(clients, first int, creates *atomic.Int64) (prepareFunc, opFunc) {
	st := make([]httpClientState, clients)
	run := time.Now().UnixNano()
	prepare := func(ctx context.Context, w int) error {
		i := (first + w) % len(c.nodes)
		cs := &st[w]
		if cs.caseID != "" && cs.n < eventsPerCase {
			return nil
		}
		cse := records.Case{ID: fmt.Sprintf("g%x-%d", run, caseSeq.Add(1)), ItemCode: "BENCH-0001", Channel: "window", Actor: "bench", Applicant: records.Applicant{Kind: "person", Name: "bench"}}
		if err := cse.Validate(); err != nil {
			return err
		}
		records.PrepareCase(&cse, "BENCH-01", c.ids[i], c.clocks[i].Now())
		if err := c.submit(ctx, i, records.Op{Kind: records.OpCreateCase, Case: &cse}); err != nil {
			return fmt.Errorf("create case: %w", err)
		}
		creates.Add(1)
		cs.caseID, cs.n = cse.ID, 0
		return nil
	}
	op := func(ctx context.Context, w int) (bool, error) {
		i := (first + w) % len(c.nodes)
		cs := &st[w]
		typ := records.EventAccepted
		if cs.n > 0 {
			typ = records.EventPaused
			if cs.n%2 == 0 {
				typ = records.EventResumed
			}
		}
		ev := records.Event{Type: typ, Actor: "bench", Data: notePayload}
		records.PrepareEvent(&ev, cs.caseID, c.ids[i], c.clocks[i].Now())
		if err := c.submit(ctx, i, records.Op{Kind: records.OpAppendEvent, Event: &ev}); err != nil {
			cs.n = eventsPerCase
			var de *records.Error
			if errors.As(err, &de) {
				return false, fmt.Errorf("event: %v", de)
			}
			return false, err
		}
		cs.n++
		return false, nil
	}
	return prepare, op
}

// lastIndex is the highest last raft log index among the running nodes.
func (c *goCluster) lastIndex() uint64 {
	var last uint64
	for _, n := range c.nodes {
		if n != nil {
			last = max(last, n.Status().LastLogIndex)
		}
	}
	return last
}

// leaderIndex waits up to 30 s for a leader among the nodes and returns
// its index.
func (c *goCluster) leaderIndex() (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return i, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1, errors.New("no leader within 30 s")
}
