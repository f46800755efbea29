package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	raftbench "github.com/hashicorp/raft/bench"
)

// openTest opens a Store in a fresh temporary directory and closes it when
// the test ends.
func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// openTestDB opens a bare badger DB with [Options] in a fresh temporary
// directory and closes it when the test ends.
func openTestDB(t testing.TB, sync bool) *badger.DB {
	t.Helper()
	db, err := badger.Open(Options(t.TempDir(), sync, nil))
	if err != nil {
		t.Fatalf("badger.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reopen closes s and opens the same directory again.
func reopen(t *testing.T, s *Store, dir string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// countCommits makes s count its write-transaction commits.
func countCommits(s *Store) *atomic.Int64 {
	var n atomic.Int64
	s.commit = func(txn *badger.Txn) error {
		n.Add(1)
		return txn.Commit()
	}
	return &n
}

func testLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       index/10 + 1,
		Type:       raft.LogCommand,
		Data:       data,
		Extensions: []byte(fmt.Sprintf("ext-%d", index)),
		AppendedAt: time.Unix(1700000000+int64(index), int64(index)*1000),
	}
}

func testLogs(lo, hi uint64) []*raft.Log {
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, testLog(i, []byte(fmt.Sprintf("data-%d", i))))
	}
	return logs
}

func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func checkBounds(t *testing.T, s *Store, wantFirst, wantLast uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil || first != wantFirst {
		t.Errorf("FirstIndex = %d, %v; want %d, nil", first, err, wantFirst)
	}
	last, err := s.LastIndex()
	if err != nil || last != wantLast {
		t.Errorf("LastIndex = %d, %v; want %d, nil", last, err, wantLast)
	}
}

func checkLog(t *testing.T, s *Store, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		t.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if !equalLog(&got, want) {
		t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
	}
}

func checkMissing(t *testing.T, s *Store, index uint64) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(index, &got); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound", index, err)
	}
}

func TestEmptyLog(t *testing.T) {
	s, _ := openTest(t)
	checkBounds(t, s, 0, 0)
	checkMissing(t, s, 0)
	checkMissing(t, s, 1)
}

func TestStoreAndGetLog(t *testing.T) {
	s, _ := openTest(t)

	single := &raft.Log{
		Index:      1,
		Term:       7,
		Type:       raft.LogConfiguration,
		Data:       []byte("config"),
		Extensions: []byte{0, 1, 2},
		AppendedAt: time.Now(),
	}
	if err := s.StoreLog(single); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	checkLog(t, s, single)
	checkBounds(t, s, 1, 1)

	batch := testLogs(2, 20)
	batch[3].Data = nil // empty fields and zero time round-trip too
	batch[3].Extensions = nil
	batch[3].AppendedAt = time.Time{}
	batch[4].Type = raft.LogNoop
	if err := s.StoreLogs(batch); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
	for _, l := range batch {
		checkLog(t, s, l)
	}
	checkBounds(t, s, 1, 20)
	checkMissing(t, s, 0)
	checkMissing(t, s, 21)

	// The returned slices are copies: changing them changes nothing stored.
	var got raft.Log
	if err := s.GetLog(6, &got); err != nil {
		t.Fatal(err)
	}
	got.Data[0] = 'X'
	checkLog(t, s, batch[3])
	checkLog(t, s, batch[4])

	// Overwrite (raft rewrites entries after truncating a conflicting tail).
	over := testLog(20, []byte("new"))
	over.Term = 99
	if err := s.StoreLog(over); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, over)
	checkBounds(t, s, 1, 20)
}

func TestStoreLogsUnsorted(t *testing.T) {
	s, _ := openTest(t)
	logs := testLogs(1, 10)
	shuffled := []*raft.Log{logs[5], logs[0], logs[9], logs[2], logs[1], logs[3], logs[8], logs[4], logs[7], logs[6]}
	if err := s.StoreLogs(shuffled); err != nil {
		t.Fatal(err)
	}
	if shuffled[0] != logs[5] {
		t.Error("StoreLogs reordered the caller's slice")
	}
	for _, l := range logs {
		checkLog(t, s, l)
	}
	checkBounds(t, s, 1, 10)
}

func TestStoreLogsWithGap(t *testing.T) {
	// raft may store logs after a snapshot restore with a gap in indexes.
	s, dir := openTest(t)
	if err := s.StoreLogs(testLogs(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testLogs(100, 105)); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, 105)
	checkMissing(t, s, 50)
	if err := s.DeleteRange(1, 99); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 100, 105)
	s = reopen(t, s, dir)
	checkBounds(t, s, 100, 105)
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		name          string
		lo, hi        uint64
		first, last   uint64
		present, gone []uint64
	}{
		{"head", 1, 10, 11, 50, []uint64{11, 50}, []uint64{1, 10}},
		{"tail", 41, 50, 1, 40, []uint64{1, 40}, []uint64{41, 50}},
		{"tail beyond last", 30, 1000, 1, 29, []uint64{1, 29}, []uint64{30, 50}},
		{"head from zero", 0, 25, 26, 50, []uint64{26, 50}, []uint64{1, 25}},
		{"middle", 20, 30, 1, 50, []uint64{19, 31}, []uint64{20, 30}},
		{"all", 1, 50, 0, 0, nil, []uint64{1, 50}},
		{"all and more", 0, ^uint64(0), 0, 0, nil, []uint64{1, 50}},
		{"nothing there", 60, 70, 1, 50, []uint64{1, 50}, nil},
		{"empty range", 10, 9, 1, 50, []uint64{1, 50}, nil},
		{"single", 1, 1, 2, 50, []uint64{2, 50}, []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openTest(t)
			if err := s.StoreLogs(testLogs(1, 50)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(tt.lo, tt.hi); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.lo, tt.hi, err)
			}
			check := func(s *Store) {
				t.Helper()
				checkBounds(t, s, tt.first, tt.last)
				for _, i := range tt.present {
					checkLog(t, s, testLog(i, []byte(fmt.Sprintf("data-%d", i))))
				}
				for _, i := range tt.gone {
					checkMissing(t, s, i)
				}
			}
			check(s)
			check(reopen(t, s, dir))
		})
	}
}

func TestStableStore(t *testing.T) {
	s, _ := openTest(t)

	// Missing keys: the error text must be exactly "not found" (raft
	// compares strings), and GetUint64 returns 0.
	val, err := s.Get([]byte("missing"))
	if err == nil || err.Error() != "not found" || val != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, \"not found\"", val, err)
	}
	if !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Get(missing) error %v is not ErrKeyNotFound", err)
	}
	n, err := s.GetUint64([]byte("missing"))
	if err == nil || err.Error() != "not found" || n != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, \"not found\"", n, err)
	}

	if err := s.Set([]byte("LastVoteCand"), []byte("node-a")); err != nil {
		t.Fatal(err)
	}
	if val, err := s.Get([]byte("LastVoteCand")); err != nil || string(val) != "node-a" {
		t.Fatalf("Get = %q, %v; want node-a", val, err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-b")); err != nil {
		t.Fatal(err)
	}
	if val, err := s.Get([]byte("LastVoteCand")); err != nil || string(val) != "node-b" {
		t.Fatalf("Get after overwrite = %q, %v; want node-b", val, err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if val, err := s.Get([]byte("empty")); err != nil || val == nil || len(val) != 0 {
		t.Fatalf("Get(empty) = %#v, %v; want empty non-nil slice", val, err)
	}

	for _, v := range []uint64{0, 1, 42, 1 << 40, ^uint64(0)} {
		if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != v {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, v)
		}
	}
	if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Error("GetUint64 of a non-uint64 value succeeded")
	}

	// Stable keys do not show up in the log and vice versa.
	checkBounds(t, s, 0, 0)
}

// The first index is found from the hint a deletion from the front
// leaves (not by stepping over the tombstones of every dropped entry), on
// reopen too; an entry written below the hint lowers it first; a deletion
// elsewhere leaves it.
func TestFirstIndexHint(t *testing.T) {
	s, dir := openTest(t)
	hint := func(s *Store) uint64 {
		t.Helper()
		var h uint64
		if err := s.db.View(func(txn *badger.Txn) (err error) { h, err = readHint(txn); return err }); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if err := s.StoreLogs(testLogs(1, 100)); err != nil {
		t.Fatal(err)
	}
	if h := hint(s); h != 0 {
		t.Fatalf("hint of a new log: %d, want none", h)
	}
	if err := s.DeleteRange(1, 60); err != nil {
		t.Fatal(err)
	}
	if h := hint(s); h != 61 {
		t.Fatalf("hint after deleting 1-60: %d, want 61", h)
	}
	if err := s.DeleteRange(91, 100); err != nil { // the tail: raft's conflict truncation
		t.Fatal(err)
	}
	if err := s.DeleteRange(70, 75); err != nil { // not the front
		t.Fatal(err)
	}
	if h := hint(s); h != 61 {
		t.Fatalf("hint after deleting the tail and a middle range: %d, want 61", h)
	}
	s = reopen(t, s, dir)
	checkBounds(t, s, 61, 90)
	checkLog(t, s, testLog(61, []byte("data-61")))

	if err := s.DeleteRange(0, 90); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 0, 0)
	if h := hint(s); h != 91 {
		t.Fatalf("hint after deleting everything: %d, want 91", h)
	}
	// A store whose front was dropped without a hint (before the hint
	// existed) gets one when it opens.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(firstHintKey) }); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testLogs(91, 95)); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir)
	checkBounds(t, s, 91, 95)
	if h := hint(s); h != 91 {
		t.Fatalf("hint after opening a store without one: %d, want 91", h)
	}
	if err := s.DeleteRange(91, 95); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testLogs(40, 45)); err != nil { // below the hint
		t.Fatal(err)
	}
	if h := hint(s); h != 40 {
		t.Fatalf("hint after writing 40-45 below it (96 before): %d, want 40", h)
	}
	checkBounds(t, s, 40, 45)
	s = reopen(t, s, dir)
	checkBounds(t, s, 40, 45)
	checkLog(t, s, testLog(40, []byte("data-40")))
}

func TestReopen(t *testing.T) {
	s, dir := openTest(t)
	logs := testLogs(1, 100)
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 30); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 12); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-c")); err != nil {
		t.Fatal(err)
	}

	s = reopen(t, s, dir)
	checkBounds(t, s, 31, 100)
	for _, l := range logs[30:] {
		checkLog(t, s, l)
	}
	checkMissing(t, s, 30)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 12 {
		t.Errorf("GetUint64 after reopen = %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-c" {
		t.Errorf("Get after reopen = %q, %v", v, err)
	}

	// Appending after reopen continues the log.
	if err := s.StoreLogs(testLogs(101, 110)); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 31, 110)
}

func TestCloseTwice(t *testing.T) {
	s, _ := openTest(t)
	if err := s.StoreLog(testLog(1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Use after Close is an error, not a panic.
	var l raft.Log
	for name, err := range map[string]error{
		"GetLog":      s.GetLog(1, &l),
		"StoreLog":    s.StoreLog(testLog(2, nil)),
		"DeleteRange": s.DeleteRange(1, 1),
		"Set":         s.Set([]byte("k"), []byte("v")),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if _, err := s.FirstIndex(); !errors.Is(err, ErrClosed) {
		t.Errorf("FirstIndex after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}

// TestStoreLogsLargerThanTxn stores a batch far larger than one badger
// transaction (values kept in the LSM tree, 4 MiB memtables: two 256 KiB
// entries per transaction) and checks it is complete, in order, and was
// split into many transactions.
func TestStoreLogsLargerThanTxn(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 75 MiB")
	}
	dir := t.TempDir()
	opts := Options(dir, true, nil).
		WithMemTableSize(4 << 20).
		WithValueThreshold(512 << 10).
		WithDetectConflicts(false)
	s, err := open(opts, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commits := countCommits(s)

	const n, size = 300, 256 << 10
	logs := make([]*raft.Log, n)
	for i := range logs {
		data := bytes.Repeat([]byte{byte(i)}, size)
		logs[i] = testLog(uint64(i+1), data)
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
	if c := commits.Load(); c < n/4 {
		t.Errorf("batch used %d transactions, want it split into many", c)
	}
	checkBounds(t, s, 1, n)
	for _, l := range logs {
		checkLog(t, s, l)
	}

	if err := s.DeleteRange(1, n-10); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, n-9, n)
	checkMissing(t, s, n-10)
	checkLog(t, s, logs[n-1])
}

// TestStoreLogsManyEntries uses the production options: small values go to
// the LSM tree and a transaction is limited by its entry count.
func TestStoreLogsManyEntries(t *testing.T) {
	s, dir := openTest(t)
	commits := countCommits(s)
	const n = 40000
	logs := testLogs(1, n)
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
	if c := commits.Load(); c < 2 {
		t.Errorf("batch used %d transactions, want several", c)
	}
	checkBounds(t, s, 1, n)
	for _, i := range []int{0, 1, n / 3, n / 2, n - 2, n - 1} {
		checkLog(t, s, logs[i])
	}

	commits.Store(0)
	if err := s.DeleteRange(1, n-5); err != nil {
		t.Fatal(err)
	}
	if c := commits.Load(); c < 2 {
		t.Errorf("delete used %d transactions, want several", c)
	}
	checkBounds(t, s, n-4, n)
	s = reopen(t, s, dir)
	checkBounds(t, s, n-4, n)
}

var errInjected = errors.New("injected: no space left on device")

// failCommitAfter makes the (k+1)th and later commits of s fail without
// writing anything.
func failCommitAfter(s *Store, k int64) {
	var n atomic.Int64
	s.commit = func(txn *badger.Txn) error {
		if n.Add(1) > k {
			return errInjected
		}
		return txn.Commit()
	}
}

// TestStoreLogsFailureLeavesPrefix checks that a write failure part way
// through a multi-transaction batch returns a wrapped error and leaves a
// prefix of the batch, with consistent first/last indexes.
func TestStoreLogsFailureLeavesPrefix(t *testing.T) {
	s, dir := openTest(t)
	if err := s.StoreLogs(testLogs(1, 10)); err != nil {
		t.Fatal(err)
	}
	failCommitAfter(s, 2)
	const n = 40000
	err := s.StoreLogs(testLogs(11, n))
	if !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "store logs: ") {
		t.Fatalf("StoreLogs = %v, want wrapped injected error", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last <= 10 || last >= n {
		t.Fatalf("LastIndex = %d after 2 of several commits, want a strict prefix", last)
	}
	checkBounds(t, s, 1, last)
	for i := uint64(1); i <= last; i += 97 {
		checkLog(t, s, testLog(i, []byte(fmt.Sprintf("data-%d", i))))
	}
	checkLog(t, s, testLog(last, []byte(fmt.Sprintf("data-%d", last))))
	checkMissing(t, s, last+1)
	checkMissing(t, s, n)

	// Writes fail cleanly while the "disk is full" ...
	if err := s.SetUint64([]byte("CurrentTerm"), 3); !errors.Is(err, errInjected) {
		t.Errorf("SetUint64 = %v, want injected error", err)
	}
	// ... and work again afterwards.
	s.commit = (*badger.Txn).Commit
	if err := s.StoreLogs(testLogs(last+1, n)); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 1, n)
	s = reopen(t, s, dir)
	checkBounds(t, s, 1, n)
}

// TestDeleteTailFailureKeepsLogContiguous checks that an interrupted
// deletion of the tail removes entries from the end, so the remaining log
// has no hole.
func TestDeleteTailFailureKeepsLogContiguous(t *testing.T) {
	s, _ := openTest(t)
	const n = 40000
	if err := s.StoreLogs(testLogs(1, n)); err != nil {
		t.Fatal(err)
	}
	failCommitAfter(s, 1)
	if err := s.DeleteRange(100, n); !errors.Is(err, errInjected) {
		t.Fatalf("DeleteRange = %v, want injected error", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last <= 100 || last >= n {
		t.Fatalf("LastIndex = %d, want a partly deleted tail", last)
	}
	checkBounds(t, s, 1, last)
	for i := uint64(100); i <= last; i++ {
		checkLog(t, s, testLog(i, []byte(fmt.Sprintf("data-%d", i))))
	}
	checkMissing(t, s, last+1)
}

func TestConcurrentAccess(t *testing.T) {
	s, _ := openTest(t)
	if err := s.StoreLogs(testLogs(1, 10)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			var l raft.Log
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.GetLog(5, &l); err != nil {
					t.Errorf("GetLog: %v", err)
					return
				}
				if _, err := s.LastIndex(); err != nil {
					t.Errorf("LastIndex: %v", err)
					return
				}
			}
		})
	}
	for i := uint64(11); i <= 200; i += 10 {
		if err := s.StoreLogs(testLogs(i, i+9)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	checkBounds(t, s, 5, 200)
}

func TestCodec(t *testing.T) {
	for _, l := range []*raft.Log{
		{},
		testLog(1, []byte("x")),
		{Index: ^uint64(0), Term: ^uint64(0), Type: raft.LogBarrier, Data: make([]byte, 1000)},
		{Index: 3, AppendedAt: time.Date(1900, 1, 1, 0, 0, 0, 999999999, time.UTC)},
	} {
		var got raft.Log
		if err := decodeLog(encodeLog(l), &got); err != nil {
			t.Fatalf("decode(encode(%+v)): %v", l, err)
		}
		if !equalLog(&got, l) {
			t.Fatalf("round trip: got %+v, want %+v", got, *l)
		}
	}

	enc := encodeLog(testLog(5, []byte("payload")))
	bad := bytes.Clone(enc)
	bad[0] = 2
	var l raft.Log
	err := decodeLog(bad, &l)
	if err == nil || !strings.Contains(err.Error(), "unsupported log entry format version 2") {
		t.Errorf("unknown version: err = %v", err)
	}
	for i := range len(enc) {
		if err := decodeLog(enc[:i], &l); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if err := decodeLog(append(bytes.Clone(enc), 0), &l); err == nil {
		t.Error("trailing byte: no error")
	}
	if l.Index != 0 {
		t.Error("failed decode modified the destination")
	}
}

func TestGetLogUnknownFormat(t *testing.T) {
	s, _ := openTest(t)
	err := s.DB().Update(func(txn *badger.Txn) error {
		return txn.Set(logKey(7), []byte{9, 1, 2, 3})
	})
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	err = s.GetLog(7, &l)
	if err == nil || !strings.Contains(err.Error(), "unsupported log entry format version 9") {
		t.Fatalf("GetLog = %v, want unsupported version error", err)
	}
}

func TestOptionsStaySmall(t *testing.T) {
	dir := t.TempDir()
	for i, sync := range []bool{false, true, false} {
		o := Options(dir, sync, nil)
		if i == 2 { // a station's state store
			o = ForState(o)
		}
		if o.MemTableSize > 16<<20 {
			t.Errorf("MemTableSize = %d, want <= 16 MiB", o.MemTableSize)
		}
		if o.BlockCacheSize > 16<<20 {
			t.Errorf("BlockCacheSize = %d, want <= 16 MiB", o.BlockCacheSize)
		}
		if o.IndexCacheSize > 16<<20 {
			t.Errorf("IndexCacheSize = %d, want <= 16 MiB", o.IndexCacheSize)
		}
		if o.ValueLogFileSize > 64<<20 {
			t.Errorf("ValueLogFileSize = %d, want <= 64 MiB", o.ValueLogFileSize)
		}
		if o.NumMemtables > 3 {
			t.Errorf("NumMemtables = %d, want <= 3", o.NumMemtables)
		}
		if o.SyncWrites != sync {
			t.Errorf("SyncWrites = %v, want %v", o.SyncWrites, sync)
		}
		if o.Dir != dir || o.ValueDir != dir {
			t.Errorf("Dir, ValueDir = %q, %q; want %q", o.Dir, o.ValueDir, dir)
		}
	}
	// badger accepts the combination (e.g. ValueThreshold vs. batch size).
	db, err := badger.Open(Options(dir, true, nil))
	if err != nil {
		t.Fatalf("badger.Open(Options): %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// recordHandler records the levels and messages of log records.
type recordHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Level.String()+" "+r.Message)
	return nil
}

func TestBadgerLogger(t *testing.T) {
	h := &recordHandler{}
	l := newBadgerLogger(slog.New(h))
	l.Errorf("e %d\n", 1)
	l.Warningf("w %s", "x")
	l.Infof("i")
	l.Debugf("d")
	// badger's once-a-minute cache monitor (db.go monitorCache), verbatim
	l.Warningf("%s might be too small. Metrics: %s\n", "Block cache", "hit: 3 miss: 19812")
	l.Warningf("Cache life expectancy (in seconds): %+v\n", "histogram")
	want := []string{"ERROR e 1", "WARN w x", "DEBUG Block cache might be too small. Metrics: hit: 3 miss: 19812", "DEBUG Cache life expectancy (in seconds): histogram"}
	if fmt.Sprint(h.recs) != fmt.Sprint(want) {
		t.Errorf("records = %q, want %q", h.recs, want)
	}
	newBadgerLogger(nil).Warningf("nil logger must not panic")
}

func TestGCStop(t *testing.T) {
	db := openTestDB(t, false)
	for i := range 100 {
		err := db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte("k"), bytes.Repeat([]byte{byte(i)}, 100<<10))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	g := StartGC(db, time.Millisecond, nil)
	time.Sleep(20 * time.Millisecond)
	g.Stop()
	g.Stop()

	g = StartGC(db, 0, nil) // default interval
	g.Stop()
}

func BenchmarkStoreLogs(b *testing.B) {
	s, _ := openTest(b)
	raftbench.StoreLogs(b, s)
}

func BenchmarkGetLog(b *testing.B) {
	s, _ := openTest(b)
	raftbench.GetLog(b, s)
}

func BenchmarkDeleteRange(b *testing.B) {
	s, _ := openTest(b)
	raftbench.DeleteRange(b, s)
}

func BenchmarkSetUint64(b *testing.B) {
	s, _ := openTest(b)
	raftbench.SetUint64(b, s)
}
