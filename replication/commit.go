package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/transport"
)

// Group commit. One raft entry costs the leader an fsync, a round trip and
// a follower fsync whatever its size, so concurrent writes are gathered
// into one entry: while maxInflight entries are on their way, new requests
// queue and travel together in the next one. The FSM applies an entry (and
// the entries raft hands it together) in one badger transaction.
const (
	maxInflight   = 4
	maxBatchOps   = 256
	maxBatchBytes = 128 << 10 // stays well inside one badger transaction
	maxWriteBytes = 64 << 10  // one request's ops
)

type request struct {
	ops   []records.Op
	raw   []byte // ops as a JSON array: encoded once, carried as they are into the raft entry
	done  chan response
	local bool // submitted on the leader (local or forwarded): apply, never forward
}

type response struct {
	results []Result
	err     error
}

// Submit applies ops through the cluster and returns one result per op once
// they are committed and applied on this node. On a follower the ops are
// forwarded to the leader. Domain errors come back in the results; the
// error return is for the write as a whole (no leader, closed, too large).
func (n *Node) Submit(ctx context.Context, ops []records.Op) ([]Result, error) {
	return n.submit(ctx, ops, false)
}

// submitForwarded applies ops a follower forwarded (raw: their JSON, as
// received and decoded into ops) on this node, the leader.
// A follower forwards its batch, which gathers up to maxBatchBytes of
// writes, each at most maxWriteBytes.
func (n *Node) submitForwarded(ctx context.Context, ops []records.Op, raw []byte) ([]Result, error) {
	return n.enqueue(ctx, &request{ops: ops, raw: raw, local: true}, maxBatchBytes)
}

func (n *Node) submit(ctx context.Context, ops []records.Op, local bool) ([]Result, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	b, err := records.EncodeOps(ops)
	if err != nil {
		return nil, fmt.Errorf("encode ops: %w", err)
	}
	return n.enqueue(ctx, &request{ops: ops, raw: b, local: local}, maxWriteBytes)
}

func (n *Node) enqueue(ctx context.Context, req *request, limit int) ([]Result, error) {
	if len(req.ops) == 0 {
		return nil, nil
	}
	if n.paused.Load() {
		return nil, ErrWritesPaused
	}
	if len(req.raw) > limit {
		return nil, fmt.Errorf("%w: %d bytes, at most %d in one write", ErrTooLarge, len(req.raw), limit)
	}
	req.done = make(chan response, 1)
	select {
	case n.submitC <- req:
	case <-n.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.results, r.err
	case <-n.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runBatcher gathers queued requests into batches and hands each batch to
// its own goroutine, at most maxInflight at a time. A request that does
// not fit the batch being gathered starts the next one.
func (n *Node) runBatcher() {
	defer n.wg.Done()
	sem := make(chan struct{}, maxInflight)
	var carry *request
	for {
		select {
		case sem <- struct{}{}:
		case <-n.closing:
			return // waiting submitters see closing too
		}
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-n.submitC:
			case <-n.closing:
				return
			}
		}
		batch := []*request{first}
		ops, size := len(first.ops), len(first.raw)
	gather:
		for ops < maxBatchOps && size < maxBatchBytes {
			select {
			case r := <-n.submitC:
				if ops+len(r.ops) > maxBatchOps || size+len(r.raw) > maxBatchBytes {
					carry = r
					break gather
				}
				batch = append(batch, r)
				ops += len(r.ops)
				size += len(r.raw)
			default:
				break gather
			}
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { <-sem }()
			n.commit(batch)
		}()
	}
}

// commit writes one batch: as a raft entry on the leader, or forwarded to
// the leader from a follower. A batch may hold both writes submitted here
// and writes followers forwarded (local): on the leader they travel in one
// entry, which is what lets the followers' writes and the leader's own
// share entries under load. A node that is no longer the leader refuses
// the forwarded ones (ErrNoLeader: handleRPC answers not_leader, and the
// follower sends them to the current leader) and forwards its own.
func (n *Node) commit(batch []*request) {
	var local, other []*request
	for _, r := range batch {
		if r.local {
			local = append(local, r)
		} else {
			other = append(other, r)
		}
	}
	switch {
	case len(local) == 0:
		n.commitBatch(batch, false)
	case len(other) == 0 || n.r().State() == raft.Leader:
		n.commitBatch(batch, true)
	default:
		n.commitBatch(local, true)
		n.commitBatch(other, false)
	}
}

// commitBatch writes batch as one raft entry: on this node when some of it
// was forwarded here (forwarded; only the leader may take those), else
// wherever the leader is.
func (n *Node) commitBatch(batch []*request, forwarded bool) {
	nops := 0
	raws := make([][]byte, len(batch))
	for i, r := range batch {
		nops += len(r.ops)
		raws[i] = r.raw
	}
	raw := joinOps(raws)
	ctx, cancel := n.bounded(n.cfg.ApplyTimeout)
	defer cancel()
	var results []Result
	var err error
	if forwarded {
		results, err = n.applyLeader(raw, true)
	} else {
		results, err = n.applyAnywhere(ctx, raw)
	}
	if err == nil && len(results) != nops {
		err = fmt.Errorf("internal: %d results for %d ops", len(results), nops)
	}
	i := 0
	for _, r := range batch {
		if err != nil {
			r.done <- response{err: err}
			continue
		}
		r.done <- response{results: results[i : i+len(r.ops)]}
		i += len(r.ops)
	}
}

// joinOps joins JSON arrays of ops into one.
func joinOps(raws [][]byte) []byte {
	if len(raws) == 1 {
		return raws[0]
	}
	size := 2
	for _, r := range raws {
		size += len(r)
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, r := range raws {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r[1:len(r)-1]...) // each is a non-empty array
	}
	return append(out, ']')
}

// applyLeader appends ops (a JSON array) as one raft entry; only the
// leader may. forwarded: a follower sent them and waits to apply them.
func (n *Node) applyLeader(ops []byte, forwarded bool) ([]Result, error) {
	var init *initCommand
	if n.fsm.clusterID.Load().(string) == "" {
		init = &initCommand{ClusterID: newClusterID()}
	}
	data, err := encodeOpsEnvelope(init, ops)
	if err != nil {
		return nil, err
	}
	rr := n.run()
	f := rr.Apply(data, n.cfg.ApplyTimeout)
	if err := rr.wait(f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, fmt.Errorf("%w: leadership changed during the write (%v); retry with the same id", ErrNoLeader, err)
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return nil, fmt.Errorf("%w: raft stopped on this node during the write; retry with the same id", ErrNoLeader)
		}
		if errors.Is(err, raft.ErrEnqueueTimeout) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return nil, fmt.Errorf("raft apply: %w", err) // the entry was not appended
		}
		// The leader's own log write failed. The followers received the
		// entry meanwhile (third_party/raft/PATCHES.md) and may commit it.
		return nil, fmt.Errorf("%w: this node's raft log write failed (%v); the other PCs may have made the write: retry with the same id", ErrOutcomeUnknown, err)
	}
	results, ok := f.Response().([]Result)
	if !ok {
		return nil, fmt.Errorf("internal: unexpected apply response %T", f.Response())
	}
	n.kickCommit(f.Index(), forwarded)
	if err := encodeValues(results); err != nil {
		return nil, err
	}
	return results, nil
}

// applyAnywhere applies ops on the leader, whoever it is: here, or
// forwarded over QUIC. A follower answers once the entry is applied here
// too, so a clerk reads back what was just written on the same PC.
func (n *Node) applyAnywhere(ctx context.Context, ops []byte) ([]Result, error) {
	for {
		if n.r().State() == raft.Leader {
			return n.applyLeader(ops, false)
		}
		addr, _ := n.r().LeaderWithID()
		if addr != "" {
			results, retry, err := n.forward(ctx, string(addr), ops)
			if err == nil {
				if len(results) > 0 {
					if err := n.fsm.waitApplied(ctx, results[len(results)-1].Index); err != nil {
						return nil, err
					}
				}
				return results, nil
			}
			if !retry {
				return nil, err
			}
			n.logger.Debug("forward to leader", "leader", addr, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w within %s", ErrNoLeader, n.cfg.ApplyTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// forward sends ops to the leader. retry says trying again (with the
// current leader) is right: nothing was sent, the peer was not the leader,
// or the leader changed while its answer was awaited (ids make a resend a
// repeat).
func (n *Node) forward(ctx context.Context, addr string, ops []byte) ([]Result, bool, error) {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	c, _, err := n.tr.Dial(dctx, addr, transport.KindRPC)
	cancel()
	if err != nil {
		return nil, true, err
	}
	defer c.Close()
	// A leader that died with the request on its way answers nothing, and
	// its QUIC connection only times out after seconds. When the cluster
	// elects another leader meanwhile, stop waiting and send the ops there:
	// every op carries its ids, so if the old leader did commit them, the
	// new one answers them as repeats.
	moved := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if a, _ := n.r().LeaderWithID(); a != "" && string(a) != addr {
					close(moved)
					c.Close()
					return
				}
			}
		}
	}()
	deadline, _ := ctx.Deadline()
	resp, err := call(c, rpcRequest{Method: rpcApply, Ops: ops}, deadline)
	if err != nil {
		select {
		case <-moved:
			return nil, true, fmt.Errorf("leader moved from %s while waiting for its answer: %w", addr, err)
		default:
		}
		return nil, false, fmt.Errorf("%w: forward to leader %s: %v", ErrOutcomeUnknown, addr, err)
	}
	switch resp.Code {
	case "":
		return resp.Results, false, nil
	case "not_leader":
		return nil, true, errors.New(resp.Error)
	case "unknown":
		return nil, false, fmt.Errorf("%w: leader %s: %s", ErrOutcomeUnknown, addr, resp.Error)
	default:
		return nil, false, fmt.Errorf("leader %s: %s", addr, resp.Error)
	}
}

// Followers learn that an entry committed from the leader's next
// AppendEntries. hashicorp/raft sends one only with new entries or every
// CommitTimeout, so with no other traffic a follower would apply a write
// only up to twice CommitTimeout later: a clerk on a follower PC, whose
// write is answered once that PC applied it, would wait that long, and
// other PCs would show a case changed on the leader that much later.
//
// So after a write commits the leader sends each other server a commit
// notice: an AppendEntries with no entries, PrevLogEntry = the committed
// entry and LeaderCommitIndex = it, in the term the leader appended it
// (commitNotice). It is what raft's own replication sends when it has
// nothing new, and the follower handles it the same way: it checks that its
// log holds that entry with that term (then, by raft's log matching, all
// before it match the leader's too) and applies up to it. It costs no
// fsync. A follower that does not hold the entry yet (it acknowledged the
// entry after the majority did) refuses; the notice is retried a few times,
// and after that, or when a server cannot be reached, the leader appends a
// barrier (an empty entry) as before: its AppendEntries carries the commit
// index, but it costs the leader and each follower an fsync, and raft sends
// one AppendEntries at a time per follower, so it held up the next write.
//
// The notice is sent at once for a write a follower forwarded (that
// follower waits to apply it). After a write submitted on the leader, the
// kicker waits commitNoticeDelay and sends it only if no entry was
// appended meanwhile: an entry appended after the write committed travels
// with the commit index anyway, and its own write kicks again when it
// commits, so the last write of a burst always gets one. One kicker runs at
// a time; writes committed meanwhile are covered by another round after it.
// CommitTimeout is only a fallback, and can be long enough that an idle
// station sends almost no empty AppendEntries.
const commitNoticeDelay = 20 * time.Millisecond

// Commit notices: how often one a follower refused because it did not
// hold the entry yet is retried, and how long one may take.
const (
	maxNoticesInFlight = 4 // per server (sendCommitNotices)
	noticeRetries      = 5
	noticeRetryAfter   = 2 * time.Millisecond
	noticeTimeout      = 2 * time.Second
)

type kicker struct {
	mu      sync.Mutex
	running bool                  // a kicker goroutine runs
	again   bool                  // a write committed during its round
	urgent  bool                  // a forwarded write waits for the commit notice
	barrier bool                  // a notice failed: the next round appends a barrier
	index   uint64                // the last committed entry a write kicked with
	busy    map[raft.ServerID]int // notices to this server on their way
	wake    chan struct{}         // (1) an urgent kick during the delay
}

// kickCommit makes sure followers learn that the write just committed
// (raft entry index) did: at once when forwarded (a follower waits), else
// soon.
func (n *Node) kickCommit(index uint64, forwarded bool) {
	k := &n.kick
	k.mu.Lock()
	k.index = max(k.index, index)
	if forwarded {
		k.urgent = true
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
	if k.running {
		k.again = true
		k.mu.Unlock()
		return
	}
	k.running = true
	k.mu.Unlock()
	// Owned by n.wg, which Close waits for while raft still runs: raft
	// answers a barrier it has taken (applied, or leadership lost), but
	// not one still queued when it shuts down.
	n.wg.Add(1) // called from a commit goroutine, itself in n.wg
	go n.runKicker()
}

func (n *Node) runKicker() {
	defer n.wg.Done()
	k := &n.kick
	for {
		k.mu.Lock()
		urgent, barrier, index := k.urgent, k.barrier, k.index
		k.urgent, k.again, k.barrier = false, false, false
		select {
		case <-k.wake:
		default:
		}
		k.mu.Unlock()
		rr := n.run()
		need := true
		if !urgent {
			last := rr.LastIndex()
			t := time.NewTimer(commitNoticeDelay)
			select {
			case <-t.C:
				need = rr.LastIndex() == last
			case <-k.wake:
				k.mu.Lock()
				k.urgent = false
				k.mu.Unlock()
			case <-n.closing:
				need = false
			}
			t.Stop()
		}
		var err error
		if need && (barrier || !n.sendCommitNotices(rr, index)) {
			err = rr.wait(rr.Barrier(n.cfg.ApplyTimeout))
		}
		select {
		case <-n.closing:
			err = ErrClosed
		default:
		}
		k.mu.Lock()
		if err != nil || (!k.again && !k.urgent && !k.barrier) {
			k.running, k.again, k.urgent, k.barrier = false, false, false, false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
	}
}

// sendCommitNotices starts a commit notice of entry index to every other
// server, each in its own goroutine (owned by n.wg); one that fails asks
// the kicker for a barrier. It returns false, sending nothing, when it
// cannot: the entry is not in the log, or maxNoticesInFlight notices to
// some server are still on their way (a server that does not answer gets
// no more meanwhile; the barrier reaches it when it is back). Under load
// a kick comes every few milliseconds and a notice takes about as long:
// with one notice per server at a time, 8 % of the leader's raft entries
// were such barriers (3 x 21 clients, one load per node).
func (n *Node) sendCommitNotices(rr *raftRun, index uint64) bool {
	if index == 0 || rr.net == nil {
		return false
	}
	var entry raft.Log
	if err := n.logs.GetLog(index, &entry); err != nil {
		return false
	}
	cf := rr.GetConfiguration()
	if rr.wait(cf) != nil {
		return false
	}
	self := raft.ServerID(n.cfg.NodeID)
	var peers []raft.Server
	k := &n.kick
	k.mu.Lock()
	for _, s := range cf.Configuration().Servers {
		if s.ID == self {
			continue
		}
		if k.busy[s.ID] >= maxNoticesInFlight {
			k.mu.Unlock()
			return false
		}
		peers = append(peers, s)
	}
	if k.busy == nil {
		k.busy = map[raft.ServerID]int{}
	}
	for _, s := range peers {
		k.busy[s.ID]++
	}
	k.mu.Unlock()
	req := raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax,
			ID:              []byte(self),
			Addr:            rr.net.EncodePeer(self, rr.net.LocalAddr()),
		},
		// The term this node appended the entry in, as leader: true even if
		// it has lost leadership since (a server in a later term refuses).
		Term:              entry.Term,
		Leader:            rr.net.EncodePeer(self, rr.net.LocalAddr()),
		PrevLogEntry:      index,
		PrevLogTerm:       entry.Term,
		LeaderCommitIndex: index,
	}
	for _, s := range peers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ok := n.commitNotice(rr, s, req)
			k.mu.Lock()
			if k.busy[s.ID]--; k.busy[s.ID] <= 0 {
				delete(k.busy, s.ID)
			}
			if !ok {
				k.barrier = true
			}
			k.mu.Unlock()
			if !ok {
				n.logger.Debug("commit notice refused; a barrier follows", "peer", s.ID, "index", index)
				n.kickCommit(index, true)
			}
		}()
	}
	return true
}

// commitNotice sends req to server s, again after a moment while s answers
// that it does not hold the entry yet, and says whether s took it.
func (n *Node) commitNotice(rr *raftRun, s raft.Server, req raft.AppendEntriesRequest) bool {
	deadline := time.Now().Add(noticeTimeout)
	for attempt := 0; attempt < noticeRetries && time.Now().Before(deadline); attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(noticeRetryAfter):
			case <-n.closing:
				return false
			case <-rr.stopped:
				return false
			}
		}
		r, resp := req, new(raft.AppendEntriesResponse)
		done := make(chan error, 1)
		// Ends with the transport's I/O timeout, or at once when Close
		// closes the transport (after this goroutine's owner has gone).
		go func() { done <- rr.net.AppendEntries(s.ID, s.Address, &r, resp) }()
		select {
		case err := <-done:
			if err != nil {
				return false
			}
		case <-n.closing:
			return false
		case <-rr.stopped:
			return false
		}
		if resp.Success {
			return true
		}
		if resp.Term > req.Term || resp.LastLog >= req.PrevLogEntry {
			return false // a later term, or a log that differs there
		}
	}
	return false
}
