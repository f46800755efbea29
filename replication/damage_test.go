package replication

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/logstore"
)

// TestRebuildKeepsOutbox: Rebuild of a node whose state store is damaged
// moves raft, state and snapshots aside, and the new raft store holds the
// outbox's undelivered writes and raft's term and vote, not the log (the
// leader sends that).
func TestRebuildKeepsOutbox(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	cfg := Config{NodeID: "pc-1", Station: "XC-T-01", DataDir: dir, EncryptionKey: key}
	s, err := logstore.OpenEncrypted(filepath.Join(dir, "raft"), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 1, Term: 3, Type: raft.LogCommand, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	ob, err := openOutbox(s.DB())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := ob.put(records.Op{Kind: records.OpCreateCase}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// A state store with a MANIFEST gone.
	db, err := badger.Open(logstore.WithKey(logstore.Options(filepath.Join(dir, "state"), false, nil), key))
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) })
	db.Close()
	os.Remove(filepath.Join(dir, "state", "MANIFEST"))

	errs := CheckStores(cfg)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "state store") || !strings.Contains(errs[0].Error(), "MANIFEST") {
		t.Fatalf("CheckStores = %v", errs)
	}
	rep, err := Rebuild(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OutboxKept != 2 || rep.OutboxLost || len(rep.Moved) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, sub := range rep.Moved {
		if _, err := os.Stat(filepath.Join(rep.Aside, sub)); err != nil {
			t.Fatal(err)
		}
	}
	if errs := CheckStores(cfg); len(errs) != 0 {
		t.Fatalf("after rebuild: %v", errs)
	}
	s, err = logstore.OpenEncrypted(filepath.Join(dir, "raft"), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if last, _ := s.LastIndex(); last != 0 {
		t.Fatalf("the log was carried over: last index %d", last)
	}
	if term, _ := s.GetUint64([]byte("CurrentTerm")); term != 3 {
		t.Fatalf("term %d, want 3", term)
	}
	ob, err = openOutbox(s.DB())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := ob.stats(); n != 2 {
		t.Fatalf("outbox holds %d, want 2", n)
	}
}
