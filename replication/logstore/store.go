// Package logstore stores the hashicorp/raft log and stable state in badger
// (v4) and holds the badger tuning shared by every badger database of a
// station node.
//
// [Store] implements [raft.LogStore] and [raft.StableStore] in one badger
// database. Log entries live under the key prefix "raft/log/" followed by the
// 8-byte big-endian index, so that key order is index order; stable values
// live under "raft/stable/" followed by the raft key. Entries are encoded in a
// small versioned binary format (see formatV1 in codec.go): one format-version
// byte, then varints and length-prefixed bytes for every raft.Log field.
//
// Durability: Store opens badger with SyncWrites, so every committed
// transaction is fsynced. A StoreLogs batch too large for one badger
// transaction is written as consecutive transactions in index order, so a
// crash leaves a prefix of the batch. DeleteRange deletes in chunks in an
// order that keeps the remaining log contiguous: from the end when it
// truncates the tail, from the start otherwise.
//
// [Options] and [StartGC] are also used by the other badger databases of a
// node (FSM state store, outbox) so that all of them stay small.
//
// Encryption at rest: [OpenEncrypted] opens the store with badger's AES
// encryption (every value-log, memtable and table file is encrypted; data
// keys rotate and are kept, encrypted with the node key, in KEYREGISTRY).
// [WithKey] applies the same to the options of the other databases, and
// [KeyError] turns badger's refusal of a key into an [ErrWrongKey] error.
package logstore

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// ReservedPrefix starts every key Store writes. Code that keeps node-local
// data in [Store.DB] must use keys that do not start with it (nor with
// "!badger!", which badger reserves).
const ReservedPrefix = "raft/"

var (
	logPrefix    = []byte(ReservedPrefix + "log/")
	stablePrefix = []byte(ReservedPrefix + "stable/")
	// firstHintKey holds a lower bound of the first log index: no entry
	// below it exists. raft drops the front of its log after each
	// snapshot, and badger keeps a deleted key's tombstone until a
	// compaction reaches the bottom level, so a scan for the first entry
	// from the start of the prefix stepped over every entry ever dropped:
	// ~30 % of a node's start-up CPU with 1,000,000 events (bench
	// footprint). Raised after a deletion from the front commits (a crash
	// before that leaves it lower: still a bound); lowered before an entry
	// below it is written.
	firstHintKey = []byte(ReservedPrefix + "bounds/first")
)

// ErrKeyNotFound is returned by Store.Get and Store.GetUint64 for a missing
// key. Its text is exactly "not found" because raft compares err.Error() to
// that string; it is therefore returned unwrapped.
var ErrKeyNotFound = errors.New("not found")

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("logstore: store is closed")

// Store is a raft.LogStore and raft.StableStore backed by badger. It is safe
// for concurrent use.
type Store struct {
	db *badger.DB
	gc *GC

	// life guards closed: every operation holds it for reading, Close for
	// writing, so Close waits for operations in flight and none starts after.
	life   sync.RWMutex
	closed bool

	// mu serializes log writes and guards the cached bounds.
	mu          sync.Mutex
	first, last uint64 // 0, 0 for an empty log
	boundsOK    bool   // false after a failed write: reload before use
	hint        uint64 // what firstHintKey holds (0: none)

	// commit commits a write transaction; tests replace it to inject
	// failures.
	commit func(*badger.Txn) error

	// staged are entries the leader staged (StageLogs): the batch it is
	// writing, and the last entry it wrote before. GetLog serves them from
	// memory: a badger read waits for every commit in flight, so reading
	// them (or the entry before them, which an AppendEntries names) from
	// badger would make a replicator wait for the leader's own write and
	// fsync, the very thing staging lets it overlap.
	stageMu sync.RWMutex
	staged  map[uint64]*raft.Log
}

var (
	_ raft.LogStore       = (*Store)(nil)
	_ raft.StableStore    = (*Store)(nil)
	_ raft.StagedLogStore = (*Store)(nil)
)

// Open opens (creating dir if needed) the badger database in dir as a Store,
// with [Options] (SyncWrites on) and value-log GC every [DefaultGCInterval].
// A nil logger discards log output.
//
// Open does not encrypt; see [OpenEncrypted]. Opening an encrypted store
// with Open fails with an error wrapping [ErrWrongKey].
func Open(dir string, logger *slog.Logger) (*Store, error) {
	return OpenEncrypted(dir, nil, logger)
}

// open is Open with explicit badger options and GC interval (for tests).
func open(opts badger.Options, gcInterval time.Duration, logger *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	if opts.ValueDir != opts.Dir {
		if err := os.MkdirAll(opts.ValueDir, 0o700); err != nil {
			return nil, fmt.Errorf("open log store: %w", err)
		}
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open log store %s: %w", opts.Dir, err)
	}
	s := &Store{db: db, commit: (*badger.Txn).Commit}
	err = db.View(func(txn *badger.Txn) (err error) {
		s.hint, err = readHint(txn)
		return err
	})
	if err == nil {
		err = s.loadBounds()
	}
	if err == nil && s.hint < s.first {
		// A store from before the hint, or one whose front was dropped
		// without it: the next start need not step over the same
		// tombstones again.
		err = s.setHint(s.first)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open log store %s: %w", opts.Dir, err), db.Close())
	}
	s.gc = StartGC(db, gcInterval, logger)
	return s, nil
}

// Close stops value-log GC and closes the database, waiting for operations
// in flight. Calls after the first return nil.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.gc.Stop()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close log store: %w", err)
	}
	return nil
}

// PauseGC pauses (true) or resumes value-log GC.
func (s *Store) PauseGC(p bool) { s.gc.Pause(p) }

// DB returns the underlying badger database, for node-local data that should
// share its files and fsyncs (for example an outbox). Keys starting with
// [ReservedPrefix] belong to Store and must not be written through DB. The
// database is closed by Close.
func (s *Store) DB() *badger.DB { return s.db }

// logKey returns the key of the log entry with the given index.
func logKey(index uint64) []byte {
	k := make([]byte, len(logPrefix)+8)
	copy(k, logPrefix)
	binary.BigEndian.PutUint64(k[len(logPrefix):], index)
	return k
}

// parseLogKey returns the index in a log key.
func parseLogKey(k []byte) (uint64, error) {
	if len(k) != len(logPrefix)+8 || !bytes.HasPrefix(k, logPrefix) {
		return 0, fmt.Errorf("malformed log key %x", k)
	}
	return binary.BigEndian.Uint64(k[len(logPrefix):]), nil
}

// lastLogKey sorts after every log key: the log prefix followed by 0xFF
// bytes. A reverse iterator must be seeked here (the bare prefix sorts
// before all log keys and finds nothing).
var lastLogKey = append(slices.Clone(logPrefix), bytes.Repeat([]byte{0xFF}, 8)...)

// loadBounds reads the first and last index from the database into the
// cache. s.mu must be held, or s not yet shared.
func (s *Store) loadBounds() error {
	var first, last uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if first, err = boundIndex(txn, false, s.hint); err != nil {
			return fmt.Errorf("first index: %w", err)
		}
		if last, err = boundIndex(txn, true, 0); err != nil {
			return fmt.Errorf("last index: %w", err)
		}
		return nil
	})
	if err != nil {
		s.boundsOK = false
		return err
	}
	s.first, s.last, s.boundsOK = first, last, true
	return nil
}

// boundIndex returns the lowest (or, if last, the highest) log index in txn,
// or 0 if there is none. The lowest is looked for from index from on
// (firstHintKey).
func boundIndex(txn *badger.Txn, last bool, from uint64) (uint64, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: logPrefix, Reverse: last})
	defer it.Close()
	if last {
		it.Seek(lastLogKey)
	} else {
		it.Seek(logKey(from))
	}
	if !it.Valid() {
		return 0, nil
	}
	return parseLogKey(it.Item().Key())
}

// bounds returns the cached first and last index, reloading them if a
// failed write left them unknown.
func (s *Store) bounds() (first, last uint64, err error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.boundsOK {
		if err := s.loadBounds(); err != nil {
			return 0, 0, err
		}
	}
	return s.first, s.last, nil
}

// FirstIndex implements raft.LogStore. It returns 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) {
	first, _, err := s.bounds()
	if err != nil {
		return 0, fmt.Errorf("first index: %w", err)
	}
	return first, nil
}

// LastIndex implements raft.LogStore. It returns 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) {
	_, last, err := s.bounds()
	if err != nil {
		return 0, fmt.Errorf("last index: %w", err)
	}
	return last, nil
}

// GetLog implements raft.LogStore. It returns raft.ErrLogNotFound if there
// is no entry at index.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return fmt.Errorf("get log %d: %w", index, ErrClosed)
	}
	s.stageMu.RLock()
	st, ok := s.staged[index]
	s.stageMu.RUnlock()
	if ok {
		*log = *st
		return nil
	}
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	// The decoded Data and Extensions alias val, which is our own copy.
	var l raft.Log
	if err := decodeLog(val, &l); err != nil {
		return fmt.Errorf("get log %d: decode: %w", index, err)
	}
	if l.Index != index {
		return fmt.Errorf("get log %d: stored entry has index %d", index, l.Index)
	}
	*log = l
	return nil
}

// readHint reads firstHintKey (0 when there is none).
func readHint(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(firstHintKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("first index hint: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, fmt.Errorf("first index hint: %w", err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("first index hint: %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// setHint commits firstHintKey = index. s.mu must be held.
func (s *Store) setHint(index uint64) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := txn.Set(firstHintKey, binary.BigEndian.AppendUint64(nil, index)); err != nil {
		return err
	}
	if err := s.commit(txn); err != nil {
		return fmt.Errorf("first index hint: %w", err)
	}
	s.hint = index
	return nil
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StageLogs implements raft.StagedLogStore (a patch of the vendored raft,
// third_party/raft/PATCHES.md): the leader stages the entries it is about
// to store, so that its replicators read them and send them to the
// followers while StoreLogs writes them here, instead of after. The leader
// still counts its own copy toward the commit only once StoreLogs
// returned.
//
// What stays staged: the batch being written, then (once written) its
// last entry, which the next AppendEntries names as the previous entry.
// A failed StoreLogs unstages its batch; DeleteRange, and a StoreLogs of
// other entries at a staged index, unstage what they replace, so GetLog
// never serves an entry the log does not hold.
func (s *Store) StageLogs(logs []*raft.Log) {
	if len(logs) == 0 {
		return
	}
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	if s.staged == nil {
		s.staged = make(map[uint64]*raft.Log, len(logs)+1)
	}
	for _, l := range logs {
		s.staged[l.Index] = l
	}
}

// unstage updates the stage once StoreLogs(logs) returned. After the
// leader's staged batch was written (stored), only its last entry stays:
// the rest is readable from badger. Otherwise (a failed write, or entries
// a follower wrote) the stage loses logs' indexes.
func (s *Store) unstage(logs []*raft.Log, stored bool) {
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	if len(s.staged) == 0 {
		return
	}
	last := logs[len(logs)-1]
	if stored && s.staged[last.Index] == last {
		clear(s.staged)
		s.staged[last.Index] = last
		return
	}
	for _, l := range logs {
		delete(s.staged, l.Index)
	}
}

// unstageRange drops the staged entries with index lo through hi.
func (s *Store) unstageRange(lo, hi uint64) {
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	for i := range s.staged {
		if i >= lo && i <= hi {
			delete(s.staged, i)
		}
	}
}

// StoreLogs implements raft.LogStore. Entries are written in index order,
// as one badger transaction if they fit and as consecutive transactions
// otherwise, so after a crash or a failure the store holds a prefix of the
// batch (in index order), never a later entry without an earlier one.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return fmt.Errorf("store logs: %w", ErrClosed)
	}
	byIndex := func(a, b *raft.Log) int { return cmp.Compare(a.Index, b.Index) }
	if !slices.IsSortedFunc(logs, byIndex) {
		logs = slices.Clone(logs)
		slices.SortStableFunc(logs, byIndex)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.storeLogs(logs); err != nil {
		// Whether the failed commit reached the disk is unknown.
		s.boundsOK = false
		s.unstage(logs, false)
		return fmt.Errorf("store logs: %w", err)
	}
	s.unstage(logs, true)
	return nil
}

// storeLogs writes logs (sorted by index). s.mu must be held.
func (s *Store) storeLogs(logs []*raft.Log) error {
	if logs[0].Index < s.hint {
		// Not seen from raft (it writes only after what it dropped), but
		// an entry below the hint would be invisible to loadBounds.
		if err := s.setHint(logs[0].Index); err != nil {
			return err
		}
	}
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }() // the current transaction
	start := 0                       // first entry of logs in txn
	for i, l := range logs {
		key, val := logKey(l.Index), encodeLog(l)
		err := txn.Set(key, val)
		if errors.Is(err, badger.ErrTxnTooBig) && i > start {
			if err := s.commitLogs(txn, logs[start:i]); err != nil {
				return err
			}
			txn.Discard()
			txn = s.db.NewTransaction(true)
			start = i
			err = txn.Set(key, val)
		}
		if err != nil {
			return fmt.Errorf("entry %d: %w", l.Index, err)
		}
	}
	return s.commitLogs(txn, logs[start:])
}

// commitLogs commits txn, which holds chunk (sorted by index), and widens
// the cached bounds to cover it. s.mu must be held.
func (s *Store) commitLogs(txn *badger.Txn, chunk []*raft.Log) error {
	lo, hi := chunk[0].Index, chunk[len(chunk)-1].Index
	if err := s.commit(txn); err != nil {
		return fmt.Errorf("commit entries %d-%d: %w", lo, hi, err)
	}
	if s.boundsOK {
		if s.first == 0 || lo < s.first {
			s.first = lo
		}
		s.last = max(s.last, hi)
	}
	return nil
}

// DeleteRange implements raft.LogStore: it deletes the entries with index
// lo through hi inclusive. Large ranges are deleted in several
// transactions; a range reaching the end of the log is deleted from its end
// backwards, any other range from its start forwards, so that an interrupted
// deletion leaves a contiguous log.
func (s *Store) DeleteRange(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return fmt.Errorf("delete range %d-%d: %w", lo, hi, ErrClosed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unstageRange(lo, hi)
	if !s.boundsOK {
		if err := s.loadBounds(); err != nil {
			return fmt.Errorf("delete range %d-%d: %w", lo, hi, err)
		}
	}
	backwards := lo > s.first && hi >= s.last
	err := s.deleteRange(lo, hi, backwards)
	if err == nil && lo <= s.first && hi >= s.hint && hi < math.MaxUint64 {
		// The front of the log is gone up to hi.
		err = s.setHint(hi + 1)
	}
	if lerr := s.loadBounds(); lerr != nil && err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("delete range %d-%d: %w", lo, hi, err)
	}
	return nil
}

// deleteRange deletes the existing entries in [lo, hi]. s.mu must be held.
func (s *Store) deleteRange(lo, hi uint64, backwards bool) error {
	// Iterate over a snapshot and delete in separate write transactions.
	rtxn := s.db.NewTransaction(false)
	defer rtxn.Discard()
	it := rtxn.NewIterator(badger.IteratorOptions{Prefix: logPrefix, Reverse: backwards})
	defer it.Close()

	wtxn := s.db.NewTransaction(true)
	defer func() { wtxn.Discard() }() // the current transaction
	n := 0                            // deletes in wtxn
	seek := logKey(lo)
	if backwards {
		seek = logKey(hi)
	}
	for it.Seek(seek); it.Valid(); it.Next() {
		key := it.Item().KeyCopy(nil)
		index, err := parseLogKey(key)
		if err != nil {
			return err
		}
		if index < lo || index > hi {
			break
		}
		err = wtxn.Delete(key)
		if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
			if err := s.commit(wtxn); err != nil {
				return fmt.Errorf("commit deletes: %w", err)
			}
			wtxn.Discard()
			wtxn = s.db.NewTransaction(true)
			n = 0
			err = wtxn.Delete(key)
		}
		if err != nil {
			return fmt.Errorf("delete entry %d: %w", index, err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if err := s.commit(wtxn); err != nil {
		return fmt.Errorf("commit deletes: %w", err)
	}
	return nil
}

// stableKey returns the badger key of a StableStore key.
func stableKey(key []byte) []byte {
	return append(slices.Clip(stablePrefix), key...)
}

// Set implements raft.StableStore.
func (s *Store) Set(key []byte, val []byte) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return fmt.Errorf("set %q: %w", key, ErrClosed)
	}
	err := s.update(func(txn *badger.Txn) error {
		return txn.Set(stableKey(key), val)
	})
	if err != nil {
		return fmt.Errorf("set %q: %w", key, err)
	}
	return nil
}

// update runs fn in a write transaction committed with s.commit.
func (s *Store) update(fn func(*badger.Txn) error) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	return s.commit(txn)
}

// Get implements raft.StableStore. A missing key returns ErrKeyNotFound,
// whose text is "not found" as raft requires.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("get %q: %w", key, ErrClosed)
	}
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	if val == nil {
		val = []byte{} // stored but empty: distinguish from missing
	}
	return val, nil
}

// SetUint64 implements raft.StableStore. The value is stored as 8 bytes,
// big-endian, under the same key space as Set.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore. A missing key returns 0 and
// ErrKeyNotFound (text "not found"), which raft treats as "unset".
func (s *Store) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("get uint64 %q: value has %d bytes, want 8", key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}
