package sealed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// marker is personal data (a citizen ID number) that must never appear in
// a snapshot file.
const marker = "320507199001011234"

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// ---- key file ----

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "stationsync", "data.key")
	if _, err := LoadOrCreateKey(path, false); !errors.Is(err, fs.ErrNotExist) ||
		!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file, create=false: err = %v", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("create=false made the folder: %v", err)
	}

	key, err := LoadOrCreateKey(path, true)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(key) != KeySize || bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatalf("key = %x", key)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != hex.EncodeToString(key)+"\n" {
		t.Errorf("file content = %q", b)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]fs.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s mode = %o, want %o", p, got, want)
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the key file (temporary file left?)", len(entries))
	}

	for _, create := range []bool{false, true} {
		again, err := LoadOrCreateKey(path, create)
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("reload (create=%v) = %x, %v; want the same key", create, again, err)
		}
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.key")
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path, true) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("concurrent creators got different keys")
		}
	}
	stored, err := LoadOrCreateKey(path, false)
	if err != nil || !bytes.Equal(stored, keys[0]) {
		t.Fatalf("stored key differs from the returned one: %v", err)
	}
}

func TestLoadKeyContent(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	want, _ := hex.DecodeString(good)
	for name, content := range map[string]string{
		"no newline": good,
		"newline":    good + "\n",
		"crlf":       good + "\r\n",
		"upper case": strings.ToUpper(good),
		"bom":        "\uFEFF" + good + "\n",
	} {
		path := filepath.Join(t.TempDir(), "data.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadOrCreateKey(path, true)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %x, %v", name, got, err)
		}
	}

	secret := "g123456789abcdef" + strings.Repeat("fedcba9876543210", 3)
	for name, content := range map[string]string{
		"empty":       "",
		"short":       good[:62],
		"long":        good + "00",
		"not hex":     secret,
		"binary":      string(want),
		"two keys":    good + "\n" + good + "\n",
		"inner space": good[:32] + " " + good[32:],
	} {
		path := filepath.Join(t.TempDir(), "data.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, create := range []bool{false, true} {
			_, err := LoadOrCreateKey(path, create)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("%s (create=%v): err = %v, want an error naming the file", name, create, err)
			}
			if err != nil && strings.Contains(err.Error(), "g1") {
				t.Errorf("%s: error quotes the file content: %v", name, err)
			}
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%s: a bad key file was rewritten", name)
		}
	}
	if _, err := LoadOrCreateKey("", true); err == nil {
		t.Error("empty path: no error")
	}
}

func TestKeyFilePermsOK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.key")
	if _, err := KeyFilePermsOK(path); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := LoadOrCreateKey(path, true); err != nil {
		t.Fatal(err)
	}
	if ok, err := KeyFilePermsOK(path); !ok || err != nil {
		t.Errorf("new key file: %v, %v; want true", ok, err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for mode, want := range map[fs.FileMode]bool{0o600: true, 0o400: true, 0o640: false, 0o644: false, 0o604: false, 0o620: false} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if ok, err := KeyFilePermsOK(path); ok != want || err != nil {
			t.Errorf("mode %o: %v, %v; want %v", mode, ok, err, want)
		}
	}
}

// ---- sealed stream ----

func seal(t testing.TB, key, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newWriter(&buf, key)
	if err != nil {
		t.Fatal(err)
	}
	writeInPieces(t, w, plain)
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unseal(key, sealed []byte) ([]byte, error) {
	r, err := newReader(bytes.NewReader(sealed), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// writeInPieces writes b to w in pieces of varying sizes.
func writeInPieces(t testing.TB, w io.Writer, b []byte) {
	t.Helper()
	sizes := []int{1, 7, 4096, chunkSize - 3, chunkSize, 2*chunkSize + 5, 100}
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		if k, err := w.Write(b[:n]); err != nil || k != n {
			t.Fatalf("Write = %d, %v; want %d", k, err, n)
		}
		b = b[n:]
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

var testSizes = []int{0, 1, 100, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 3*chunkSize + 17, 1<<20 + 12345}

func TestStreamRoundTrip(t *testing.T) {
	key := newKey(t)
	for _, n := range testSizes {
		plain := randomBytes(t, n)
		sealed := seal(t, key, plain)
		got, err := unseal(key, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: round trip failed: %v", n, err)
		}
		if ps, err := PlainSize(int64(len(sealed))); err != nil || ps != int64(n) {
			t.Errorf("size %d: PlainSize(%d) = %d, %v", n, len(sealed), ps, err)
		}
		chunks := max(1, (n+chunkSize-1)/chunkSize)
		if want := headerLen + n + chunks*tagLen; len(sealed) != want {
			t.Errorf("size %d: sealed %d bytes, want %d", n, len(sealed), want)
		}
	}
}

func TestPlainSize(t *testing.T) {
	// Every possible sealed length maps back to its plain length ...
	for p := int64(0); p <= 3*chunkSize+2; p++ {
		chunks := max(1, (p+chunkSize-1)/chunkSize)
		s := int64(headerLen) + p + chunks*tagLen
		if got, err := PlainSize(s); err != nil || got != p {
			t.Fatalf("PlainSize(%d) = %d, %v; want %d", s, got, err, p)
		}
	}
	// ... and impossible ones fail.
	for _, s := range []int{-1, 0, headerLen, headerLen + tagLen - 1, headerLen + sealedChunk + 1, headerLen + sealedChunk + tagLen - 1} {
		if got, err := PlainSize(int64(s)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("PlainSize(%d) = %d, %v; want ErrCorrupt", s, got, err)
		}
	}
}

// TestStreamTamper checks that every alteration of a sealed stream is an
// error, never short or changed data.
func TestStreamTamper(t *testing.T) {
	key := newKey(t)
	plain := randomBytes(t, 3*chunkSize+100)
	sealed := seal(t, key, plain)
	other := seal(t, key, plain) // same key and plaintext, other nonce prefix

	check := func(name string, data []byte, key []byte, want error) {
		t.Helper()
		got, err := unseal(key, data)
		if !errors.Is(err, want) {
			t.Errorf("%s: got %d bytes, err %v; want %v", name, len(got), err, want)
		}
	}

	// Truncation anywhere, including at every chunk boundary.
	cuts := []int{0, 3, headerLen - 1, headerLen, headerLen + 1, headerLen + tagLen, len(sealed) - 1}
	for i := 1; i <= 3; i++ {
		cuts = append(cuts, headerLen+i*sealedChunk, headerLen+i*sealedChunk-1, headerLen+i*sealedChunk+1)
	}
	for _, n := range cuts {
		want := ErrCorrupt
		if n < headerLen {
			want = ErrNotSealed
		}
		check(fmt.Sprintf("truncated to %d", n), sealed[:n], key, want)
	}

	// Flipped bytes: magic and version, nonce prefix, ciphertext, tags.
	for _, i := range []int{0, 5, 6, 13, 14, headerLen + chunkSize + 3, headerLen + sealedChunk - 1, headerLen + sealedChunk, len(sealed) - 1} {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x40
		want := ErrCorrupt
		if i <= len(magic) {
			want = ErrNotSealed
		}
		check(fmt.Sprintf("byte %d flipped", i), bad, key, want)
	}

	// Appended data, appended or swapped chunks, a chunk from another file.
	check("appended byte", append(bytes.Clone(sealed), 0), key, ErrCorrupt)
	c0 := sealed[headerLen : headerLen+sealedChunk]
	c1 := sealed[headerLen+sealedChunk : headerLen+2*sealedChunk]
	rest := sealed[headerLen+2*sealedChunk:]
	check("chunk appended", slicesConcat(sealed, c1), key, ErrCorrupt)
	check("chunks swapped", slicesConcat(sealed[:headerLen], c1, c0, rest), key, ErrCorrupt)
	check("chunk from another file", slicesConcat(sealed[:headerLen], other[headerLen:headerLen+sealedChunk], sealed[headerLen+sealedChunk:]), key, ErrCorrupt)
	check("last chunk dropped", slicesConcat(sealed[:headerLen], c0, c1), key, ErrCorrupt)
	check("wrong key", sealed, newKey(t), ErrCorrupt)
	check("plain data", []byte("plain snapshot "+marker), key, ErrNotSealed)
	bad := bytes.Clone(sealed)
	bad[len(magic)] = 2
	check("version 2", bad, key, ErrNotSealed)
}

func slicesConcat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestStreamNoPartialDataBeforeError checks that a reader does not hand
// out the plaintext of a chunk before the chunk is authenticated.
func TestStreamNoPartialDataBeforeError(t *testing.T) {
	key := newKey(t)
	plain := bytes.Repeat([]byte(marker), chunkSize/len(marker)+10)
	sealed := seal(t, key, plain)
	sealed[len(sealed)-1] ^= 1 // the last chunk's tag
	r, err := newReader(bytes.NewReader(sealed), key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
	if len(got) != chunkSize {
		t.Errorf("got %d bytes before the error, want the first chunk only (%d)", len(got), chunkSize)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/v1.sealed")

// fixtureKey and fixturePlain define testdata/v1.sealed: a version 1 stream
// of two chunks. Reading it checks that the format does not change by
// accident.
var fixtureKey = bytes.Repeat([]byte{0x5a}, KeySize)

func fixturePlain() []byte {
	b := make([]byte, chunkSize+1000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestFormatV1Fixture(t *testing.T) {
	path := filepath.Join("testdata", "v1.sealed")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, seal(t, fixtureKey, fixturePlain()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sealed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := unseal(fixtureKey, sealed)
	if err != nil || !bytes.Equal(got, fixturePlain()) {
		t.Fatalf("reading the version 1 fixture: %v", err)
	}
	if string(sealed[:6]) != "SSEAL\x01" {
		t.Errorf("header = %q", sealed[:6])
	}
}

// ---- snapshot store ----

type testStore struct {
	*SnapshotStore
	inner *raft.FileSnapshotStore
	dir   string
	trans *raft.InmemTransport
}

func newTestStore(t *testing.T, key []byte) *testStore {
	t.Helper()
	dir := t.TempDir()
	inner, err := raft.NewFileSnapshotStore(dir, 50, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSnapshotStore(inner, key)
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("")
	t.Cleanup(func() { trans.Close() })
	return &testStore{SnapshotStore: s, inner: inner, dir: dir, trans: trans}
}

var snapIndex uint64

// write stores data as a new snapshot and returns its ID.
func (s *testStore) write(t *testing.T, data []byte) string {
	t.Helper()
	snapIndex++
	cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "n1", Address: s.trans.LocalAddr()}}}
	sink, err := s.Create(1, snapIndex, 1, cfg, 1, s.trans)
	if err != nil {
		t.Fatal(err)
	}
	writeInPieces(t, sink, data)
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func (s *testStore) read(id string) (*raft.SnapshotMeta, []byte, error) {
	meta, rc, err := s.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return meta, b, err
}

func (s *testStore) statePath(id string) string {
	return filepath.Join(s.dir, "snapshots", id, "state.bin")
}

func TestNewSnapshotStore(t *testing.T) {
	inner, err := raft.NewFileSnapshotStore(t.TempDir(), 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := NewSnapshotStore(inner, make([]byte, n)); err == nil {
			t.Errorf("%d-byte key accepted", n)
		}
	}
	if _, err := NewSnapshotStore(nil, newKey(t)); err == nil {
		t.Error("nil inner store accepted")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := newTestStore(t, newKey(t))
	sizes := map[string]int{}
	for _, n := range testSizes {
		data := randomBytes(t, n)
		id := s.write(t, data)
		sizes[id] = n
		meta, got, err := s.read(id)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: read %d bytes, not what was written", n, len(got))
		}
		if meta.Size != int64(n) || meta.ID != id {
			t.Errorf("size %d: meta.Size = %d, ID %q", n, meta.Size, meta.ID)
		}
		fi, err := os.Stat(s.statePath(id))
		if err != nil {
			t.Fatal(err)
		}
		if ps, _ := PlainSize(fi.Size()); ps != int64(n) || fi.Size() <= int64(n) {
			t.Errorf("size %d: state.bin is %d bytes", n, fi.Size())
		}
		innerMeta, rc, err := s.inner.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if innerMeta.Size != fi.Size() {
			t.Errorf("inner meta.Size = %d, file %d", innerMeta.Size, fi.Size())
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(testSizes) {
		t.Fatalf("List returned %d snapshots, want %d", len(list), len(testSizes))
	}
	for _, m := range list {
		if want, ok := sizes[m.ID]; !ok || m.Size != int64(want) {
			t.Errorf("List: %s size %d, want %d", m.ID, m.Size, want)
		}
	}
	// List must not change the inner store's metadata.
	innerList, _ := s.inner.List()
	for _, m := range innerList {
		if m.Size == int64(sizes[m.ID]) {
			t.Errorf("inner List of %s reports the plain size", m.ID)
		}
	}
}

// TestSnapshotFilesHaveNoPlaintext checks the raw files of a snapshot for
// the marker, and that the same scan finds it without sealing.
func TestSnapshotFilesHaveNoPlaintext(t *testing.T) {
	data := bytes.Repeat([]byte("id="+marker+" phone=13800138000\n"), 10000)
	s := newTestStore(t, newKey(t))
	id := s.write(t, data)
	files := filesWith(t, s.dir, marker)
	if len(files) != 0 {
		t.Errorf("marker found in %v", files)
	}
	for _, f := range []string{"state.bin", "meta.json"} {
		if _, err := os.Stat(filepath.Join(s.dir, "snapshots", id, f)); err != nil {
			t.Errorf("expected file: %v", err)
		}
	}
	if _, got, err := s.read(id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}

	// Control: the same data through the plain store is found.
	plain := newTestStore(t, newKey(t))
	sink, err := plain.inner.Create(1, 1, 1, raft.Configuration{}, 1, plain.trans)
	if err != nil {
		t.Fatal(err)
	}
	sink.Write(data)
	sink.Close()
	if len(filesWith(t, plain.dir, marker)) == 0 {
		t.Fatal("marker not found in a plain snapshot: the scan is broken")
	}
}

// filesWith returns the files under dir whose raw bytes contain s.
func filesWith(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// rewriteState replaces the state file of snapshot id and fixes the size
// and CRC in meta.json, as an attacker (or a bug) could, so that the file
// store's own CRC check passes and the sealing is what must catch it.
func (s *testStore) rewriteState(t *testing.T, id string, state []byte) {
	t.Helper()
	if err := os.WriteFile(s.statePath(id), state, 0o600); err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(s.dir, "snapshots", id, "meta.json")
	b, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(state)
	meta["CRC"] = h.Sum(nil)
	meta["Size"] = len(state)
	if b, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotTamper(t *testing.T) {
	key := newKey(t)
	data := randomBytes(t, 2*chunkSize+500)
	s := newTestStore(t, key)
	id := s.write(t, data)
	orig, err := os.ReadFile(s.statePath(id))
	if err != nil {
		t.Fatal(err)
	}

	rng := mrand.New(mrand.NewPCG(1, 2))
	cases := map[string][]byte{
		"truncated at a chunk boundary": orig[:headerLen+sealedChunk],
		"truncated mid-chunk":           orig[:headerLen+sealedChunk+100],
		"truncated by one byte":         orig[:len(orig)-1],
		"extended":                      append(bytes.Clone(orig), make([]byte, tagLen+1)...),
	}
	for range 5 {
		bad := bytes.Clone(orig)
		i := headerLen + rng.IntN(len(bad)-headerLen)
		bad[i] ^= byte(1 + rng.IntN(255))
		cases[fmt.Sprintf("byte %d changed", i)] = bad
	}
	for name, state := range cases {
		s.rewriteState(t, id, state)
		meta, got, err := s.read(id)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: read %d bytes (meta %v), err %v; want ErrCorrupt", name, len(got), meta != nil, err)
		}
	}

	// Without the CRC fix, the file store itself refuses a changed file.
	s.rewriteState(t, id, orig)
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 1
	if err := os.WriteFile(s.statePath(id), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.read(id); err == nil {
		t.Error("changed file without CRC fix: no error")
	}

	// A snapshot store with another key.
	s.rewriteState(t, id, orig)
	other, err := NewSnapshotStore(s.inner, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, rc, err := other.Open(id); err != nil {
		t.Fatalf("Open with another key: %v (the header is readable)", err)
	} else {
		_, err := io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), id) {
			t.Errorf("read with another key: err = %v; want ErrCorrupt naming the snapshot", err)
		}
	}
	if _, got, err := s.read(id); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the right key no longer reads the restored file: %v", err)
	}
}

// TestSnapshotNotSealed opens a snapshot written before encryption.
func TestSnapshotNotSealed(t *testing.T) {
	s := newTestStore(t, newKey(t))
	sink, err := s.inner.Create(1, 1, 1, raft.Configuration{}, 1, s.trans)
	if err != nil {
		t.Fatal(err)
	}
	sink.Write([]byte("a plain snapshot from an older version"))
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(sink.ID()); !errors.Is(err, ErrNotSealed) {
		t.Errorf("Open(plain snapshot) = %v, want ErrNotSealed", err)
	}
}

func TestSnapshotCancel(t *testing.T) {
	s := newTestStore(t, newKey(t))
	sink, err := s.Create(1, 7, 2, raft.Configuration{}, 1, s.trans)
	if err != nil {
		t.Fatal(err)
	}
	writeInPieces(t, sink, bytes.Repeat([]byte(marker), 10000))
	if err := sink.Cancel(); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if _, err := sink.Write([]byte("x")); err == nil {
		t.Error("Write after Cancel: no error")
	}
	if err := sink.Close(); err != nil {
		t.Errorf("Close after Cancel: %v", err)
	}
	if err := sink.Cancel(); err != nil {
		t.Errorf("second Cancel: %v", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 0 {
		t.Errorf("List after Cancel = %v, %v; want nothing", list, err)
	}
	if _, _, err := s.Open(sink.ID()); err == nil {
		t.Error("Open of a cancelled snapshot: no error")
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, "snapshots"))
	if err != nil || len(entries) != 0 {
		t.Errorf("snapshot folder after Cancel holds %v (%v)", entries, err)
	}
}

func TestSnapshotCloseTwice(t *testing.T) {
	s := newTestStore(t, newKey(t))
	sink, err := s.Create(1, 7, 2, raft.Configuration{}, 1, s.trans)
	if err != nil {
		t.Fatal(err)
	}
	sink.Write([]byte("data"))
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := sink.Write([]byte("x")); err == nil {
		t.Error("Write after Close: no error")
	}
	if _, got, err := s.read(sink.ID()); err != nil || string(got) != "data" {
		t.Errorf("read = %q, %v", got, err)
	}
}

// failingSink fails writes after limit bytes.
type failingSink struct {
	raft.SnapshotSink
	limit     int
	cancelled bool
}

func (f *failingSink) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		return 0, errors.New("disk full")
	}
	f.limit -= len(p)
	return f.SnapshotSink.Write(p)
}

func (f *failingSink) Cancel() error {
	f.cancelled = true
	return f.SnapshotSink.Cancel()
}

type failingStore struct {
	raft.SnapshotStore
	sinks []*failingSink
	limit int
}

func (f *failingStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	s, err := f.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	fs := &failingSink{SnapshotSink: s, limit: f.limit}
	f.sinks = append(f.sinks, fs)
	return fs, nil
}

// TestSnapshotWriteFailure checks that a failed write is reported and that
// Close then cancels the inner sink instead of publishing a short snapshot.
func TestSnapshotWriteFailure(t *testing.T) {
	inner, err := raft.NewFileSnapshotStore(t.TempDir(), 5, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	for _, limit := range []int{0, headerLen + 10, headerLen + sealedChunk + 10} {
		fstore := &failingStore{SnapshotStore: inner, limit: limit}
		s, err := NewSnapshotStore(fstore, newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		sink, err := s.Create(1, 1, 1, raft.Configuration{}, 1, trans)
		if limit < headerLen {
			if err == nil || !fstore.sinks[0].cancelled {
				t.Errorf("limit %d: Create = %v, want an error and a cancelled inner sink", limit, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		_, werr := sink.Write(make([]byte, 3*chunkSize))
		cerr := sink.Close()
		if werr == nil && cerr == nil {
			t.Errorf("limit %d: neither Write nor Close failed", limit)
		}
		if !fstore.sinks[0].cancelled {
			t.Errorf("limit %d: inner sink not cancelled", limit)
		}
		if list, _ := s.List(); len(list) != 0 {
			t.Errorf("limit %d: a snapshot was published", limit)
		}
	}
}
