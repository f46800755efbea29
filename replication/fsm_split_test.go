package replication

import (
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
	if _, err := f.applyBatchTxn([]*raft.Log{l}); err == nil {
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

// newTestFSM opens an FSM on a fresh state store (closed when the test
// ends).
func newTestFSM(t *testing.T) (*badger.DB, *fsm) {
	t.Helper()
	db, err := badger.Open(logstore.Options(t.TempDir(), false, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := newFSM(db, testLogger(t))
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
