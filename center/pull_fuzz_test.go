package center

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stationsync/stationsync/records"
	"github.com/stationsync/stationsync/replication"
)

// fuzzMemState is a records.State in a map, for applying ops in tests.
type fuzzMemState map[string][]byte

func (m fuzzMemState) Get(k string) ([]byte, error) { return m[k], nil }
func (m fuzzMemState) Set(k string, v []byte) error {
	m[k] = slices.Clone(v)
	return nil
}

func (m fuzzMemState) Scan(prefix, after string, fn func(string, []byte) (bool, error)) error {
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) || (after != "" && k <= after) {
			continue
		}
		if more, err := fn(k, m[k]); err != nil || !more {
			return err
		}
	}
	return nil
}

// FuzzFeedPage feeds arbitrary feed answers (the JSON body of the frame a
// station sends on a feed stream, decoded as replication.CallFeed does)
// to the center's page check (checkPage) and consolidates the accepted
// pages into a store that already holds a case of the station. Never a
// panic; a page that is refused gets an error saying what is wrong; an
// accepted page holds the bounds (at most the changes asked for, seqs
// after the cursor and increasing, a head not before them) and round
// trips through JSON; and consolidating it is either done or refused with
// a domain error that leaves the store untouched — never a failure that
// would stop the center's state machine.
func FuzzFeedPage(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"index":9,"kind":"case","key":"c-2","data":{"id":"c-2","item_code":"XC-L-0001","events":[{"id":"e1","type":"received","actor":"a","hlc":"0000000000001-0000"}]}},{"seq":5,"index":10,"kind":"event","key":"c-2","data":{"id":"e2","type":"accepted","actor":"a","hlc":"0000000000002-0000"}}],"next":5,"head":7}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"item","key":"XC-L-0001","data":{"code":"XC-L-0001","name":"n","type":{"code":"20"},"origin":"local","version":2}}],"next":4,"head":4}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"event","key":"c-1","data":{"id":"e9","type":"accepted","actor":"a"}}],"next":4,"head":4}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[],"next":3,"head":3}}`,
		`{"v":1,"page":{"cluster_id":"","changes":[],"next":0,"head":0}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"event","key":"nope","data":{"id":"e"}}],"head":4}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"telemetry","key":"x","data":{}}],"head":4}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"workorder_event","key":"w-1","data":{"id":"we"}}],"head":4}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"case","key":"c","data":[1]}],"head":4}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"case","key":"c","data":{"id":"a/b"}}],"head":4}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":5,"kind":"item","key":"a","data":{}},{"seq":5,"kind":"item","key":"b","data":{}}],"head":5}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":2,"kind":"item","key":"a","data":{}}],"head":5}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":9,"kind":"item","key":"a","data":{}}],"head":5}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"item","key":"","data":{}}],"head":5}}`,
		`{"v":1,"page":{"cluster_id":"k1","changes":[{"seq":4,"kind":"item","key":"a"}],"head":5}}`,
		`{"v":1,"page":{"changes":[{"seq":4,"kind":"item","key":"a","data":{}}],"head":5}}`,
		`{"v":1,"page":{"cluster_id":"k2","changes":[{"seq":1,"kind":"case","key":"c-1","data":{"id":"c-1"}}],"head":1}}`,
		`{"v":1}`,
		`{"v":1,"page":null}`,
		`{"v":1,"page":{"changes":{}}}`,
		`{"v":1,"error":"not the center","code":"refused"}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	// The store: station XC-YCH-01 read up to seq 3 of cluster k1, with
	// case c-1 known.
	base := fuzzMemState{}
	setup := records.PulledPage{Station: fuzzStation, ClusterID: "k1", From: 0, Head: 3, Changes: []records.PulledChange{
		{Seq: 1, Change: records.Change{Kind: "case", Key: "c-1", Data: json.RawMessage(`{"id":"c-1","item_code":"XC-L-0001","events":[{"id":"r1","type":"received","actor":"a","hlc":"0000000000001-0000"}]}`)}},
		{Seq: 2, Change: records.Change{Kind: "item", Key: "XC-L-0001", Data: json.RawMessage(`{"code":"XC-L-0001"}`)}},
		{Seq: 3, Change: records.Change{Kind: "event", Key: "c-1", Data: json.RawMessage(`{"id":"a1","type":"accepted","actor":"a","hlc":"0000000000002-0000"}`)}},
	}}
	if _, _, err := records.Apply(base, records.Op{Kind: records.OpConsolidate, Pull: &setup}); err != nil {
		f.Fatal(err)
	}
	const since = 3
	f.Fuzz(func(t *testing.T, body []byte) {
		var resp replication.FeedResponse
		if err := json.Unmarshal(body, &resp); err != nil || resp.Error != "" {
			return // CallFeed's error
		}
		const limit = 4
		page := resp.Page
		if err := checkPage(page, since, limit); err != nil {
			if msg := err.Error(); !strings.Contains(msg, "page") && !strings.Contains(msg, "change") && !strings.Contains(msg, "head") {
				t.Fatalf("refusal %q does not say what is wrong", msg)
			}
			return
		}
		if len(page.Changes) > limit || (len(page.Changes) > 0 && page.ClusterID == "") {
			t.Fatalf("accepted page of %d changes, cluster %q", len(page.Changes), page.ClusterID)
		}
		last := uint64(since)
		for _, ch := range page.Changes {
			if ch.Seq <= last || ch.Kind == "" || ch.Key == "" || len(ch.Data) == 0 {
				t.Fatalf("accepted change %+v after seq %d", ch, last)
			}
			last = ch.Seq
		}
		if page.Head < last {
			t.Fatalf("accepted head %d before seq %d", page.Head, last)
		}
		b, err := json.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		var back replication.FeedPage
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if b2, _ := json.Marshal(back); !bytes.Equal(b, b2) {
			t.Fatalf("page round trip:\n %s\n %s", b, b2)
		}
		if page.ClusterID == "" {
			return // pullOnce stops here: the station has no cluster yet
		}
		// Consolidate it as pullOnce does (one chunk).
		from := uint64(since)
		if page.ClusterID != "k1" {
			from = 0
		}
		changes := make([]records.PulledChange, len(page.Changes))
		for i, fc := range page.Changes {
			changes[i] = records.PulledChange{Seq: fc.Seq, Change: fc.Change}
		}
		st := maps.Clone(base)
		pg := records.PulledPage{Station: fuzzStation, ClusterID: page.ClusterID, From: from, Changes: changes, Head: page.Head}
		_, _, err = records.Apply(st, records.Op{Kind: records.OpConsolidate, Pull: &pg})
		if err == nil {
			return
		}
		de, ok := records.AsError(err)
		if !ok {
			t.Fatalf("consolidating an accepted page failed (the center's state machine would stop): %v", err)
		}
		if de.Message == "" || !maps.EqualFunc(st, base, bytes.Equal) {
			t.Fatalf("refused page (%v) changed the store", err)
		}
	})
}
