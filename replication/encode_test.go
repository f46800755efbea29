package replication

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/stationsync/stationsync/records"
)

// The hand-built encodings equal what encoding/json writes (change data
// always comes from json.Marshal).
func TestFeedChangeEncodingMatchesJSON(t *testing.T) {
	note, _ := json.Marshal(map[string]any{"id": "e", "data": map[string]string{"note": "<&>\u2028 引号\""}})
	for _, ch := range []records.Change{
		{Kind: "event", Key: "c-1", Data: note},
		{Kind: "case", Key: `we"ird<key>`, Data: json.RawMessage(`{}`)},
		{Kind: "item", Key: "x"},
	} {
		got, err := encodeFeedChange(7, 42, ch)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(FeedChange{Seq: 7, Index: 42, Change: ch})
		if string(got) != string(want) {
			t.Errorf("encodeFeedChange\n got %s\nwant %s", got, want)
		}
	}
}

// encodeFeedChange writes what json.Marshal writes for any kind, key and
// reference (escaped ones through its slow path) and any compact data.
func FuzzFeedChangeEncodingMatchesJSON(f *testing.F) {
	f.Add(uint64(7), uint64(42), "event", "c-1", `{"id":"e"}`, "")
	f.Add(uint64(0), uint64(1), "event", "c-1", `{"id":"e"}`, "c/c-1\x00e")
	f.Add(uint64(1<<63), uint64(3), "case", `we"ird<key>`, ``, "s/\u2028")
	f.Add(uint64(9), uint64(9), "item", "\xff", `[1,"<"]`, "")
	f.Fuzz(func(t *testing.T, seq, index uint64, kind, key, data, stored string) {
		ch := records.Change{Kind: kind, Key: key, Stored: stored}
		if data != "" {
			var v any
			if json.Unmarshal([]byte(data), &v) != nil {
				return
			}
			ch.Data, _ = json.Marshal(v) // compact, as records writes data
		}
		got, err := encodeFeedChange(seq, index, ch)
		if err != nil {
			t.Fatal(err)
		}
		fc := FeedChange{Seq: seq, Index: index, Change: ch, Ref: stored}
		if stored != "" {
			fc.Data = nil
		}
		want, err := json.Marshal(fc)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("encodeFeedChange\n got %s\nwant %s", got, want)
		}
	})
}

func TestOpsEnvelopeRoundTrip(t *testing.T) {
	a := []records.Op{{Kind: records.OpAppendEvent, Event: &records.Event{ID: "e1", CaseID: "c", Type: "accepted", Actor: "x", Data: json.RawMessage(`{"n":1}`)}}}
	b := []records.Op{{Kind: records.OpPutItem, Item: &records.Item{Code: "I"}}, {Kind: records.OpCenterCursor, Seq: 3}}
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	for _, init := range []*initCommand{nil, {ClusterID: "abc"}} {
		data, err := encodeOpsEnvelope(init, joinOps([][]byte{ra, rb}))
		if err != nil {
			t.Fatal(err)
		}
		env, err := decodeEnvelope(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !reflect.DeepEqual(env.Ops, append(append([]records.Op{}, a...), b...)) || !reflect.DeepEqual(env.Init, init) {
			t.Fatalf("round trip: %+v", env)
		}
	}
}
