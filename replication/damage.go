package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/stationsync/stationsync/replication/logstore"
)

// The node's stores, as messages name them.
const (
	StoreRaft  = "raft log" // data_dir/raft, with the outbox
	StoreState = "state"    // data_dir/state
)

// StoreDamagedError: a store of the node is damaged (a file truncated,
// overwritten or missing). Open refuses to start on it: badger would
// panic, or drop what it cannot read and so lose acknowledged writes.
// Rebuild moves it aside and the node takes the station's data from its
// peers.
type StoreDamagedError struct {
	Store   string // StoreRaft or StoreState
	Path    string // the store's folder
	Problem string // what was found, naming the file
}

func (e *StoreDamagedError) Error() string {
	return fmt.Sprintf("the %s store in %s is damaged: %s", e.Store, e.Path, e.Problem)
}

// checkStore verifies the store in dir before badger opens it.
func checkStore(store, dir string, key []byte, atStart bool) error {
	verify := logstore.Verify
	if atStart {
		verify = logstore.VerifyAtStart
	}
	err := verify(dir, key)
	if sd := storeDamage(store, dir, err); sd != nil {
		return sd
	}
	if err != nil {
		return fmt.Errorf("check the %s store in %s: %w", store, dir, err)
	}
	return nil
}

// storeDamage is the StoreDamagedError for a logstore.DamageError found in
// the store in dir; nil for any other error.
func storeDamage(store, dir string, err error) *StoreDamagedError {
	var de *logstore.DamageError
	if !errors.As(err, &de) {
		return nil
	}
	return &StoreDamagedError{Store: store, Path: dir, Problem: de.File + " " + de.Problem}
}

// nodeStores are the badger stores of a node checked for damage: name
// (StoreRaft, StoreState) and folder under data_dir.
var nodeStores = []struct{ name, sub string }{{StoreRaft, "raft"}, {StoreState, "state"}}

// openFailure turns badger's refusal to open a verified store into a
// StoreDamagedError when it is about the files (not a wrong key, a lock
// held by another process, a full disk or missing permissions).
func openFailure(store, dir string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, logstore.ErrWrongKey) || errors.Is(err, badger.ErrEncryptionKeyMismatch) ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOSPC) ||
		strings.Contains(err.Error(), "Cannot acquire directory lock") {
		return err
	}
	return &StoreDamagedError{Store: store, Path: dir, Problem: "badger cannot open it: " + firstLine(err.Error())}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// CheckStores verifies the node's stores in cfg.DataDir without opening
// them: nil when none is damaged, else the StoreDamagedErrors (or the
// errors that kept a store from being checked).
func CheckStores(cfg Config) []error { return checkStores(cfg, false) }

func checkStores(cfg Config, atStart bool) []error {
	var errs []error
	for _, s := range nodeStores {
		if err := checkStore(s.name, filepath.Join(cfg.DataDir, s.sub), cfg.EncryptionKey, atStart); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// RebuildReport says what Rebuild did.
type RebuildReport struct {
	Aside   string   // the folder the stores were moved to
	Moved   []string // what was moved there (raft, state, snapshots)
	Damaged []error  // what CheckStores found
	// Kept is how many node-local records were carried over from the old
	// raft store: writes in the outbox not yet delivered, and raft's term
	// and vote. OutboxKept counts the outbox writes among them.
	Kept, OutboxKept int
	// OutboxLost: the old raft store could not be read, so writes this
	// node accepted while cut off and had not delivered yet (if any) are
	// not carried over. OutboxError says why.
	OutboxLost  bool
	OutboxError string
}

// Rebuild prepares a stopped node to take its station's data from its
// peers: it moves the node's stores (raft log, state, snapshots) into
// data_dir/damaged-<time> (never deletes them) and, when the old raft store
// is readable, starts a new one holding only its node-local records: the
// outbox's undelivered writes and raft's term and vote (the replicated log
// comes back from the leader). Identity stays: certificates, the
// encryption key, the node id and the QUIC reset key are not touched.
// Started, the node is still a member of its station's configuration: the
// leader sends it a snapshot and the log.
func Rebuild(cfg Config) (RebuildReport, error) {
	cfg.setDefaults()
	rep := RebuildReport{Damaged: CheckStores(cfg)}
	for _, err := range rep.Damaged {
		if sd := (*StoreDamagedError)(nil); !errors.As(err, &sd) {
			return rep, fmt.Errorf("rebuild: %w", err) // e.g. a wrong key: moving the stores would not help
		}
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	var kept []kv
	raftDamaged := false
	for _, err := range rep.Damaged {
		var sd *StoreDamagedError
		if errors.As(err, &sd) && sd.Store == StoreRaft {
			raftDamaged = true
		}
	}
	if _, err := os.Stat(raftDir); err == nil {
		if raftDamaged {
			rep.OutboxLost, rep.OutboxError = true, "the raft store (which holds the outbox) is damaged"
		} else {
			var err error
			if kept, err = readLocalRecords(raftDir, cfg.EncryptionKey, cfg.Logger); err != nil {
				if errors.Is(err, logstore.ErrWrongKey) || strings.Contains(err.Error(), "Cannot acquire directory lock") {
					return rep, fmt.Errorf("rebuild: %w", err)
				}
				rep.OutboxLost, rep.OutboxError = true, firstLine(err.Error())
			}
		}
	}
	rep.Aside = filepath.Join(cfg.DataDir, "damaged-"+time.Now().UTC().Format("20060102-150405"))
	for i := 2; ; i++ { // a second rebuild within the same second
		if _, err := os.Stat(rep.Aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		rep.Aside = filepath.Join(cfg.DataDir, fmt.Sprintf("damaged-%s-%d", time.Now().UTC().Format("20060102-150405"), i))
	}
	for _, sub := range []string{"raft", "state", "snapshots"} {
		from := filepath.Join(cfg.DataDir, sub)
		if _, err := os.Stat(from); err != nil {
			continue
		}
		if err := os.MkdirAll(rep.Aside, 0o700); err != nil {
			return rep, fmt.Errorf("rebuild: %w", err)
		}
		if err := os.Rename(from, filepath.Join(rep.Aside, sub)); err != nil {
			return rep, fmt.Errorf("rebuild: move %s aside: %w", from, err)
		}
		rep.Moved = append(rep.Moved, sub)
	}
	if len(kept) > 0 {
		s, err := logstore.OpenEncrypted(raftDir, cfg.EncryptionKey, cfg.Logger)
		if err != nil {
			return rep, fmt.Errorf("rebuild: new raft store: %w (the old one is in %s)", err, rep.Aside)
		}
		wb := s.DB().NewWriteBatch()
		for _, r := range kept {
			if err := wb.Set(r.k, r.v); err != nil {
				wb.Cancel()
				s.Close()
				return rep, fmt.Errorf("rebuild: carry over the outbox: %w (the old store is in %s)", err, rep.Aside)
			}
		}
		if err := wb.Flush(); err != nil {
			s.Close()
			return rep, fmt.Errorf("rebuild: carry over the outbox: %w (the old store is in %s)", err, rep.Aside)
		}
		if err := s.Close(); err != nil {
			return rep, fmt.Errorf("rebuild: %w", err)
		}
		rep.Kept = len(kept)
		for _, r := range kept {
			if bytes.HasPrefix(r.k, []byte(outboxPrefix)) {
				rep.OutboxKept++
			}
		}
	}
	return rep, nil
}

type kv struct{ k, v []byte }

// readLocalRecords reads every record of the raft store that is not a log
// entry: the outbox and raft's stable values (term, vote).
func readLocalRecords(dir string, key []byte, logger *slog.Logger) ([]kv, error) {
	// Verified: opening it writable is safe (badger only drops a torn,
	// never acknowledged last write).
	s, err := logstore.OpenEncrypted(dir, key, logger)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	db := s.DB()
	logPrefix := []byte(logstore.ReservedPrefix + "log/")
	var out []kv
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(iterOptions(nil))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if bytes.HasPrefix(k, logPrefix) {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read %q: %w", k, err)
			}
			out = append(out, kv{k, v})
		}
		return nil
	})
	return out, err
}

// tableVerifyEvery is how often a running node reads the tables written
// since its last pass (logstore.VerifyNewTables), so that its next start
// only reads the few written after that. Reading a table costs about what
// writing it did; a station writes little.
const tableVerifyEvery = 10 * time.Minute

// VerifyNewTables reads the tables of this node's stores written since the
// last pass, with every block checksum, and records them as verified for
// the next start. A damaged one is logged and returned (the node keeps
// running on what badger has in memory; the next start refuses the store
// and names `stationsync rebuild`).
func (n *Node) VerifyNewTables() error {
	var errs []error
	for _, s := range nodeStores {
		dir := filepath.Join(n.cfg.DataDir, s.sub)
		start := time.Now()
		read, err := logstore.VerifyNewTables(dir, n.cfg.EncryptionKey)
		switch sd := storeDamage(s.name, dir, err); {
		case sd != nil:
			n.logger.Error("store damaged: a table fails its checksums; the next start will refuse the store (run stationsync rebuild)", "store", s.name, "problem", sd.Problem)
			errs = append(errs, sd)
		case err != nil:
			n.logger.Warn("verify new tables", "store", s.name, "error", err)
			errs = append(errs, err)
		case read > 0:
			n.logger.Debug("new tables verified", "store", s.name, "tables", read, "took", time.Since(start).Round(time.Millisecond))
		}
	}
	return errors.Join(errs...)
}

func (n *Node) runTableVerifier() {
	defer n.wg.Done()
	t := time.NewTicker(tableVerifyEvery)
	defer t.Stop()
	for {
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
		_ = n.VerifyNewTables() // logged
	}
}
