package logstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// marker is personal data (a citizen ID number) that must never appear in
// the files of an encrypted store.
const marker = "320507199001011234"

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// markerLogs returns log entries lo..hi whose Data and Extensions contain
// marker; every 100th entry is large enough to go to the value log.
func markerLogs(lo, hi uint64) []*raft.Log {
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		data := []byte(fmt.Sprintf("applicant %d id=%s phone=13800138000", i, marker))
		if i%100 == 0 {
			data = bytes.Repeat(data, (valueThreshold/len(data))+2)
		}
		l := testLog(i, data)
		l.Extensions = []byte("ext-" + marker)
		logs = append(logs, l)
	}
	return logs
}

// filesContaining walks dir and returns the files containing s, and the
// set of file kinds (extensions or names) seen.
func filesContaining(t *testing.T, dir, s string) (found []string, kinds map[string]int) {
	t.Helper()
	kinds = map[string]int{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		kind := filepath.Ext(path)
		if kind == "" {
			kind = d.Name()
		}
		kinds[kind]++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			rel, _ := filepath.Rel(dir, path)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found, kinds
}

// fillStore writes marker logs and a stable value containing marker.
func fillStore(t *testing.T, s *Store) {
	t.Helper()
	if err := s.StoreLogs(markerLogs(1, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-"+marker)); err != nil {
		t.Fatal(err)
	}
}

func TestEncryptedStoreHasNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t)
	s, err := OpenEncrypted(dir, key, nil)
	if err != nil {
		t.Fatalf("OpenEncrypted: %v", err)
	}
	fillStore(t, s)
	// Files while the store is open (memtable WAL, value log).
	found, kinds := filesContaining(t, dir, marker)
	if len(found) > 0 {
		t.Errorf("open encrypted store: marker found in %v", found)
	}
	for _, k := range []string{".vlog", ".mem", "MANIFEST", "KEYREGISTRY"} {
		if kinds[k] == 0 {
			t.Errorf("open store: no %s file checked (files: %v)", k, kinds)
		}
	}
	t.Logf("checked files while open: %v", kinds)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	found, kinds = filesContaining(t, dir, marker)
	if len(found) > 0 {
		t.Errorf("closed encrypted store: marker found in %v", found)
	}
	for _, k := range []string{".vlog", ".sst", "MANIFEST", "KEYREGISTRY"} {
		if kinds[k] == 0 {
			t.Errorf("no %s file checked (files: %v)", k, kinds)
		}
	}
	t.Logf("checked files after close: %v", kinds)

	// The same key reads everything back.
	s, err = OpenEncrypted(dir, key, nil)
	if err != nil {
		t.Fatalf("reopen with the same key: %v", err)
	}
	defer s.Close()
	checkBounds(t, s, 11, 1000)
	for _, l := range markerLogs(11, 1000) {
		checkLog(t, s, l)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-"+marker {
		t.Errorf("Get = %q, %v", v, err)
	}
	if err := s.StoreLogs(markerLogs(1001, 1010)); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 11, 1010)
}

// TestUnencryptedStoreHasPlaintext checks that the file scan of
// TestEncryptedStoreHasNoPlaintext would find the marker.
func TestUnencryptedStoreHasPlaintext(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fillStore(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	found, _ := filesContaining(t, dir, marker)
	if len(found) == 0 {
		t.Fatal("marker not found in an unencrypted store: the scan is broken")
	}
}

func TestWrongKey(t *testing.T) {
	encDir, plainDir := t.TempDir(), t.TempDir()
	key := newKey(t)
	for dir, k := range map[string][]byte{encDir: key, plainDir: nil} {
		s, err := OpenEncrypted(dir, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		fillStore(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	open := func(dir string, key []byte) error {
		s, err := OpenEncrypted(dir, key, nil)
		if err == nil {
			s.Close()
		}
		return err
	}
	openPlain := func(dir string, _ []byte) error {
		s, err := Open(dir, nil)
		if err == nil {
			s.Close()
		}
		return err
	}
	tests := []struct {
		name string
		open func(string, []byte) error
		dir  string
		key  []byte
		want string
	}{
		{"another key", open, encDir, newKey(t), "is encrypted with another key: check encryption_key_file"},
		{"no key", open, encDir, nil, "is encrypted but no encryption key was given: check encryption_key_file"},
		{"Open", openPlain, encDir, nil, "is encrypted but no encryption key was given"},
		{"key for unencrypted store", open, plainDir, key, "is not encrypted but an encryption key was given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.open(tt.dir, tt.key)
			if !errors.Is(err, ErrWrongKey) {
				t.Fatalf("open = %v, want ErrWrongKey", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.dir) {
				t.Errorf("error %q does not contain %q and the folder", err, tt.want)
			}
			t.Log(err)
		})
	}

	// A refused key leaves nothing locked or changed: the right key works.
	s, err := OpenEncrypted(encDir, key, nil)
	if err != nil {
		t.Fatalf("open with the right key after refusals: %v", err)
	}
	checkBounds(t, s, 11, 1000)
	s.Close()
	s, err = Open(plainDir, nil)
	if err != nil {
		t.Fatalf("open unencrypted store after refusal: %v", err)
	}
	checkBounds(t, s, 11, 1000)
	s.Close()
}

func TestOpenEncryptedBadKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		_, err := OpenEncrypted(t.TempDir(), make([]byte, n), nil)
		if err == nil || !strings.Contains(err.Error(), "want 32") {
			t.Errorf("%d-byte key: err = %v", n, err)
		}
	}
}

func TestWithKey(t *testing.T) {
	dir := t.TempDir()
	base := Options(dir, true, nil)
	if o := WithKey(base, nil); len(o.EncryptionKey) != 0 ||
		o.EncryptionKeyRotationDuration != base.EncryptionKeyRotationDuration {
		t.Errorf("WithKey(nil) changed the options")
	}
	key := newKey(t)
	o := WithKey(base.WithIndexCacheSize(0), key)
	if !bytes.Equal(o.EncryptionKey, key) {
		t.Fatal("EncryptionKey not set")
	}
	key[0]++
	if bytes.Equal(o.EncryptionKey, key) {
		t.Error("WithKey does not copy the key")
	}
	if o.EncryptionKeyRotationDuration != keyRotation {
		t.Errorf("rotation = %v", o.EncryptionKeyRotationDuration)
	}
	if o.IndexCacheSize <= 0 || o.BlockCacheSize <= 0 {
		t.Errorf("IndexCacheSize, BlockCacheSize = %d, %d; want > 0", o.IndexCacheSize, o.BlockCacheSize)
	}
	db, err := badger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// KeyError on another database opened with WithKey.
	_, err = badger.Open(WithKey(base, newKey(t)))
	if err = KeyError(dir, key, err); !errors.Is(err, ErrWrongKey) {
		t.Errorf("KeyError = %v, want ErrWrongKey", err)
	}
	if err := KeyError(dir, key, nil); err != nil {
		t.Errorf("KeyError(nil) = %v", err)
	}
	other := errors.New("other")
	if err := KeyError(dir, key, other); err != other {
		t.Errorf("KeyError(other) = %v", err)
	}
}

// An encrypted store's write-ahead log and value log, as a crash leaves
// them (copied while open, nothing flushed to tables), replay into every
// key's value: the entries were encrypted with the right stream and
// checksummed over the encrypted bytes (third_party/badger encrypts them
// in place with a cipher kept per file).
func TestEncryptedLogsReplayAfterCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	key := newKey(t)
	const n = 400
	verifyFixture(t, dir, key, n)
	if ssts, _ := filepath.Glob(filepath.Join(dir+"-crash", "*.sst")); len(ssts) != 0 {
		t.Fatalf("the crashed store has tables %v: the test would not read its write-ahead log alone", ssts)
	}
	firstFile(t, dir+"-crash", ".mem")
	db, err := badger.Open(WithKey(Options(dir+"-crash", false, nil), key))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		for i := range n {
			item, err := txn.Get([]byte(fmt.Sprintf("k%08d", i)))
			if err != nil {
				return fmt.Errorf("key %d: %w", i, err)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("key %d: %w", i, err)
			}
			want := fmt.Sprintf("value %d", i)
			if wantLen := map[bool]int{true: valueThreshold + 1, false: 200}[i%50 == 0]; len(v) != wantLen || string(v[:len(want)]) != want {
				return fmt.Errorf("key %d: %d bytes %q..., want %d bytes %q...", i, len(v), v[:min(len(v), 16)], wantLen, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
