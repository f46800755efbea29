package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestDistrictHeadVersionsAreReclaimed: in a district store a value of
// 512 bytes or more (a case head, rewritten with every event merged)
// lives in the value log (ForDistrict). Its old versions are garbage
// there, and value-log GC takes the space back once compaction has
// dropped them; the latest versions stay readable.
func TestDistrictHeadVersionsAreReclaimed(t *testing.T) {
	dir := t.TempDir()
	// Small memtables and value-log files, so a few MiB of rewrites flush,
	// compact and fill several files.
	opts := ForDistrict(Options(dir, false, nil)).WithMemTableSize(1 << 20).WithValueLogFileSize(1 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	const keys, rounds = 100, 120
	head := func(k, r int) []byte {
		return append(fmt.Appendf(nil, "head %d version %d ", k, r), bytes.Repeat([]byte{'h'}, 600)...)
	}
	for r := range rounds {
		err := db.Update(func(txn *badger.Txn) error {
			for k := range keys {
				if err := txn.Set(fmt.Appendf(nil, "s/XC-IP-01/case/%04d", k), head(k, r)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The tree holds only pointers, which fit in one memtable:
		// closing flushes it, so the versions spread over tables that
		// compaction merges.
		if r%20 == 19 {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if db, err = badger.Open(opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	vlogs := func() int {
		m, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	before := vlogs()
	if before < 4 {
		t.Fatalf("%d value-log files after %d rewrites of %d-byte heads: are they in the tree?", before, keys*rounds, len(head(0, 0)))
	}
	// Compaction merges the tables (ForDistrict: from 4 in L0), drops
	// the old versions and counts their space in the value log as
	// discarded.
	deadline := time.Now().Add(30 * time.Second)
	for l0 := keys; l0 >= 4; {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the writes L0 still has %d tables", l0)
		}
		time.Sleep(20 * time.Millisecond)
		for _, l := range db.Levels() {
			if l.Level == 0 {
				l0 = l.NumTables
			}
		}
	}
	rewrites := 0
	for {
		err := db.RunValueLogGC(gcDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rewrites++
	}
	after := vlogs()
	if rewrites == 0 || after > before/2 {
		t.Fatalf("value-log GC rewrote %d files: %d value-log files before, %d after", rewrites, before, after)
	}
	err = db.View(func(txn *badger.Txn) error {
		for k := range keys {
			it, err := txn.Get(fmt.Appendf(nil, "s/XC-IP-01/case/%04d", k))
			if err != nil {
				return err
			}
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			if !bytes.Equal(v, head(k, rounds-1)) {
				return fmt.Errorf("head %d reads %.30q, not its last version", k, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d value-log files before GC, %d after %d rewrites", before, after, rewrites)
}
