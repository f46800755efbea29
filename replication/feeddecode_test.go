package replication

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/stationsync/stationsync/records"
)

// checkFeedDecode checks that decodeFeedResponse decodes b as
// json.Unmarshal does, and says whether it read it without reflection.
func checkFeedDecode(t *testing.T, name string, b []byte) bool {
	t.Helper()
	var want FeedResponse
	werr := json.Unmarshal(b, &want)
	got, gerr := decodeFeedResponse(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: error %v, json.Unmarshal's %v\n%s", name, gerr, werr, b)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\ngot  %#v\nwant %#v\n%s", name, got, want, b)
	}
	_, fast := parseFeedPage(b)
	return fast
}

func samplePageResponse() FeedResponse {
	ch := func(seq uint64, kind, data string) FeedChange {
		return FeedChange{Seq: seq, Index: seq + 10, Change: records.Change{Kind: kind, Key: "c-1", Data: json.RawMessage(data)}}
	}
	return FeedResponse{V: rpcVersion, Page: &FeedPage{ClusterID: "cl-1", Next: 3, Head: 9, Changes: []FeedChange{
		ch(1, "case", `{"id":"c-1","applicant":{"name":"苏州某某科技有限公司"},"events":[{"data":{"a":"}]"}}]}`),
		ch(2, "event", `null`),
		ch(3, "x", `-12.5e1`),
	}}}
}

// A page as a station writes it is read without reflection; answers
// without a page, or with anything json.Marshal would not write, are left
// to json.Unmarshal, and both read the same.
func TestFeedPageDecodesAsJSONDoes(t *testing.T) {
	enc := func(r FeedResponse) []byte {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	page := samplePageResponse()
	empty := FeedResponse{V: rpcVersion, Page: &FeedPage{Next: 5, Head: 5}}
	none := FeedResponse{V: rpcVersion, Page: &FeedPage{Changes: []FeedChange{}}}
	for _, tc := range []struct {
		name string
		b    []byte
		fast bool
	}{
		{"page", enc(page), true},
		{"page without changes", enc(empty), true},
		{"page with no changes", enc(none), true},
		{"digest", enc(FeedResponse{V: rpcVersion, Digest: &StationDigest{Head: 3}}), false},
		{"error", enc(FeedResponse{V: rpcVersion, Code: "refused", Error: "no"}), false},
		{"white space", []byte(`{"v":1, "page":{"cluster_id":"c","changes":null,"next":0,"head":0}}`), false},
		{"escaped cluster id", []byte(`{"v":1,"page":{"cluster_id":"c\u0041","changes":null,"next":0,"head":0}}`), false},
		{"trailing", []byte(`{"v":1,"page":{"cluster_id":"c","changes":null,"next":0,"head":0}}x`), false},
		{"bad data", []byte(`{"v":1,"page":{"cluster_id":"c","changes":[{"seq":1,"index":1,"kind":"k","key":"k","data":{"a"}}],"next":0,"head":0}}`), false},
	} {
		if fast := checkFeedDecode(t, tc.name, tc.b); fast != tc.fast {
			t.Errorf("%s: read without reflection: %v, want %v", tc.name, fast, tc.fast)
		}
	}
}

func FuzzFeedPageDecode(f *testing.F) {
	b, _ := json.Marshal(samplePageResponse())
	f.Add(b)
	f.Add([]byte(`{"v":1,"page":{"cluster_id":"c","changes":[{"seq":1,"index":1,"kind":"k","key":"k","data":1,"ref":"r"}],"next":0,"head":0}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFeedDecode(t, "fuzzed", b)
	})
}

// decodeEnvelope reads an entry as json.Unmarshal does, with or without
// records.ParseOpsJSON.
func FuzzDecodeEnvelope(f *testing.F) {
	ev := records.Event{ID: "e", CaseID: "c", Type: "accepted", Actor: "a", HLC: "h", Data: json.RawMessage(`{"a":"}"}`)}
	ops, _ := records.EncodeOps([]records.Op{{Kind: records.OpAppendEvent, Event: &ev}, {Kind: records.OpConsolidate, Pull: &records.PulledPage{Station: "s"}}})
	b, _ := encodeOpsEnvelope(nil, ops)
	f.Add(b)
	b, _ = encodeOpsEnvelope(&initCommand{ClusterID: "x"}, ops)
	f.Add(b)
	f.Add([]byte(`{"v":1,"ops":[]}`))
	f.Add([]byte(`{"v":1,"ops":[{"kind":"put_item","item":{"code":"X"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gerr := decodeEnvelope(b)
		var want envelope
		werr := json.Unmarshal(b, &want)
		if werr == nil && (want.V < envelopeMinVersion || want.V > envelopeMaxVersion) {
			werr = ErrUnknownVersion
		}
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("error %v, json.Unmarshal's %v\n%s", gerr, werr, b)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %#v\nwant %#v\n%s", got, want, b)
		}
	})
}
