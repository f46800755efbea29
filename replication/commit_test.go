package replication

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

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

// A follower resends forwarded ops to the current leader when the node it
// sent them to answers not_leader (forward); applyLeader's errors for a
// node that lost leadership must map to it, the others not.
func TestApplyErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("%w: leadership changed during the write (%v); retry with the same id", ErrNoLeader, raft.ErrLeadershipLost), "not_leader"},
		{fmt.Errorf("%w: leadership changed during the write (%v); retry with the same id", ErrNoLeader, raft.ErrNotLeader), "not_leader"},
		{fmt.Errorf("%w: raft stopped on this node during the write; retry with the same id", ErrNoLeader), "not_leader"},
		{fmt.Errorf("%w: this node's raft log write failed (disk); the other PCs may have made the write: retry with the same id", ErrOutcomeUnknown), "unknown"},
		{fmt.Errorf("%w: 70000 bytes, at most 65536 in one write", ErrTooLarge), "internal"},
		{ErrClosed, "internal"},
		{fmt.Errorf("raft apply: %w", raft.ErrEnqueueTimeout), "internal"},
	} {
		if got := applyErrorCode(c.err); got != c.code {
			t.Errorf("%v: code %q, want %q", c.err, got, c.code)
		}
	}
}
