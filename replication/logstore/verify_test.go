package logstore

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// verifyFixture writes n keys (every 50th value large enough for the value
// log) into an encrypted store in dir. With crash it copies the folder
// while the store is open (as a SIGKILL or power cut leaves it: a live
// write-ahead log, preallocated log files) into dir+"-crash".
func verifyFixture(t *testing.T, dir string, key []byte, n int) {
	t.Helper()
	// Not synced: the copy reads the page cache, as a SIGKILL leaves it.
	db, err := badger.Open(WithKey(Options(dir, false, nil), key))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		v := make([]byte, 200)
		if i%50 == 0 {
			v = make([]byte, valueThreshold+1)
		}
		copy(v, fmt.Sprintf("value %d", i))
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(fmt.Sprintf("k%08d", i)), v) }); err != nil {
			t.Fatal(err)
		}
	}
	copyDir(t, dir, dir+"-crash")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
}

// sstNames returns the names of the tables in dir, sorted.
func sstNames(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for i, p := range m {
		m[i] = filepath.Base(p)
	}
	slices.Sort(m)
	return m
}

// settledTables waits until the set of tables in dir has stayed the same
// for half a second (an open store's flushes and compactions are done, as
// far as the writes so far go; at most 20 s) and returns it.
func settledTables(t *testing.T, dir string) []string {
	t.Helper()
	names, since := sstNames(dir), time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		now := sstNames(dir)
		if !slices.Equal(now, names) {
			names, since = now, time.Now()
		} else if len(names) > 0 && time.Since(since) >= 500*time.Millisecond {
			return names
		}
	}
	return names
}

func firstFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(m) == 0 {
		t.Fatalf("no %s file in %s", suffix, dir)
	}
	return filepath.Base(m[0])
}

// TestVerifyFindsDamage: each way a file of a stopped store can be damaged
// (truncated, overwritten in the middle, deleted) is found by Verify before
// badger opens the store; badger itself panics on some (a truncated table)
// and silently drops data on others (a missing MANIFEST, a bad table, a
// bad log record). An intact store, closed cleanly or as a crash leaves
// it, passes.
func TestVerifyFindsDamage(t *testing.T) {
	root := t.TempDir()
	key := newKey(t)
	clean := filepath.Join(root, "db")
	verifyFixture(t, clean, key, 3000)
	crash := clean + "-crash"
	for _, dir := range []string{clean, crash} {
		if err := Verify(dir, key); err != nil {
			t.Fatalf("intact store %s: %v", dir, err)
		}
	}
	if err := Verify(filepath.Join(root, "none"), key); err != nil {
		t.Fatalf("missing store: %v", err)
	}
	overwrite := func(at func(size int64) int64) func(string) error {
		return func(p string) error {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			fi, _ := f.Stat()
			_, err = f.WriteAt([]byte(strings.Repeat("\xa5", 64)), at(fi.Size()))
			return err
		}
	}
	truncate := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		return os.Truncate(p, fi.Size()/2)
	}
	middle := overwrite(func(size int64) int64 { return size / 2 })
	// In a live log only the first part holds records (the rest is
	// preallocated zeros).
	early := overwrite(func(int64) int64 { return 4096 })
	cases := []struct {
		name, src, suffix string
		damage            func(string) error
		want              string
	}{
		{"vlog-truncated", clean, ".vlog", truncate, "truncated"},
		{"vlog-overwritten", clean, ".vlog", middle, "corrupt"},
		{"sst-truncated", clean, ".sst", truncate, "cannot be parsed"},
		{"sst-overwritten", clean, ".sst", middle, ".sst"},
		// (a cut exactly between two records cannot be told from a shorter
		// MANIFEST)
		{"manifest-truncated", clean, "MANIFEST", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()-5)
		}, "partial record"},
		{"manifest-overwritten", clean, "MANIFEST", overwrite(func(int64) int64 { return 10 }), "MANIFEST"},
		{"manifest-deleted", clean, "MANIFEST", os.Remove, "missing"},
		{"keyregistry-deleted", clean, "KEYREGISTRY", os.Remove, "KEYREGISTRY"},
		{"mem-overwritten", crash, ".mem", early, "corrupt"},
		{"live-vlog-overwritten", crash, ".vlog", early, "corrupt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			copyDir(t, tc.src, dir)
			name := tc.suffix
			if strings.HasPrefix(tc.suffix, ".") {
				name = firstFile(t, dir, tc.suffix)
			}
			if err := tc.damage(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			err := Verify(dir, key)
			var de *DamageError
			if !errors.As(err, &de) {
				t.Fatalf("Verify = %v, want a DamageError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || de.Dir != dir {
				t.Fatalf("Verify = %v (dir %s), want it to say %q", err, de.Dir, tc.want)
			}
			t.Logf("%v", err)
		})
	}
	// Cutting preallocated zeros off a live log loses nothing: not damage.
	t.Run("live-mem-tail-cut", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "db")
		copyDir(t, crash, dir)
		if err := truncate(filepath.Join(dir, firstFile(t, dir, ".mem"))); err != nil {
			t.Fatal(err)
		}
		if err := Verify(dir, key); err != nil {
			t.Fatalf("Verify = %v", err)
		}
	})
}

// VerifyAtStart reads a table whole only once: afterwards only its index,
// unless the file changed since (size or modification time), as an
// overwrite does.
func TestVerifyAtStartRereadsChangedTables(t *testing.T) {
	key := newKey(t)
	dir := filepath.Join(t.TempDir(), "db")
	verifyFixture(t, dir, key, 3000)
	if err := VerifyAtStart(dir, key); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if _, err := os.Stat(verifiedFile(dir)); err != nil {
		t.Fatalf("no record of the verified tables: %v", err)
	}
	if err := VerifyAtStart(dir, key); err != nil {
		t.Fatalf("second start: %v", err)
	}
	name := firstFile(t, dir, ".sst")
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 64)), fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = VerifyAtStart(dir, key)
	var de *DamageError
	if !errors.As(err, &de) || de.File != name {
		t.Fatalf("after %s was overwritten: VerifyAtStart = %v, want it damaged", name, err)
	}
}

// A running store's new tables are verified in the background and
// recorded, so the next start does not read them whole; a pass with
// nothing new reads nothing; a damaged table is reported and left out of
// the record, so the next start reads it and refuses the store.
func TestVerifyNewTablesOfAnOpenStore(t *testing.T) {
	key := newKey(t)
	dir := filepath.Join(t.TempDir(), "db")
	db, err := badger.Open(WithKey(Options(dir, false, nil), key))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	write := func(from, to int) {
		for i := from; i < to; i++ {
			v := make([]byte, 2000)
			copy(v, fmt.Sprintf("value %d", i))
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(fmt.Sprintf("k%08d", i)), v) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 6000) // ~12 MiB: memtables flushed to tables
	if len(settledTables(t, dir)) == 0 {
		t.Fatal("no table written")
	}
	read, err := VerifyNewTables(dir, key)
	if err != nil || read == 0 {
		t.Fatalf("first pass: read %d tables, %v", read, err)
	}
	// badger may still flush a memtable or finish a compaction after the
	// first pass, and that is a new table: a pass reads exactly the tables
	// the record does not list, and one with nothing new reads nothing.
	for try := 0; ; try++ {
		rec := readVerified(dir)
		before := sstNames(dir)
		read, err := VerifyNewTables(dir, key)
		if err != nil {
			t.Fatalf("pass %d: %v", try+2, err)
		}
		if !slices.Equal(before, sstNames(dir)) && try < 5 {
			settledTables(t, dir) // a table came or went during the pass
			continue
		}
		unlisted := 0
		for _, name := range before {
			if _, ok := rec[name]; !ok {
				unlisted++
			}
		}
		if read != unlisted {
			t.Fatalf("pass %d: read %d tables, %d were not recorded as verified", try+2, read, unlisted)
		}
		if unlisted == 0 {
			break
		}
		if try == 5 {
			t.Fatal("badger kept making tables: no pass with nothing new")
		}
	}
	rec := readVerified(dir)
	if len(rec) == 0 {
		t.Fatal("nothing recorded")
	}
	// Damage a table the record does not list yet (in the closed store:
	// badger would read the damage itself in a compaction).
	write(6000, 12000)
	err = db.Close()
	db = nil
	if err != nil {
		t.Fatal(err)
	}
	var fresh string
	m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, p := range m {
		if _, ok := rec[filepath.Base(p)]; !ok {
			fresh = filepath.Base(p)
		}
	}
	if fresh == "" {
		t.Fatal("no new table after more writes")
	}
	f, err := os.OpenFile(filepath.Join(dir, fresh), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 64)), 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = VerifyNewTables(dir, key)
	var de *DamageError
	if !errors.As(err, &de) || de.File != fresh {
		t.Fatalf("pass after %s was overwritten: %v, want it damaged", fresh, err)
	}
	if _, ok := readVerified(dir)[fresh]; ok {
		t.Errorf("damaged %s recorded as verified", fresh)
	}
}

// A table truncated while verifyTable reads it through a memory map (a
// compaction deleting it truncates it to zero first) does not kill the
// process with SIGBUS: the read returns an error, and the table written
// back whole verifies again. (VerifyNewTables then skips a table whose
// stamp changed while it was read; that step is not exercised here.)
func TestVerifyingATableTruncatedMeanwhile(t *testing.T) {
	key := newKey(t)
	dir := filepath.Join(t.TempDir(), "db")
	db, err := badger.Open(WithKey(Options(dir, false, nil), key))
	if err != nil {
		t.Fatal(err)
	}
	v := make([]byte, 2000)
	for i := range 6000 { // ~12 MiB: memtables flushed to tables
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(fmt.Appendf(nil, "k%08d", i), v) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mf, err := readManifestPrefix(dir)
	if err != nil || len(mf.Tables) == 0 {
		t.Fatalf("manifest: %d tables, %v", len(mf.Tables), err)
	}
	id := slices.Max(slices.Collect(maps.Keys(mf.Tables)))
	path := filepath.Join(dir, tableName(id))
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key, EncryptionKeyRotationDuration: keyRotation})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	cache, err := newIndexCache()
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()

	// Truncate the table and write it back, again and again, while it is
	// read; the file is opened without O_TRUNC, so a map of it sees the
	// size change under it.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				os.WriteFile(path, whole, 0o644)
				return
			default:
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				continue
			}
			f.Truncate(0)
			f.WriteAt(whole, 0)
			f.Close()
		}
	}()
	failed := 0
	for range 200 {
		if verifyTable(dir, id, mf.Tables[id], kr, cache, true) != nil {
			failed++
		}
	}
	close(stop)
	<-done
	if err := verifyTable(dir, id, mf.Tables[id], kr, cache, true); err != nil {
		t.Fatalf("the table written back whole: %v", err)
	}
	t.Logf("%d of 200 reads failed while the table was truncated and written back", failed)
}
