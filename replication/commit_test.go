package replication

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stationsync/stationsync/records"
)

// mixedBatch is a batch as a node's batcher gathers it under load: a write
// a follower forwarded here (local) and one submitted on this node.
func mixedBatch(t *testing.T, forwardedID, ownID string) (forwarded, own *request) {
	t.Helper()
	req := func(id string, local bool) *request {
		ops := []records.Op{newCase(id)}
		raw, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		return &request{ops: ops, raw: raw, local: local, done: make(chan response, 1)}
	}
	return req(forwardedID, true), req(ownID, false)
}

func answer(t *testing.T, r *request) response {
	t.Helper()
	select {
	case resp := <-r.done:
		return resp
	default:
		t.Fatal("commit returned without answering a request")
		return response{}
	}
}

// On the leader, forwarded writes and the leader's own share one raft
// entry. A node that lost leadership refuses the forwarded ones (the
// follower that sent them retries with the new leader) and still forwards
// its own to the leader.
func TestMixedBatch(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	ln := c.nodes[leader].n
	putItem(t, ln, "XC-L-0001")

	before := ln.Status().EntriesApplied
	fwd, own := mixedBatch(t, "mixed-fwd", "mixed-own")
	ln.commit([]*request{fwd, own})
	for _, r := range []*request{fwd, own} {
		resp := answer(t, r)
		if resp.err != nil || len(resp.results) != 1 || resp.results[0].Error != nil {
			t.Fatalf("leader, %s: %+v", r.ops[0].Case.ID, resp)
		}
	}
	if n := ln.Status().EntriesApplied - before; n != 1 {
		t.Fatalf("a batch of a forwarded write and an own write took %d raft entries on the leader, want 1", n)
	}

	fn := c.nodes[c.follower(leader)].n
	fwd, own = mixedBatch(t, "follower-fwd", "follower-own")
	fn.commit([]*request{fwd, own})
	if resp := answer(t, fwd); !errors.Is(resp.err, ErrNoLeader) {
		t.Fatalf("follower, forwarded write: %+v, want %v", resp, ErrNoLeader)
	}
	if resp := answer(t, own); resp.err != nil || len(resp.results) != 1 || resp.results[0].Error != nil {
		t.Fatalf("follower, own write: %+v", resp)
	}
	if !hasCase(fn, "follower-own") || !hasCase(ln, "follower-own") {
		t.Fatal("the follower's own write is missing after it was answered")
	}
	if hasCase(ln, "follower-fwd") {
		t.Fatal("a follower applied a write forwarded to it as if it were the leader")
	}
}
