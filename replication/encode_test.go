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
