package replication

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/internal/jsonlayout"
	"github.com/stationsync/stationsync/records"
)

// Keys of the replicated state beside the domain keys of package records.
// "~" sorts after every domain prefix.
var (
	keyApplied   = []byte("~meta/applied")    // last applied raft index, 8 bytes BE
	keySeq       = []byte("~meta/seq")        // last feed seq, 8 bytes BE
	keyClusterID = []byte("~meta/cluster_id") // set once by the init command
	prefixFeed   = []byte("~feed/")           // + 8 bytes BE seq -> FeedChange JSON
)

// FeedChange is one entry of the change feed: a gapless sequence number in
// the station and the change it records.
type FeedChange struct {
	Seq   uint64 `json:"seq"`
	Index uint64 `json:"index"` // raft index it was committed at
	records.Change
	// Ref, as stored: the state key holding Data (records.Change.Stored),
	// which Feed reads in its place. Never set in a FeedPage.
	Ref string `json:"ref,omitempty"`
}

// encodeFeedChange encodes FeedChange{seq, index, ch} as json.Marshal
// would, without compacting ch.Data again (records encoded it). A change
// whose data is stored under its own key (an event: ~1 KiB, written once)
// keeps only that key: the feed is a second copy of every event otherwise,
// a third of what a case event writes to the state store.
func encodeFeedChange(seq, index uint64, ch records.Change) ([]byte, error) {
	data := []byte(ch.Data)
	if ch.Stored != "" || len(data) == 0 {
		data = []byte("null")
	}
	out := make([]byte, 0, len(data)+len(ch.Kind)+len(ch.Key)+len(ch.Stored)+64)
	out = append(out, `{"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	out = append(out, `,"index":`...)
	out = strconv.AppendUint(out, index, 10)
	out = append(out, `,"kind":`...)
	out, ok := jsonlayout.AppendPlainString(out, ch.Kind)
	if ok {
		out = append(out, `,"key":`...)
		out, ok = jsonlayout.AppendPlainString(out, ch.Key)
	}
	if ok {
		out = append(out, `,"data":`...)
		out = append(out, data...)
		if ch.Stored != "" {
			out = append(out, `,"ref":`...)
			out, ok = jsonlayout.AppendPlainString(out, ch.Stored)
		}
	}
	if !ok {
		return encodeFeedChangeSlowly(seq, index, ch)
	}
	return append(out, '}'), nil
}

// encodeFeedChangeSlowly is encodeFeedChange for strings json.Marshal
// escapes (a kind, key or reference is plain in practice).
func encodeFeedChangeSlowly(seq, index uint64, ch records.Change) ([]byte, error) {
	kind, err := json.Marshal(ch.Kind)
	if err != nil {
		return nil, err
	}
	key, err := json.Marshal(ch.Key)
	if err != nil {
		return nil, err
	}
	if ch.Stored != "" {
		ref, err := json.Marshal(ch.Stored)
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, `{"seq":%d,"index":%d,"kind":%s,"key":%s,"data":null,"ref":%s}`, seq, index, kind, key, ref), nil
	}
	data := []byte(ch.Data)
	if len(data) == 0 {
		data = []byte("null")
	}
	out := make([]byte, 0, len(data)+len(kind)+len(key)+64)
	out = fmt.Appendf(out, `{"seq":%d,"index":%d,"kind":%s,"key":%s,"data":`, seq, index, kind, key)
	out = append(out, data...)
	return append(out, '}'), nil
}

// fsm is the raft state machine. Its state lives in badger; the last
// applied index and the feed sequence are written in the same transaction
// as the changes they cover, so after a restart no entry is applied twice
// and none is lost.
type fsm struct {
	db     *badger.DB
	logger *slog.Logger

	applied   atomic.Uint64 // last applied raft index
	seq       atomic.Uint64 // last feed seq
	clusterID atomic.Value  // string
	// entriesApplied counts entries applied (not skipped) since open:
	// a restart that replays nothing leaves it at zero.
	entriesApplied atomic.Uint64
	restores       atomic.Uint64 // snapshots restored since open

	mu       sync.Mutex
	appliedC chan struct{} // closed and replaced on every apply

	// heads keeps the case heads the last transactions stored, decoded
	// (records.HeadCache), from one transaction to the next: the clerks
	// of a station write to a few dozen open cases, one event at a time.
	// A head is used again only while its bytes in the store are the
	// ones it was stored as, so a discarded transaction or a restored
	// snapshot only makes it miss. Used on raft's FSM goroutine only.
	heads *records.HeadCache

	// Pipelined commits (raft's FSM goroutine only; see commit):
	// committing is the last transaction, handed to badger and maybe not
	// written yet (nil: none), and nextTxn a transaction opened before it
	// was handed over, so it reads the state without it; through
	// committing's writes it reads the state after it.
	committing *pendingCommit
	nextTxn    *badger.Txn
	readAhead  uint64 // transactions that read through a commit being written
	// failed is the error of a commit that failed: nothing is committed
	// after it (the process stops; see commit).
	failed error

	// onFatal, when set (tests), is called by fatal instead of stopping
	// the process.
	onFatal func(index uint64, err error)
}

// pendingCommit is a transaction of the state machine handed to badger.
type pendingCommit struct {
	done   chan struct{} // closed once badger has written it or failed to
	err    error         // the failure, set before done is closed
	writes map[string][]byte
	keys   []string // writes' keys sorted, made by the first Scan through them
}

// sortedKeys returns the keys of p.writes in order.
func (p *pendingCommit) sortedKeys() []string {
	if p.keys == nil {
		p.keys = slices.Sorted(maps.Keys(p.writes))
	}
	return p.keys
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func newFSM(db *badger.DB, logger *slog.Logger, cachedHeads int) (*fsm, error) {
	f := &fsm{db: db, logger: logger, appliedC: make(chan struct{}), heads: records.NewHeadCache(cachedHeads)}
	if err := f.loadMeta(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *fsm) loadMeta() error {
	return f.db.View(func(txn *badger.Txn) error {
		applied, err := getUint64(txn, keyApplied)
		if err != nil {
			return err
		}
		seq, err := getUint64(txn, keySeq)
		if err != nil {
			return err
		}
		id, err := getBytes(txn, keyClusterID)
		if err != nil {
			return err
		}
		f.applied.Store(applied)
		f.seq.Store(seq)
		f.clusterID.Store(string(id))
		return nil
	})
}

// Apply applies one log entry.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies the entries raft committed together, in as few
// badger transactions as hold them: a transaction is committed before an
// entry that would take it past half of badger's batch limit (a follower
// catching up gets up to MaxAppendEntries entries of many events each,
// several times what one transaction holds). If an entry still does not
// fit, the entries of that transaction are applied again, one
// transaction each (the discarded attempt wrote nothing, and applying is
// deterministic), and an entry that does not fit alone in groups of its
// ops (applySplit).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, 0, len(logs))
	decoded := decodeAhead(logs, f.applied.Load())
	defer decoded.stop()
	for from := 0; from < len(logs); {
		r, n, err := f.applyBatchTxn(logs, from, decoded)
		if errors.Is(err, badger.ErrTxnTooBig) {
			for _, l := range logs[from : from+n] {
				r, _, err := f.applyBatchTxn([]*raft.Log{l}, 0, nil)
				if errors.Is(err, badger.ErrTxnTooBig) {
					r, err = f.applySplit(l)
				}
				if err != nil {
					f.fatal(l.Index, err)
				}
				out = append(out, r...)
			}
		} else if err != nil {
			f.fatal(logs[from+n-1].Index, err)
		} else {
			out = append(out, r...)
		}
		from += n
	}
	return out
}

// fatal stops the process: the state machine cannot skip an entry without
// diverging from its peers, and after a restart it resumes at the last
// entry that was durably applied.
func (f *fsm) fatal(index uint64, err error) {
	f.logger.Error("cannot apply raft entry; stopping so a restart resumes from the last durable entry", "index", index, "error", err)
	if f.onFatal != nil {
		f.onFatal(index, err)
		return
	}
	panic(fmt.Sprintf("stationsync: apply raft entry %d: %v", index, err))
}

// applyBatchTxn applies entries of logs from index from on in one
// transaction, and stops before an entry that would make it too big (not
// before the first). It returns their results and how many entries it
// took (also on an error: those it tried). decoded gives the entries'
// envelopes (nil: decode here).
func (f *fsm) applyBatchTxn(logs []*raft.Log, from int, decoded *entriesAhead) ([]any, int, error) {
	if decoded == nil {
		decoded = &entriesAhead{logs: logs}
	}
	txn, committing := f.beginTxn()
	defer txn.Discard()
	st := txnState{txn: txn, heads: f.heads, size: new(int64), writes: map[string][]byte{}, over: committing}
	budget := f.txnBudget()
	applied, seq := f.applied.Load(), f.seq.Load()
	clusterID := f.clusterID.Load().(string)
	out := make([]any, 0, len(logs)-from)
	n := 0
	for i := from; i < len(logs); i++ {
		l := logs[i]
		if i > from && *st.size+entryWriteEstimate(l) > budget {
			break // the next transaction starts with it
		}
		out = append(out, nil)
		if l.Index <= applied {
			continue // applied before a restart: never twice
		}
		applied = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		n++
		env, err := decoded.get(i)
		if err != nil {
			return nil, len(out), fmt.Errorf("entry %d: %w", l.Index, err)
		}
		if env.Init != nil {
			if clusterID == "" {
				clusterID = env.Init.ClusterID
				if err := st.Set(string(keyClusterID), []byte(clusterID)); err != nil {
					return nil, len(out), err
				}
			}
		}
		results, err := f.applyOps(st, env.Ops, l.Index, &seq)
		if err != nil {
			return nil, len(out), err
		}
		out[len(out)-1] = results
	}
	if err := txn.Set(keyApplied, u64(applied)); err != nil {
		return nil, len(out), err
	}
	if err := txn.Set(keySeq, u64(seq)); err != nil {
		return nil, len(out), err
	}
	if err := f.commit(txn, st.writes, applied); err != nil {
		return nil, len(out), fmt.Errorf("commit entries up to %d: %w", applied, err)
	}
	f.applied.Store(applied)
	f.seq.Store(seq)
	f.clusterID.Store(clusterID)
	f.entriesApplied.Add(uint64(n))
	f.notify()
	return out, len(out), nil
}

// beginTxn returns the transaction to apply the next entries in, and the
// commit still being written whose writes it must read through (nil: it
// reads the whole state).
func (f *fsm) beginTxn() (*badger.Txn, *pendingCommit) {
	if next := f.nextTxn; next != nil {
		f.nextTxn = nil
		select {
		case <-f.committing.done:
			next.Discard() // written meanwhile: a new transaction reads it
		default:
			f.readAhead++
			return next, f.committing
		}
	}
	f.drain()
	return f.db.NewTransaction(true), nil
}

// commit hands txn, which set writes (through txnState) and holds the
// entries up to index, to badger. With conflict detection off (as a
// node's state store has it: the state machine is its only writer) it
// does not wait for badger to write it: it opens the next transaction
// first, so the next entries are applied while this one is written
// (commit and apply took turns on one goroutine: at the district center
// a third of the state machine's time was spent waiting for its
// commits). What the next transaction reads comes from writes first,
// then from the state before txn, so it is the state after txn. Readers
// elsewhere (db.View) see txn once it is written: badger gives a new
// transaction a read timestamp only after every commit before it is
// written. A commit that fails stops the process (fatal), as a failed
// synchronous commit does; the entries are in the raft log and apply
// again after the restart.
func (f *fsm) commit(txn *badger.Txn, writes map[string][]byte, index uint64) error {
	if f.failed != nil {
		return f.failed
	}
	if f.db.Opts().DetectConflicts {
		// The next transaction would read keys txn writes at an older
		// timestamp, and badger would refuse it as a conflict.
		return txn.Commit()
	}
	// Waits for the commit before txn (f.committing) to be written,
	// after which its writes are no longer needed. badger lets a new
	// transaction start also after a commit that failed, and txn holds
	// none of that commit's writes (it read them through it): so txn
	// goes to badger only once that commit is known to have succeeded,
	// else a later ~meta/applied would land without the failed entries.
	next := f.db.NewTransaction(true)
	if err := f.settle(); err != nil {
		next.Discard()
		return err
	}
	pc := &pendingCommit{done: make(chan struct{}), writes: writes}
	txn.CommitWith(func(err error) {
		pc.err = err
		close(pc.done)
		if err != nil {
			f.fatal(index, fmt.Errorf("commit entries up to %d: %w", index, err))
		}
	})
	f.committing, f.nextTxn = pc, next
	return nil
}

// settle waits until the last commit handed to badger is written and
// returns its error (then kept in f.failed: nothing is committed after
// a failed commit).
func (f *fsm) settle() error {
	if pc := f.committing; pc != nil {
		<-pc.done
		f.committing = nil
		if pc.err != nil && f.failed == nil {
			f.failed = fmt.Errorf("an earlier commit failed: %w", pc.err)
		}
	}
	return f.failed
}

// drain waits until the last commit is written and discards the
// transaction opened before it: before anything else writes to the state
// (a split entry, a snapshot restore), while writes pause, and before the
// store closes. A failed commit is in f.failed.
func (f *fsm) drain() {
	if f.nextTxn != nil {
		f.nextTxn.Discard()
		f.nextTxn = nil
	}
	f.settle()
}

// txnBudget is how many bytes (as badger counts them) the state machine
// puts in one transaction: half of badger's limit (15 % of a memtable).
func (f *fsm) txnBudget() int64 { return f.db.Opts().MemTableSize * 15 / 100 / 2 }

// entryWriteEstimate is what applying l may add to a transaction: an
// event's op is written about three times (the event, its case's head,
// the feed's reference and the index keys), with room to spare.
func entryWriteEstimate(l *raft.Log) int64 { return 4*int64(len(l.Data)) + 4<<10 }

// entriesAhead decodes the command entries of a batch on a goroutine of
// its own, in order, so that decoding the next entries overlaps applying
// this one: a follower catching up applies batches of up to 64 entries
// of many ops each, and decoding them is a third of its state machine's
// work. A batch of one is decoded in place.
type entriesAhead struct {
	logs  []*raft.Log
	envs  []envelope
	errs  []error
	ready chan int      // indexes into logs, in order, as they are decoded
	quit  atomic.Bool   // stop decoding (the batch failed)
	done  chan struct{} // closed when the goroutine has returned
	next  int           // entries received from ready so far
}

// decodeAhead starts decoding the entries of logs after index applied.
func decodeAhead(logs []*raft.Log, applied uint64) *entriesAhead {
	d := &entriesAhead{logs: logs}
	if len(logs) < 2 {
		return d
	}
	d.envs, d.errs = make([]envelope, len(logs)), make([]error, len(logs))
	d.ready, d.done = make(chan int, len(logs)), make(chan struct{})
	go func() {
		defer close(d.done)
		for i, l := range logs {
			if d.quit.Load() {
				return
			}
			if l.Index > applied && l.Type == raft.LogCommand {
				d.envs[i], d.errs[i] = decodeEnvelope(l.Data)
			}
			d.ready <- i // buffered for every entry: never blocks
		}
	}()
	return d
}

// get returns the decoded envelope of logs[i]; i increases from call to
// call.
func (d *entriesAhead) get(i int) (envelope, error) {
	if d.ready == nil {
		return decodeEnvelope(d.logs[i].Data)
	}
	for d.next <= i {
		<-d.ready
		d.next++
	}
	env := d.envs[i]
	d.envs[i] = envelope{} // applied once: let its ops go with it
	return env, d.errs[i]
}

// stop ends the decoding goroutine and waits for it.
func (d *entriesAhead) stop() {
	if d.done == nil {
		return
	}
	d.quit.Store(true)
	<-d.done
}

// applyOps applies ops of the entry at index (decoded from it) in st's
// transaction, adding their feed changes after *seq.
func (f *fsm) applyOps(st txnState, ops []records.Op, index uint64, seq *uint64) ([]Result, error) {
	results := make([]Result, len(ops))
	for j, op := range ops {
		value, changes, err := records.ApplyDecoded(st, op)
		if err != nil {
			de, ok := records.AsError(err)
			if !ok {
				return nil, fmt.Errorf("entry %d op %d: %w", index, j, err)
			}
			results[j] = Result{Status: "error", Error: de, Index: index}
			continue
		}
		results[j] = Result{Status: "repeat", value: value, Index: index}
		if len(changes) == 0 {
			continue
		}
		results[j].Status = "applied"
		for _, ch := range changes {
			*seq++
			fc, err := encodeFeedChange(*seq, index, ch)
			if err != nil {
				return nil, fmt.Errorf("entry %d op %d: encode feed change: %w", index, j, err)
			}
			if err := st.set(feedKey(*seq), fc); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}

// applySplit applies one entry whose ops do not fit one transaction:
// groups of ops (halved until they fit), each in its own transaction
// with the feed position it reached; only the last one records the entry
// as applied. A crash in between applies the entry again after the
// restart, and every op is idempotent (ids, versions, cursors), so the
// ops already written are repeats.
func (f *fsm) applySplit(l *raft.Log) ([]any, error) {
	if l.Index <= f.applied.Load() || l.Type != raft.LogCommand {
		out, _, err := f.applyBatchTxn([]*raft.Log{l}, 0, nil)
		return out, err
	}
	f.drain() // its transactions read what they need from the store
	env, err := decodeEnvelope(l.Data)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", l.Index, err)
	}
	clusterID := f.clusterID.Load().(string)
	if env.Init != nil && clusterID == "" {
		clusterID = env.Init.ClusterID
	}
	results := make([]Result, 0, len(env.Ops))
	ops, size := env.Ops, len(env.Ops)
	for len(ops) > 0 || len(results) == 0 {
		n := min(size, len(ops))
		seq := f.seq.Load()
		txn := f.db.NewTransaction(true)
		r, err := f.applyOps(txnState{txn: txn, heads: f.heads}, ops[:n], l.Index, &seq)
		last := n == len(ops)
		if err == nil && clusterID != "" {
			err = txn.Set(keyClusterID, []byte(clusterID))
		}
		if err == nil {
			err = txn.Set(keySeq, u64(seq))
		}
		if err == nil && last {
			err = txn.Set(keyApplied, u64(l.Index))
		}
		if err == nil {
			err = txn.Commit()
		}
		txn.Discard()
		if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
			size = n / 2
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("entry %d ops %d..: %w", l.Index, len(results), err)
		}
		f.seq.Store(seq)
		results = append(results, r...)
		ops = ops[n:]
		if last {
			break
		}
	}
	f.applied.Store(l.Index)
	f.clusterID.Store(clusterID)
	f.entriesApplied.Add(1)
	f.notify()
	return []any{results}, nil
}

func (f *fsm) notify() {
	f.mu.Lock()
	close(f.appliedC)
	f.appliedC = make(chan struct{})
	f.mu.Unlock()
}

// waitApplied waits until the entry at index is applied on this node.
func (f *fsm) waitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		c := f.appliedC
		f.mu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-c:
		case <-ctx.Done():
			return fmt.Errorf("wait for entry %d to apply on this node (applied %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// Snapshot opens a read-only transaction now, so the snapshot is the state
// at this point even while Persist runs concurrently with new applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{txn: f.db.NewTransaction(false)}, nil
}

// Snapshot format, version 1: the magic line, then for every key
// uvarint(len key) key uvarint(len value) value, then uvarint(0).
const snapshotMagic = "stationsync-snapshot v1\n"

type fsmSnapshot struct{ txn *badger.Txn }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := s.write(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	it := s.txn.NewIterator(iterOptions(nil))
	defer it.Close()
	var lb [binary.MaxVarintLen64]byte
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		n := binary.PutUvarint(lb[:], uint64(len(k)))
		bw.Write(lb[:n])
		bw.Write(k)
		err := item.Value(func(v []byte) error {
			n := binary.PutUvarint(lb[:], uint64(len(v)))
			bw.Write(lb[:n])
			_, err := bw.Write(v)
			return err
		})
		if err != nil {
			return err
		}
	}
	bw.WriteByte(0)
	return bw.Flush()
}

func (s *fsmSnapshot) Release() { s.txn.Discard() }

// Restore replaces the whole state with a snapshot (a node that fell too
// far behind, or a new node).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.drain()
	f.restores.Add(1)
	br := bufio.NewReaderSize(rc, 64<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return fmt.Errorf("restore snapshot: not a stationsync v1 snapshot: %w", ErrUnknownVersion)
	}
	if err := f.db.DropAll(); err != nil {
		return fmt.Errorf("restore snapshot: clear state: %w", err)
	}
	wb := f.db.NewWriteBatch()
	defer wb.Cancel()
	for {
		kl, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		if kl == 0 {
			break
		}
		k := make([]byte, kl)
		if _, err := io.ReadFull(br, k); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		vl, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		v := make([]byte, vl)
		if _, err := io.ReadFull(br, v); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		if err := wb.Set(k, v); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := f.db.Sync(); err != nil {
		return fmt.Errorf("restore snapshot: sync: %w", err)
	}
	if err := f.loadMeta(); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.notify()
	return nil
}

// txnState adapts a badger transaction to records.State, with the FSM's
// decoded case heads (records.HeadCache) and a count of the bytes set.
type txnState struct {
	txn   *badger.Txn
	heads *records.HeadCache
	size  *int64 // bytes set so far, counted as badger does (nil: not counted)
	// writes, when not nil, collects what is set (for the next
	// transaction to read through: see fsm.commit).
	writes map[string][]byte
	// over, when not nil, is the commit before txn, not yet written
	// when txn was opened: its writes are read before the store's.
	over *pendingCommit
}

func (s txnState) HeadCache() *records.HeadCache { return s.heads }

// set sets key in the transaction, counting its size.
func (s txnState) set(key, v []byte) error {
	if s.size != nil {
		*s.size += int64(len(key)+len(v)) + 12 // badger's estimate: + 2 meta bytes, + 10 per entry
	}
	if err := s.txn.Set(key, v); err != nil {
		return err
	}
	if s.writes != nil {
		s.writes[string(key)] = v
	}
	return nil
}

// overlaid returns a copy of the value the commit before the
// transaction wrote for key, unless the transaction set it itself.
func (s txnState) overlaid(key string) ([]byte, bool) {
	if s.over == nil {
		return nil, false
	}
	if _, own := s.writes[key]; own {
		return nil, false
	}
	v, ok := s.over.writes[key]
	return overValue(v), ok
}

// overValue is v as reading it from the store gives it: a copy, and a
// value set as nil reads as empty, not as missing (badger's ValueCopy).
func overValue(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return bytes.Clone(v)
}

func (s txnState) Get(key string) ([]byte, error) {
	if v, ok := s.overlaid(key); ok {
		return v, nil
	}
	return getBytes(s.txn, []byte(key))
}

func (s txnState) Set(key string, v []byte) error { return s.set([]byte(key), v) }

// Scan merges the keys the commit before the transaction wrote (s.over)
// into the store's, in order; for a key in both, its value is the
// commit's, unless the transaction set the key itself (badger's iterator
// has the transaction's own writes).
func (s txnState) Scan(prefix, after string, fn func(string, []byte) (bool, error)) error {
	if s.over == nil || len(s.over.writes) == 0 {
		return txnReader{s.txn}.Scan(prefix, after, fn)
	}
	keys := s.over.sortedKeys()
	start := prefix
	if after != "" {
		start = after + "\x00"
	}
	i := sort.SearchStrings(keys, start)
	overKey := func() (string, bool) {
		if i < len(keys) && strings.HasPrefix(keys[i], prefix) {
			return keys[i], true
		}
		return "", false
	}
	// badger's iterator holds the transaction's own writes as they are
	// when it starts; so do these, for keys of the range fn may set.
	var ownAtStart map[string]bool
	for j := i; j < len(keys) && strings.HasPrefix(keys[j], prefix); j++ {
		if _, own := s.writes[keys[j]]; own {
			if ownAtStart == nil {
				ownAtStart = map[string]bool{}
			}
			ownAtStart[keys[j]] = true
		}
	}
	stopped := false
	emit := func(k string, v []byte) (bool, error) {
		more, err := fn(k, v)
		stopped = err != nil || !more
		return more, err
	}
	// emitOver emits the commit's keys of the range that sort before k
	// (all those left when last): keys the store does not hold yet.
	emitOver := func(k string, last bool) (bool, error) {
		for {
			ok, has := overKey()
			if !has || (!last && ok >= k) {
				return true, nil
			}
			i++
			if more, err := emit(ok, overValue(s.over.writes[ok])); err != nil || !more {
				return false, err
			}
		}
	}
	err := txnReader{s.txn}.Scan(prefix, after, func(k string, v []byte) (bool, error) {
		if more, err := emitOver(k, false); err != nil || !more {
			return false, err
		}
		if ok, has := overKey(); has && ok == k {
			i++
			if !ownAtStart[k] {
				v = overValue(s.over.writes[k])
			}
		}
		return emit(k, v)
	})
	if err != nil || stopped {
		return err
	}
	_, err = emitOver("", true)
	return err
}

// txnReader adapts a read-only transaction to records.Reader.
type txnReader struct{ txn *badger.Txn }

func (r txnReader) Get(key string) ([]byte, error) { return getBytes(r.txn, []byte(key)) }

func (r txnReader) Scan(prefix, after string, fn func(string, []byte) (bool, error)) error {
	opts := iterOptions([]byte(prefix))
	it := r.txn.NewIterator(opts)
	defer it.Close()
	start := []byte(prefix)
	if after != "" {
		start = append([]byte(after), 0)
	}
	for it.Seek(start); it.ValidForPrefix(opts.Prefix); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		more, err := fn(string(it.Item().Key()), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// iterOptions are the options of an iterator over the state store's keys
// under prefix (nil: all), values read in the iterating goroutine.
// badger's defaults prefetch values, which starts a goroutine for each of
// the next 100 items and makes each value read wait for its goroutine:
// every record is small and inline in the LSM tree (the store's value
// threshold, 64 KiB, is far above a record), so that bought nothing and
// cost a goroutine per event read, and under load the wait for it to be
// scheduled (execution trace of a leader under 64 HTTP clients: 2.4
// goroutines on average waiting in Item.ValueCopy for their prefetch).
func iterOptions(prefix []byte) badger.IteratorOptions {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	return opts
}

func getBytes(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func getUint64(txn *badger.Txn, key []byte) (uint64, error) {
	b, err := getBytes(txn, key)
	if err != nil || b == nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%s: corrupt value of %d bytes", key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func feedKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{}, prefixFeed...), seq)
}
