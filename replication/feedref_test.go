package replication

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"

	"github.com/stationsync/stationsync/records"
)

// An event's feed change refers to the event's own key instead of keeping
// a second copy of it; Feed reads the event in its place, so the page is
// the same as before. A feed change whose record is gone is an error that
// names it, not a change without data.
func TestFeedRefersToStoredEvents(t *testing.T) {
	db, f := newTestFSM(t)
	n := &Node{stateDB: db, fsm: f}
	entry := func(index uint64, ops ...records.Op) *raft.Log { return testEntry(t, index, ops...) }
	it := records.Item{Code: "XC-L-0001", Name: "企业开办", Type: records.ItemType{Code: "20"}, Origin: records.OriginLocal}
	f.ApplyBatch([]*raft.Log{entry(1, records.Op{Kind: records.OpPutItem, Item: &it}, newCase("c-1"))})
	note := strings.Repeat("材料", 300) // ~1.8 KiB
	data, _ := json.Marshal(map[string]string{"note": note})
	ev := records.Event{ID: "ev-1", Type: records.EventAccepted, Actor: "clerk", Data: data}
	records.PrepareEvent(&ev, "c-1", "pc-1", records.NewClock(nil).Now())
	out := f.ApplyBatch([]*raft.Log{entry(2, records.Op{Kind: records.OpAppendEvent, Event: &ev})})
	if r := out[0].([]Result); r[0].Status != "applied" {
		t.Fatalf("event: %+v", r[0])
	}
	seq := f.seq.Load()
	var raw []byte
	if err := db.View(func(txn *badger.Txn) (err error) {
		raw, err = getBytes(txn, feedKey(seq))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(raw) > 300 || bytes.Contains(raw, []byte(note)) {
		t.Fatalf("the event's feed change keeps a copy of it (%d bytes): %.200s", len(raw), raw)
	}
	page, err := n.Feed(seq-1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Changes) != 1 || page.Changes[0].Kind != "event" || page.Changes[0].Key != "c-1" || page.Changes[0].Ref != "" {
		t.Fatalf("feed page: %+v", page.Changes)
	}
	var got records.Event
	if err := json.Unmarshal(page.Changes[0].Data, &got); err != nil || got.ID != "ev-1" || !bytes.Contains(got.Data, []byte(note)) {
		t.Fatalf("event read through the feed: %+v (%v)", got, err)
	}
	// The record it refers to is gone (a damaged store): Feed says so.
	var ref FeedChange
	if err := json.Unmarshal(raw, &ref); err != nil || ref.Ref == "" {
		t.Fatalf("stored feed change: %s (%v)", raw, err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(ref.Ref)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Feed(seq-1, 10); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("feed change %d", seq)) {
		t.Fatalf("feed with the event gone: %v", err)
	}
}
