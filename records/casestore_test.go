package records

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// An event is appended as one key and a rewritten head: the events already
// stored are not written again.
func TestAppendWritesOneEventKey(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c", "P1")
	for _, typ := range []string{EventAccepted, EventPaused} {
		if _, err := postEvent(st, clock, "c", typ); err != nil {
			t.Fatal(err)
		}
	}
	rec := recording{memState: st, set: map[string]bool{}}
	ev := Event{Type: EventResumed, Actor: "clerk"}
	PrepareEvent(&ev, "c", "pc-1", clock.Now())
	if _, _, err := Apply(rec, Op{Kind: OpAppendEvent, Event: &ev}); err != nil {
		t.Fatal(err)
	}
	var evKeys []string
	for k := range rec.set {
		if strings.HasPrefix(k, eventsPrefix("c")) {
			evKeys = append(evKeys, k)
		}
	}
	if len(evKeys) != 1 || !strings.HasSuffix(evKeys[0], ev.ID) || !rec.set[caseKey("c")] {
		t.Fatalf("keys written: %v", rec.set)
	}
	c, err := GetCase(st, "c")
	if err != nil || len(c.Events) != 4 || c.State != EventResumed {
		t.Fatalf("case: %v %+v", err, c)
	}
}

type recording struct {
	memState
	set map[string]bool
}

func (r recording) Set(k string, v []byte) error { r.set[k] = true; return r.memState.Set(k, v) }

// A case stored before events had their own keys (all events in the
// record) is read as it is and moved to the new layout at its next write.
func TestLegacyCaseRecordIsReadAndMigrated(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c", "P1")
	if _, err := postEvent(st, clock, "c", EventAccepted); err != nil {
		t.Fatal(err)
	}
	want, _ := GetCase(st, "c")
	// Rewrite it the old way: one record, events inside, no event keys.
	for k := range st {
		if strings.HasPrefix(k, eventsPrefix("c")) {
			delete(st, k)
		}
	}
	old := want
	for i := range old.Events {
		old.Events[i].Conflict = false
	}
	b, _ := json.Marshal(old)
	st[caseKey("c")] = b
	got, err := GetCase(st, "c")
	if err != nil || got.State != EventAccepted || len(got.Events) != 2 {
		t.Fatalf("legacy read: %v %+v", err, got)
	}
	page, err := ListCases(st, CaseQuery{})
	if err != nil || len(page.Cases) != 1 || len(page.Cases[0].Events) != 2 {
		t.Fatalf("legacy list: %v %+v", err, page)
	}
	// "accepted" again is refused: the fold of the legacy events counts.
	if _, err := postEvent(st, clock, "c", EventAccepted); err == nil {
		t.Fatal("a second acceptance was allowed after reading a legacy record")
	}
	got, err = postEvent(st, clock, "c", EventPaused)
	if err != nil || got.State != EventPaused || len(got.Events) != 3 {
		t.Fatalf("after a write: %v %+v", err, got)
	}
	var h caseHead
	json.Unmarshal(st[caseKey("c")], &h)
	n := 0
	for k := range st {
		if strings.HasPrefix(k, eventsPrefix("c")) {
			n++
		}
	}
	if len(h.Events) != 0 || n != 3 || h.NEvents != 3 {
		t.Fatalf("not migrated: %d events in the head, %d event keys, count %d", len(h.Events), n, h.NEvents)
	}
}

// The center may merge a case's events out of order (a re-read after an
// event was lost): the head's state is folded again from all events.
func TestCenterMergeOutOfOrderRefolds(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c", "P1")
	for _, typ := range []string{EventAccepted, EventPaused, EventResumed, EventCompleted} {
		if _, err := postEvent(st, clock, "c", typ); err != nil {
			t.Fatal(err)
		}
	}
	full, _ := GetCase(st, "c")
	// Without and with a head cache (the state machine's), whose heads
	// carry the ids of the stored events.
	for _, center := range []State{memState{}, cachingState{memState: memState{}, heads: NewHeadCache(0)}} {
		centerMergeOutOfOrder(t, center, full)
	}
}

func centerMergeOutOfOrder(t *testing.T, center State, full Case) {
	t.Helper()
	ss := stationState(center, "XC-IP-01")
	created := full
	created.Events = full.Events[:1]
	b, _ := json.Marshal(created)
	if err := mergeChange(ss, Change{Kind: "case", Key: "c", Data: b}); err != nil {
		t.Fatal(err)
	}
	// accepted, then completed, then the lost paused/resumed arrive late.
	for _, i := range []int{1, 4, 2, 3, 2} {
		eb, _ := json.Marshal(full.Events[i])
		if err := mergeChange(ss, Change{Kind: "event", Key: "c", Data: eb}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := GetCase(StationReader(center, "XC-IP-01"), "c")
	if err != nil || got.State != EventCompleted || len(got.Events) != 5 {
		t.Fatalf("center copy: %v state %s, %d events", err, got.State, len(got.Events))
	}
	for _, ev := range got.Events {
		if ev.Conflict {
			t.Fatalf("event %s %s marked a conflict", ev.ID, ev.Type)
		}
	}
	h, _ := loadHead(StationReader(center, "XC-IP-01"), "c") // not through the cache: it would take the head
	if h.State != EventCompleted || h.NEvents != 5 {
		t.Fatalf("head: state %s, count %d", h.State, h.NEvents)
	}
	// The whole case again (a re-read) adds nothing.
	fb, _ := json.Marshal(full)
	if err := mergeChange(ss, Change{Kind: "case", Key: "c", Data: fb}); err != nil {
		t.Fatal(err)
	}
	if again, _ := GetCase(StationReader(center, "XC-IP-01"), "c"); len(again.Events) != 5 {
		t.Fatalf("re-read doubled events: %d", len(again.Events))
	}
	// A rebuilt station enters the same events again (same ids) at other
	// times: still one event per id.
	later := full
	later.Events = append([]Event(nil), full.Events...)
	for i := range later.Events {
		later.Events[i].HLC = After(later.Events[i].HLC, HLC("0009999999999999.000000"))
	}
	lb, _ := json.Marshal(later)
	if err := mergeChange(ss, Change{Kind: "case", Key: "c", Data: lb}); err != nil {
		t.Fatal(err)
	}
	eb, _ := json.Marshal(later.Events[3])
	if err := mergeChange(ss, Change{Kind: "event", Key: "c", Data: eb}); err != nil {
		t.Fatal(err)
	}
	if again, _ := GetCase(StationReader(center, "XC-IP-01"), "c"); len(again.Events) != 5 {
		t.Fatalf("the same ids at other times doubled events: %d", len(again.Events))
	}
}

// Listing pages by case id never mixes one case's events into another.
func TestListCasesPagesWithEvents(t *testing.T) {
	st, clock := testStation(t)
	for i := range 5 {
		id := fmt.Sprintf("c%d", i)
		newTestCase(t, st, clock, id, "P1")
		if i%2 == 0 {
			if _, err := postEvent(st, clock, id, EventAccepted); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ids []string
	after := ""
	for {
		page, err := ListCases(st, CaseQuery{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Cases {
			want := 1 + (1 - len(ids)%2)
			if len(c.Events) != want || c.Events[0].CaseID != c.ID {
				t.Fatalf("case %s: %d events, want %d", c.ID, len(c.Events), want)
			}
			ids = append(ids, c.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if strings.Join(ids, ",") != "c0,c1,c2,c3,c4" {
		t.Fatalf("pages gave %v", ids)
	}
	// A case id that names an event key is no case.
	if _, err := GetCase(st, "c0"+eventSep+"x"); err == nil {
		t.Fatal("an event key was read as a case")
	}
	bad := Case{ID: "a\x00b", ItemCode: "P1", Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
	if err := bad.Validate(); err == nil {
		t.Fatal("a case id with a control character was accepted")
	}
}
