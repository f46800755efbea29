package replication

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication/logstore"
)

// An entry whose ops together write more than one badger transaction holds
// (group commit gathers 256 small events, each rewriting its whole case)
// is applied in groups of ops, not a crash; every op lands once, the feed
// stays gapless, and applying the entry again (a restart before the last
// group) changes nothing.
func TestEntryTooBigForOneTransactionIsSplit(t *testing.T) {
	_, f := newTestFSM(t)
	entry := func(index uint64, ops []records.Op) *raft.Log { return testEntry(t, index, ops...) }
	it := records.Item{Code: "XC-L-0001", Name: "企业开办", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}
	setup := []records.Op{{Kind: records.OpPutItem, Item: &it}}
	const cases = 120
	for i := range cases {
		setup = append(setup, newCase(fmt.Sprintf("c-%d", i)))
	}
	f.ApplyBatch([]*raft.Log{entry(1, setup)})
	data, _ := json.Marshal(map[string]string{"note": strings.Repeat("材料", 2000)}) // ~12 KiB
	var big []records.Op
	for i := range cases {
		ev := records.Event{ID: fmt.Sprintf("ev-%d", i), Type: records.EventAccepted, Actor: "clerk", Data: data}
		records.PrepareEvent(&ev, fmt.Sprintf("c-%d", i), "pc-1", records.NewClock(nil).Now())
		big = append(big, records.Op{Kind: records.OpAppendEvent, Event: &ev})
	}
	l := entry(2, big)
	if _, _, err := f.applyBatchTxn([]*raft.Log{l}, 0, nil); err == nil {
		t.Fatal("the test entry fits one transaction: make it bigger")
	}
	seqBefore := f.seq.Load()
	out := f.ApplyBatch([]*raft.Log{l})
	results := out[0].([]Result)
	for i, r := range results {
		if r.Status != "applied" {
			t.Fatalf("op %d: %+v", i, r)
		}
	}
	if f.applied.Load() != 2 || f.seq.Load() != seqBefore+cases {
		t.Fatalf("applied %d seq %d, want 2 and %d", f.applied.Load(), f.seq.Load(), seqBefore+cases)
	}
	// Applying the groups again (as after a crash before the last one):
	// every op is a repeat, the feed does not grow.
	f.applied.Store(1)
	out = f.ApplyBatch([]*raft.Log{l})
	for i, r := range out[0].([]Result) {
		if r.Status != "repeat" {
			t.Fatalf("op %d applied again: %+v", i, r)
		}
	}
	if f.seq.Load() != seqBefore+cases {
		t.Fatalf("feed grew on the repeat: %d", f.seq.Load())
	}
}

// A batch of entries that together hold more than one transaction (a
// follower catching up gets up to MaxAppendEntries entries of 16 events
// each) goes in transactions of several whole entries, none of which is
// too big: no entry is applied twice, the results and the feed are those
// of one entry at a time.
func TestBatchIsCutIntoTransactionsThatFit(t *testing.T) {
	_, f := newTestFSM(t)
	it := records.Item{Code: "XC-L-0001", Name: "企业开办", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}
	const entries, perEntry = 40, 16
	setup := []records.Op{{Kind: records.OpPutItem, Item: &it}}
	for i := range entries {
		setup = append(setup, newCase(fmt.Sprintf("c-%d", i)))
	}
	f.ApplyBatch([]*raft.Log{testEntry(t, 1, setup...)})
	data, _ := json.Marshal(map[string]string{"note": strings.Repeat("x", 1000)})
	clock := records.NewClock(nil)
	var logs []*raft.Log
	for i := range entries {
		var ops []records.Op
		for k := range perEntry {
			typ := records.EventAccepted
			if k > 0 {
				typ = []string{records.EventResumed, records.EventPaused}[k%2]
			}
			ev := records.Event{ID: fmt.Sprintf("ev-%d-%d", i, k), Type: typ, Actor: "clerk", Data: data}
			records.PrepareEvent(&ev, fmt.Sprintf("c-%d", i), "pc-1", clock.Now())
			ops = append(ops, records.Op{Kind: records.OpAppendEvent, Event: &ev})
		}
		logs = append(logs, testEntry(t, uint64(2+i), ops...))
	}
	_, n, err := f.applyBatchTxn(logs, 0, nil)
	if err != nil || n < 2 || n >= entries {
		t.Fatalf("first transaction: %d of %d entries, error %v; want several entries and a cut before the end", n, entries, err)
	}
	// Start again on a fresh state machine and apply the whole batch.
	db, f := newTestFSM(t)
	f.ApplyBatch([]*raft.Log{testEntry(t, 1, setup...)})
	seqBefore := f.seq.Load()
	out := f.ApplyBatch(logs)
	if len(out) != entries {
		t.Fatalf("%d results for %d entries", len(out), entries)
	}
	for i, r := range out {
		for k, res := range r.([]Result) {
			if res.Status != "applied" || res.Index != uint64(2+i) {
				t.Fatalf("entry %d op %d: %+v", i, k, res)
			}
		}
	}
	if f.applied.Load() != uint64(1+entries) || f.seq.Load() != seqBefore+entries*perEntry || f.entriesApplied.Load() != 1+entries {
		t.Fatalf("applied %d, seq %d, entries applied %d; want %d, %d, %d", f.applied.Load(), f.seq.Load(), f.entriesApplied.Load(), 1+entries, seqBefore+entries*perEntry, 1+entries)
	}
	var seqs []uint64
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixFeed})
		defer it.Close()
		for it.Seek(feedKey(seqBefore + 1)); it.ValidForPrefix(prefixFeed); it.Next() {
			seqs = append(seqs, binary.BigEndian.Uint64(it.Item().Key()[len(prefixFeed):]))
		}
		return nil
	})
	if err != nil || len(seqs) != entries*perEntry {
		t.Fatalf("feed after the batch: %d changes, %v", len(seqs), err)
	}
	for i, seq := range seqs {
		if seq != seqBefore+uint64(i)+1 {
			t.Fatalf("feed change %d has seq %d", i, seq)
		}
	}
}

// newTestFSM opens an FSM on a fresh state store (closed when the test
// ends), without conflict detection, as a node opens it: commits are
// pipelined (fsm.commit).
func newTestFSM(t *testing.T) (*badger.DB, *fsm) {
	t.Helper()
	return newTestFSMDetecting(t, false)
}

// newTestFSMDetecting is newTestFSM with badger's conflict detection on
// or off (on: every commit is synchronous).
func newTestFSMDetecting(t *testing.T, detectConflicts bool) (*badger.DB, *fsm) {
	t.Helper()
	db, err := badger.Open(logstore.Options(t.TempDir(), false, testLogger(t)).WithDetectConflicts(detectConflicts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := newFSM(db, testLogger(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	return db, f
}

// testEntry is a raft command entry of ops at index.
func testEntry(t *testing.T, index uint64, ops ...records.Op) *raft.Log {
	t.Helper()
	data, err := encodeEnvelope(envelope{Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}
