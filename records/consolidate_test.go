package records

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// feedOf applies ops at a station and returns the feed they make.
type stationFeed struct {
	st      memState
	changes []PulledChange
}

func (f *stationFeed) apply(t *testing.T, op Op) {
	t.Helper()
	_, chs, err := Apply(f.st, op)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs {
		f.changes = append(f.changes, PulledChange{Seq: uint64(len(f.changes) + 1), Change: ch})
	}
}

// create, event and evaluate write a case, an event of it and a bad
// evaluation of it at the station.
func (f *stationFeed) create(t *testing.T, clock *Clock, id string) {
	t.Helper()
	c := Case{ID: id, ItemCode: "P1", Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
	f.apply(t, Op{Kind: OpCreateCase, Case: &c})
}

func (f *stationFeed) event(t *testing.T, clock *Clock, id, typ string) {
	t.Helper()
	ev := Event{Type: typ, Actor: "clerk"}
	PrepareEvent(&ev, id, "pc-1", clock.Now())
	f.apply(t, Op{Kind: OpAppendEvent, Event: &ev})
}

func (f *stationFeed) evaluate(t *testing.T, clock *Clock, id string) {
	t.Helper()
	e := Evaluation{Level: "不满意", Channel: 4, Attempt: 1}
	PrepareEvaluation(&e, id, "pc-1", clock.Now(), 15)
	f.apply(t, Op{Kind: OpEvaluate, Evaluation: &e})
}

// pull consolidates the feed into center from the center's cursor, in
// pages of n, and returns how many ops were applied.
func pull(t *testing.T, center State, station, cluster string, f *stationFeed, n int) {
	t.Helper()
	for {
		cur, err := GetCursor(center, station)
		if err != nil {
			t.Fatal(err)
		}
		from := cur.Seq
		if cur.ClusterID != cluster {
			from = 0
		}
		if int(from) >= len(f.changes) {
			return
		}
		end := min(int(from)+n, len(f.changes))
		pg := PulledPage{Station: station, ClusterID: cluster, From: from, Changes: f.changes[from:end], Head: uint64(len(f.changes))}
		for range 2 { // every page twice: a retry after a lost answer
			if _, _, err := Apply(center, Op{Kind: OpConsolidate, Pull: &pg}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestConsolidationIsExactlyOnce(t *testing.T) {
	st, clock := testStation(t)
	f := &stationFeed{st: st}
	for _, id := range []string{"c-1", "c-2", "c-3"} {
		f.create(t, clock, id)
	}
	for _, id := range []string{"c-1", "c-2"} {
		f.event(t, clock, id, EventAccepted)
	}
	f.evaluate(t, clock, "c-3")
	wev := WorkOrderEvent{Type: WorkOrderVerifying, Actor: "chief"}
	PrepareWorkOrderEvent(&wev, "pc-1", clock.Now())
	f.apply(t, Op{Kind: OpWorkOrderEvent, WorkOrderID: "WO-c-3", WorkOrderEvent: &wev})

	center := memState{}
	pull(t, center, "XC-IP-01", "cluster-a", f, 2)
	month := clock.Now().Time().In(time.UTC).Format("2006-01")
	want, err := MonthDigest(st, month, time.UTC)
	if err != nil || want.Count != 7 {
		t.Fatalf("station digest %+v %v, want 7 records", want, err)
	}
	view := StationReader(center, "XC-IP-01")
	if got, _ := MonthDigest(view, month, time.UTC); got != want {
		t.Fatalf("center digest %+v, station %+v", got, want)
	}
	q := StatsQuery{Month: month, Location: time.UTC, Now: clock.Now().Time()}
	ws, _ := ComputeMonthlyStats(st, "XC-IP-01", q)
	gs, _ := ComputeMonthlyStats(view, "XC-IP-01", q)
	if !reflect.DeepEqual(ws, gs) {
		t.Fatalf("center stats differ:\n%+v\n%+v", gs, ws)
	}
	if cur, _ := GetCursor(center, "XC-IP-01"); cur.Seq != uint64(len(f.changes)) || cur.Head != cur.Seq {
		t.Fatalf("cursor %+v after %d changes", cur, len(f.changes))
	}

	// The station rebuilt from scratch gets a new cluster id and the same
	// records: the center reads it all again and doubles nothing.
	pull(t, center, "XC-IP-01", "cluster-b", f, 3)
	if got, _ := MonthDigest(view, month, time.UTC); got != want {
		t.Fatalf("after re-reading: center digest %+v, station %+v", got, want)
	}
	if cur, _ := GetCursor(center, "XC-IP-01"); cur.ClusterID != "cluster-b" || cur.Rereads != 1 {
		t.Fatalf("cursor %+v after the rebuild", cur)
	}
	// A page still in flight from the old cluster changes nothing.
	stale := PulledPage{Station: "XC-IP-01", ClusterID: "cluster-a", From: 3, Changes: f.changes[3:5]}
	if _, _, err := Apply(center, Op{Kind: OpConsolidate, Pull: &stale}); err != nil {
		t.Fatal(err)
	}
	if cur, _ := GetCursor(center, "XC-IP-01"); cur.ClusterID != "cluster-b" {
		t.Fatalf("a stale page moved the cursor: %+v", cur)
	}
	// A deleted event is detected by the digest; a re-read repairs it.
	c1, _ := GetCase(view, "c-1")
	c1.Events = c1.Events[:1]
	if _, err := setJSON(stationState(center, "XC-IP-01"), prefixCase+"c-1", c1); err != nil {
		t.Fatal(err)
	}
	if got, _ := MonthDigest(view, month, time.UTC); got == want {
		t.Fatal("the digest did not change when an event was lost")
	}
	if _, _, err := Apply(center, Op{Kind: OpRereadStation, Station: "XC-IP-01"}); err != nil {
		t.Fatal(err)
	}
	pull(t, center, "XC-IP-01", "cluster-b", f, 4)
	if got, _ := MonthDigest(view, month, time.UTC); got != want {
		t.Fatalf("after repair: center digest %+v, station %+v", got, want)
	}
}

func TestPublishItemVersions(t *testing.T) {
	center := memState{}
	it := Item{Code: "XC-D-0001", Name: "企业开办", Type: ItemType{Code: "20"}}
	for i, name := range []string{"企业开办", "企业开办", "企业开办一窗通办"} {
		it.Name = name
		v, _, err := Apply(center, Op{Kind: OpPublishItem, Item: &it})
		if err != nil {
			t.Fatal(err)
		}
		got := v.(Item)
		want := []uint64{1, 1, 2}[i]
		if got.Version != want || got.Origin != OriginDistrict {
			t.Fatalf("publish %d: version %d origin %s, want %d district", i, got.Version, got.Origin, want)
		}
	}
	newer, _ := ItemsNewerThan(center, map[string]uint64{"XC-D-0001": 1})
	if len(newer) != 1 || newer[0].Version != 2 {
		t.Fatalf("newer = %+v", newer)
	}
	if newer, _ := ItemsNewerThan(center, map[string]uint64{"XC-D-0001": 2}); len(newer) != 0 {
		t.Fatalf("newer than current = %+v", newer)
	}
}

// TestConsolidationPageSizeDoesNotMatter: a page's changes of one case
// are merged together (consolidate groups them); the center must hold
// the same records whatever the pages' sizes, one change per page being
// the change-by-change merge.
func TestConsolidationPageSizeDoesNotMatter(t *testing.T) {
	st, clock := testStation(t)
	f := &stationFeed{st: st}
	ids := []string{"c-1", "c-2", "c-3", "c-4"}
	for _, id := range ids {
		f.create(t, clock, id)
	}
	// Interleaved lifecycles, so a page holds several cases' events.
	for _, typ := range []string{EventAccepted, EventPaused, EventResumed, EventPaused, EventResumed, EventCompleted} {
		for _, id := range ids[:3] {
			f.event(t, clock, id, typ)
		}
	}
	f.evaluate(t, clock, "c-2")

	cases := func(center memState) []Case {
		var out []Case
		for _, id := range ids {
			c, err := GetCase(StationReader(center, "XC-IP-01"), id)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			out = append(out, c)
		}
		return out
	}
	one := memState{}
	pull(t, one, "XC-IP-01", "cluster-a", f, 1)
	want := cases(one)
	for i, c := range want {
		if s, _ := GetCase(st, ids[i]); !reflect.DeepEqual(c, s) {
			t.Fatalf("one change per page: center %+v, station %+v", c, s)
		}
	}
	for _, n := range []int{2, 5, 7, len(f.changes)} {
		center := memState{}
		pull(t, center, "XC-IP-01", "cluster-a", f, n)
		if got := cases(center); !reflect.DeepEqual(got, want) {
			t.Fatalf("pages of %d: center holds\n%+v\nwant\n%+v", n, got, want)
		}
		// Read again from the start (a rebuilt station): nothing doubles.
		pull(t, center, "XC-IP-01", "cluster-b", f, n)
		if got := cases(center); !reflect.DeepEqual(got, want) {
			t.Fatalf("pages of %d, read twice: center holds\n%+v\nwant\n%+v", n, got, want)
		}
	}
}

// countingState counts the reads of case heads and the scans of a case's
// events, under a head cache as the center's state machine has.
type countingState struct {
	cachingState
	headReads, eventScans *int
}

func (s countingState) Get(k string) ([]byte, error) {
	if strings.HasPrefix(k, prefixStation) && strings.Contains(k, "/"+prefixCase) && !strings.Contains(k, eventSep) {
		*s.headReads++
	}
	return s.cachingState.Get(k)
}

func (s countingState) Scan(prefix, after string, fn func(string, []byte) (bool, error)) error {
	if strings.Contains(prefix, eventSep) {
		*s.eventScans++
	}
	return s.cachingState.Scan(prefix, after, fn)
}

// A page with a case's last event and its evaluation reads the case's
// head once and does not read its stored events: the evaluation, later
// than the event, used to be merged first, so the event looked out of
// order and every event of the case was read and folded again; and the
// head was read twice, to check the case is known and to merge.
func TestConsolidationReadsAKnownCaseOnce(t *testing.T) {
	st, clock := testStation(t)
	f := &stationFeed{st: st}
	f.create(t, clock, "c")
	f.event(t, clock, "c", EventAccepted)
	f.event(t, clock, "c", EventCompleted)
	f.evaluate(t, clock, "c")
	var heads, scans int
	center := countingState{cachingState: cachingState{memState: memState{}, heads: NewHeadCache(0)}, headReads: &heads, eventScans: &scans}
	consolidate := func(changes []PulledChange, from uint64) {
		t.Helper()
		pg := PulledPage{Station: "XC-IP-01", ClusterID: "k", From: from, Changes: changes, Head: uint64(len(f.changes))}
		if _, _, err := Apply(center, Op{Kind: OpConsolidate, Pull: &pg}); err != nil {
			t.Fatal(err)
		}
	}
	last := 2 // the case, the accepted event; then the completed event, the evaluation and its work order
	if k := f.changes[last].Kind; k != "event" {
		t.Fatalf("change %d is a %s, want the completed event", last, k)
	}
	consolidate(f.changes[:last], 0)
	heads, scans = 0, 0
	consolidate(f.changes[last:], f.changes[last-1].Seq)
	if heads != 1 || scans != 0 {
		t.Errorf("merging the last event and the evaluation: %d reads of the head (want 1), %d scans of the events (want 0)", heads, scans)
	}
	got, err := GetCase(StationReader(center, "XC-IP-01"), "c")
	if err != nil || got.State != EventCompleted || len(got.Events) != 3 || len(got.Evaluations) != 1 {
		t.Fatalf("center copy: %v state %s, %d events, %d evaluations", err, got.State, len(got.Events), len(got.Evaluations))
	}
	ch, err := loadHead(StationReader(center.memState, "XC-IP-01"), "c")
	if err != nil {
		t.Fatal(err)
	}
	sh, err := loadHead(f.st, "c")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Last != sh.Last || ch.NEvents != sh.NEvents || ch.Bytes != sh.Bytes {
		t.Errorf("center's head: last %s, %d events, %d bytes; station's: %s, %d, %d", ch.Last, ch.NEvents, ch.Bytes, sh.Last, sh.NEvents, sh.Bytes)
	}
}

// An event the center stores just as the station sent it goes to the
// center's own feed as a reference to its key (Change.Stored), not as a
// second copy; one stored otherwise (a conflict the station marked), or
// not stored by this merge (a repeat), keeps its data.
func TestCenterFeedRefersToMergedEvents(t *testing.T) {
	st, clock := testStation(t)
	f := &stationFeed{st: st}
	f.create(t, clock, "c")
	f.event(t, clock, "c", EventRejected)
	late := Event{ID: "late", Type: EventAccepted, Actor: "clerk"}
	PrepareEvent(&late, "c", "pc-2", clock.Now())
	f.apply(t, Op{Kind: OpAppendEvent, Event: &late, Offline: true}) // kept as a conflict

	center := memState{}
	consolidate := func(cluster string) []Change {
		t.Helper()
		pg := PulledPage{Station: "XC-IP-01", ClusterID: cluster, Changes: f.changes, Head: uint64(len(f.changes))}
		_, changes, err := Apply(center, Op{Kind: OpConsolidate, Pull: &pg})
		if err != nil {
			t.Fatal(err)
		}
		return changes
	}
	var events, refs int
	for _, ch := range consolidate("k") {
		if ch.Kind != "event" {
			if ch.Stored != "" {
				t.Errorf("%s change %s refers to %s", ch.Kind, ch.Key, ch.Stored)
			}
			continue
		}
		events++
		conflict := strings.Contains(string(ch.Data), `"late"`)
		switch {
		case ch.Stored == "" && !conflict:
			t.Errorf("event change %s copies its data: %s", ch.Key, ch.Data)
		case ch.Stored != "" && conflict:
			t.Errorf("the conflict event refers to %s, which does not hold it marked", ch.Stored)
		case ch.Stored != "":
			refs++
			if b, _ := center.Get(ch.Stored); string(b) != string(ch.Data) {
				t.Errorf("event change %s refers to %s, which holds %s, not %s", ch.Key, ch.Stored, b, ch.Data)
			}
		}
	}
	if events != 2 || refs != 1 {
		t.Fatalf("%d event changes, %d references; want 2 and 1", events, refs)
	}
	// Read again from the start (a new cluster id): nothing is stored
	// anew, so nothing is referred to.
	for _, ch := range consolidate("k2") {
		if ch.Stored != "" {
			t.Errorf("re-read: %s change %s refers to %s", ch.Kind, ch.Key, ch.Stored)
		}
	}
}
