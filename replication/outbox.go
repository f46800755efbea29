package replication

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/stationsync/stationsync/records"
)

// The outbox: a window clerk can always record a case. A node that cannot
// get a case write committed through a leader within Config.OutboxAfter
// keeps it in its outbox, a queue in the node-local store (the raft log's
// badger database, fsynced, never replaced by a snapshot), and a
// forwarder delivers the queue in order once a leader answers. A write
// leaves the queue only after the leader committed it and it was applied
// here. Every queued op carries its final ids, so a delivery repeated
// after a lost answer is a repeat to the state machine, never a second
// event; and it travels with Op.Offline set, so a write the merged history
// no longer allows is kept as a conflict, never dropped (records/conflicts.go).

const outboxPrefix = "outbox/"

// ErrNotQueueable: only case writes may wait in the outbox; the others
// (items, work orders, membership) need the leader now.
var ErrNotQueueable = errors.New("only case writes (new cases, case events, evaluations) can wait for the leader")

// Queueable says whether op may wait in the outbox.
func Queueable(op records.Op) bool {
	switch op.Kind {
	case records.OpCreateCase, records.OpAppendEvent, records.OpEvaluate:
		return true
	}
	return false
}

// outboxEntry is one queued write.
type outboxEntry struct {
	Seq    uint64     `json:"seq"`
	Queued time.Time  `json:"queued"`
	Op     records.Op `json:"op"`
	size   int
}

// Pending is a write waiting in this node's outbox.
type Pending struct {
	Queued time.Time
	Op     records.Op
}

type outbox struct {
	db *badger.DB

	mu      sync.Mutex
	next    uint64      // the next entry's sequence number
	queue   []outboxRef // the entries in order, without their ops
	waiters map[uint64]chan Result
	kick    chan struct{}
	// stuck: the last delivery failed or found no leader. A write queued
	// then is answered as pending at once instead of waiting for delivery.
	stuck atomic.Bool
}

type outboxRef struct {
	seq    uint64
	queued time.Time
	caseID string
}

func outboxKey(seq uint64) []byte {
	k := make([]byte, len(outboxPrefix)+8)
	copy(k, outboxPrefix)
	binary.BigEndian.PutUint64(k[len(outboxPrefix):], seq)
	return k
}

// openOutbox loads the queue's index from db.
func openOutbox(db *badger.DB) (*outbox, error) {
	o := &outbox{db: db, next: 1, waiters: map[uint64]chan Result{}, kick: make(chan struct{}, 1)}
	err := o.scan(0, func(e outboxEntry) bool {
		o.queue = append(o.queue, outboxRef{seq: e.Seq, queued: e.Queued, caseID: records.CaseOf(e.Op)})
		o.next = e.Seq + 1
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	return o, nil
}

// scan calls fn for each entry from sequence number from on, in order,
// until fn returns false.
func (o *outbox) scan(from uint64, fn func(outboxEntry) bool) error {
	return o.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(outboxPrefix), PrefetchValues: false})
		defer it.Close()
		for it.Seek(outboxKey(from)); it.Valid(); it.Next() {
			var e outboxEntry
			err := it.Item().Value(func(v []byte) error {
				e.size = len(v)
				return json.Unmarshal(v, &e)
			})
			if err != nil {
				return fmt.Errorf("read outbox entry %x: %w", it.Item().Key(), err)
			}
			if !fn(e) {
				return nil
			}
		}
		return nil
	})
}

// put queues op durably (fsynced before it returns) and returns its
// sequence number with a channel that receives the op's result once it is
// delivered.
func (o *outbox) put(op records.Op) (uint64, <-chan Result, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := outboxEntry{Seq: o.next, Queued: time.Now().UTC(), Op: op}
	b, err := json.Marshal(e)
	if err != nil {
		return 0, nil, fmt.Errorf("queue write: %w", err)
	}
	if err := o.db.Update(func(txn *badger.Txn) error { return txn.Set(outboxKey(e.Seq), b) }); err != nil {
		return 0, nil, fmt.Errorf("queue write in the outbox: %w", err)
	}
	o.next++
	o.queue = append(o.queue, outboxRef{seq: e.Seq, queued: e.Queued, caseID: records.CaseOf(op)})
	done := make(chan Result, 1)
	o.waiters[e.Seq] = done
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return e.Seq, done, nil
}

// head returns the first entries, in order, at most maxOps of them and
// (but for the first) at most maxBytes together.
func (o *outbox) head(maxOps, maxBytes int) ([]outboxEntry, error) {
	var out []outboxEntry
	size := 0
	err := o.scan(0, func(e outboxEntry) bool {
		if len(out) > 0 && (len(out) >= maxOps || size+e.size > maxBytes) {
			return false
		}
		out = append(out, e)
		size += e.size
		return true
	})
	return out, err
}

// done removes delivered entries (a prefix of the queue) and hands their
// results to whoever waits for them.
func (o *outbox) done(entries []outboxEntry, results []Result) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.db.Update(func(txn *badger.Txn) error {
		for _, e := range entries {
			if err := txn.Delete(outboxKey(e.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove delivered writes from the outbox: %w", err)
	}
	gone := map[uint64]bool{}
	for i, e := range entries {
		gone[e.Seq] = true
		if w, ok := o.waiters[e.Seq]; ok {
			w <- results[i]
			delete(o.waiters, e.Seq)
		}
	}
	kept := o.queue[:0]
	for _, r := range o.queue {
		if !gone[r.seq] {
			kept = append(kept, r)
		}
	}
	o.queue = kept
	return nil
}

// forget stops waiting for an entry's result (the caller answered 202).
func (o *outbox) forget(seq uint64) {
	o.mu.Lock()
	delete(o.waiters, seq)
	o.mu.Unlock()
}

// stats is the queue's length and when its oldest entry was queued.
func (o *outbox) stats() (int, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) == 0 {
		return 0, time.Time{}
	}
	return len(o.queue), o.queue[0].queued
}

// pending returns the queued writes for caseID ("" for every case).
func (o *outbox) pending(caseID string) ([]Pending, error) {
	o.mu.Lock()
	found := false
	for _, r := range o.queue {
		if caseID == "" || r.caseID == caseID {
			found = true
			break
		}
	}
	o.mu.Unlock()
	if !found {
		return nil, nil
	}
	var out []Pending
	err := o.scan(0, func(e outboxEntry) bool {
		if caseID == "" || records.CaseOf(e.Op) == caseID {
			out = append(out, Pending{Queued: e.Queued, Op: e.Op})
		}
		return true
	})
	return out, err
}

// Record writes a case op (Queueable). It is committed through the leader
// when one answers within Config.OutboxAfter (pending false); otherwise
// it is kept in this node's outbox and delivered later (pending true, and
// the result is the op as queued). While earlier writes wait in the
// outbox, a new one queues behind them, so the writes of one PC reach the
// station in the order they were made; it is answered as committed if the
// outbox delivers it within the bound.
func (n *Node) Record(ctx context.Context, op records.Op) (res Result, pending bool, err error) {
	if !Queueable(op) {
		return Result{}, false, ErrNotQueueable
	}
	if !n.hold() {
		return Result{}, false, ErrClosed
	}
	defer n.release()
	if n.paused.Load() {
		return Result{}, false, ErrWritesPaused
	}
	if count, _ := n.outbox.stats(); count == 0 {
		sctx, cancel := context.WithTimeout(ctx, n.cfg.OutboxAfter)
		results, err := n.Submit(sctx, []records.Op{op})
		cancel()
		switch {
		case err == nil:
			return results[0], false, nil
		case errors.Is(err, ErrTooLarge), errors.Is(err, ErrClosed), errors.Is(err, ErrWritesPaused), n.paused.Load(), ctx.Err() != nil:
			return Result{}, false, err
		}
		n.logger.Debug("no leader within the bound: queueing the write", "after", n.cfg.OutboxAfter, "error", err)
		n.outbox.stuck.Store(true) // the bound is spent: answer as soon as it is queued
	}
	seq, done, err := n.outbox.put(op)
	if err != nil {
		return Result{}, false, err
	}
	bound := n.cfg.OutboxAfter
	if n.outbox.stuck.Load() {
		bound = 0
	}
	wait := time.NewTimer(bound)
	defer wait.Stop()
	select {
	case r := <-done:
		return r, false, nil
	default:
	}
	select {
	case r := <-done:
		return r, false, nil
	case <-wait.C:
	case <-ctx.Done():
	case <-n.closing:
	}
	n.outbox.forget(seq)
	v, err := json.Marshal(op)
	if err != nil {
		return Result{}, true, err
	}
	return Result{Status: "pending", Value: v}, true, nil
}

// PendingWrites returns the writes waiting in this node's outbox for
// caseID ("" for all), in order.
func (n *Node) PendingWrites(caseID string) ([]Pending, error) {
	if !n.hold() {
		return nil, ErrClosed
	}
	defer n.release()
	return n.outbox.pending(caseID)
}

// Outbox delivery batches: a few dozen case writes, inside one request's
// byte limit.
const (
	outboxBatchOps   = 128
	outboxBatchBytes = maxWriteBytes / 2
)

// runOutbox delivers the outbox in order whenever a leader is known:
// woken by a new entry, and every 200 ms while it holds any; after a
// failure it backs off up to 1 s (a station that just elected a new
// leader gets its PCs' queued writes within about a second). An empty
// outbox sleeps until a write is queued: an idle node's every wakeup
// costs CPU (BENCHMARKS.md, idle).
func (n *Node) runOutbox() {
	defer n.wg.Done()
	backoff := time.Duration(0)
	lastErr := ""
	for {
		if backoff > 0 {
			select {
			case <-n.closing:
				return
			case <-time.After(backoff):
			}
		}
		var retry <-chan time.Time
		if count, _ := n.outbox.stats(); count > 0 {
			retry = time.After(200 * time.Millisecond)
		}
		select {
		case <-n.closing:
			return
		case <-n.outbox.kick:
		case <-retry:
		}
		for {
			if count, _ := n.outbox.stats(); count == 0 || n.paused.Load() {
				break
			}
			if _, id := n.r().LeaderWithID(); id == "" {
				n.outbox.stuck.Store(true)
				break
			}
			delivered, err := n.deliverOutbox()
			n.outbox.stuck.Store(err != nil)
			if err != nil {
				if msg := err.Error(); msg != lastErr {
					n.logger.Warn("outbox delivery failed; retrying", "error", err)
					lastErr = msg
				}
				backoff = min(max(2*backoff, 100*time.Millisecond), time.Second)
				break
			}
			backoff, lastErr = 0, ""
			if delivered > 0 {
				n.logger.Debug("outbox delivered", "writes", delivered)
			}
		}
	}
}

// deliverOutbox sends the outbox's head through the leader and removes
// what was committed.
func (n *Node) deliverOutbox() (int, error) {
	entries, err := n.outbox.head(outboxBatchOps, outboxBatchBytes)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	ops := make([]records.Op, len(entries))
	for i, e := range entries {
		ops[i] = e.Op
		ops[i].Offline = true
	}
	ctx, cancel := n.bounded(n.cfg.ApplyTimeout)
	defer cancel()
	results, err := n.Submit(ctx, ops)
	if err != nil {
		return 0, err
	}
	for i, r := range results {
		if r.Status == "error" {
			// Only an op without an id gets here (park keeps every other):
			// it can never be delivered.
			n.logger.Error("outbox write refused by the station; it cannot be delivered", "kind", ops[i].Kind, "case", records.CaseOf(ops[i]), "error", r.Error)
		}
	}
	return len(entries), n.outbox.done(entries, results)
}

// LatestHLC is the largest timestamp among the records this node applied
// and the writes in its outbox. A node's clock starts past it, so a PC
// restarted with its clock behind cannot write before its own history.
func (n *Node) LatestHLC() (records.HLC, error) {
	if !n.hold() {
		return "", ErrClosed
	}
	defer n.release()
	var latest records.HLC
	err := n.View(func(r records.Reader) error {
		h, err := records.MaxHLC(r)
		latest = h
		return err
	})
	if err != nil {
		return "", err
	}
	err = n.outbox.scan(0, func(e outboxEntry) bool {
		latest = max(latest, records.OpHLC(e.Op))
		return true
	})
	return latest, err
}
