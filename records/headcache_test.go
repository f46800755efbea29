package records

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// cachingState is a memState that keeps decoded heads, like the raft
// state machine's transaction.
type cachingState struct {
	memState
	heads *HeadCache
}

func (s cachingState) HeadCache() *HeadCache { return s.heads }

// A run of random ops on a few cases (events the lifecycle refuses,
// offline events kept as conflicts, evaluations, bad reviews with their
// work orders, repeats) gives the same answers, changes and stored bytes
// with a head cache as without, and the cache is used.
func TestHeadCacheChangesNothingButDecodes(t *testing.T) {
	plain, clock := testStation(t)
	cached := cachingState{memState: maps.Clone(plain), heads: NewHeadCache(0)}
	rng := rand.New(rand.NewPCG(1, 2))
	types := []string{EventAccepted, EventCorrectionRequested, EventSupplemented, EventPaused, EventResumed, EventCompleted, EventRejected, EventWithdrawn}
	levels := []string{"非常满意", "满意", "基本满意", "不满意", "非常不满意"}
	var cases []string
	var last []Op
	for i := range 3000 {
		var op Op
		switch r := rng.IntN(20); {
		case r == 0 || len(cases) == 0:
			id := fmt.Sprintf("c%d", len(cases))
			c := Case{ID: id, ItemCode: "P1", Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
			if rng.IntN(2) == 0 {
				c.ItemCode = "I1"
				c.Agent = &Applicant{Kind: "person", Name: "李四"}
			}
			PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
			op, cases = Op{Kind: OpCreateCase, Case: &c}, append(cases, id)
		case r == 1 && len(last) > 0:
			op = last[rng.IntN(len(last))] // a retry
		case r <= 3:
			e := Evaluation{Level: levels[rng.IntN(len(levels))], Channel: 4, Attempt: 1 + rng.IntN(2)}
			PrepareEvaluation(&e, cases[rng.IntN(len(cases))], "pc-2", clock.Now(), 15)
			op = Op{Kind: OpEvaluate, Evaluation: &e}
		default:
			ev := Event{Type: types[rng.IntN(len(types))], Actor: "窗口 clerk", Data: json.RawMessage(fmt.Sprintf(`{"note":"第 %d 步 <ok>","n":%d}`, i, i))}
			PrepareEvent(&ev, cases[rng.IntN(len(cases))], "pc-1", clock.Now())
			op = Op{Kind: OpAppendEvent, Event: &ev, Offline: rng.IntN(4) == 0}
		}
		last = append(last, op)
		if rng.IntN(10) == 0 {
			// The op in a transaction that is then discarded: its writes
			// vanish, the head it kept stays in the cache and must not be
			// taken for the store's.
			Apply(cachingState{memState: maps.Clone(cached.memState), heads: cached.heads}, op)
		}
		v1, ch1, err1 := Apply(plain, op)
		v2, ch2, err2 := Apply(cached, op)
		a1, _ := json.Marshal([]any{v1, ch1, fmt.Sprint(err1)})
		a2, _ := json.Marshal([]any{v2, ch2, fmt.Sprint(err2)})
		if string(a1) != string(a2) {
			t.Fatalf("op %d (%s): answers differ\nwithout cache: %s\nwith cache:    %s", i, op.Kind, a1, a2)
		}
	}
	hits := cached.heads.hits
	sameState(t, plain, cached.memState)
	if hits < 100 {
		t.Fatalf("the cache handed out %d heads again in 3000 ops: it is not used", hits)
	}

	// A case created and given 16 steps in one transaction decodes its
	// head never: each load takes the head the write before kept.
	cached.heads = NewHeadCache(0)
	c := Case{ID: "batch", ItemCode: "P1", Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
	if _, _, err := Apply(cached, Op{Kind: OpCreateCase, Case: &c}); err != nil {
		t.Fatal(err)
	}
	for k := range 16 {
		typ := EventAccepted
		if k > 0 {
			typ = []string{EventResumed, EventPaused}[k%2]
		}
		ev := Event{Type: typ, Actor: "clerk"}
		PrepareEvent(&ev, "batch", "pc-1", clock.Now())
		if _, _, err := Apply(cached, Op{Kind: OpAppendEvent, Event: &ev}); err != nil {
			t.Fatal(err)
		}
	}
	if cached.heads.hits != 16 {
		t.Fatalf("16 steps on a new case: %d heads from the cache, want 16", cached.heads.hits)
	}
	got, err := GetCase(cached, "batch")
	if err != nil || len(got.Events) != 17 || got.State != EventPaused {
		t.Fatalf("case after 16 steps: %v, %d events, state %s", err, len(got.Events), got.State)
	}
}

// At the center every station's records live under the station's prefix
// and share one head cache: two stations with the same case ids, pulled
// page by page, consolidate to the same state as without the cache, and
// the cache is used.
func TestHeadCacheAtTheCenter(t *testing.T) {
	plain := memState{}
	cached := cachingState{memState: memState{}, heads: NewHeadCache(0)}
	for _, station := range []string{"XC-IP-01", "XC-IP-02"} {
		st, clock := testStation(t)
		f := &stationFeed{st: st}
		for i := range 6 {
			id := fmt.Sprintf("c-%d", i)
			f.create(t, clock, id)
			f.event(t, clock, id, EventAccepted)
			if station == "XC-IP-02" {
				f.event(t, clock, id, EventPaused)
				f.event(t, clock, id, EventResumed)
			}
			f.evaluate(t, clock, id)
		}
		for i := range 6 {
			f.event(t, clock, fmt.Sprintf("c-%d", i), EventCompleted)
		}
		pull(t, plain, station, "cluster-"+station, f, 3)
		pull(t, cached, station, "cluster-"+station, f, 3)
	}
	sameState(t, plain, cached.memState)
	if cached.heads.hits == 0 {
		t.Fatal("the center's merges never took a head from the cache")
	}
}

// sameState fails the test, naming each key that differs, unless the
// state written with a head cache is the state written without one.
func sameState(t *testing.T, plain, cached memState) {
	t.Helper()
	if reflect.DeepEqual(plain, cached) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(plain)) {
		if string(plain[k]) != string(cached[k]) {
			t.Errorf("key %q:\nwithout cache: %s\nwith cache:    %s", k, plain[k], cached[k])
		}
	}
	t.Fatalf("the state written with a head cache differs (%d vs %d keys)", len(plain), len(cached))
}

// A case in use keeps its head cached however many other cases pass
// through a full cache: the cache ages out the heads not used again, not
// all of them at once.
func TestHeadCacheKeepsTheCasesInUse(t *testing.T) {
	st, clock := testStation(t)
	cached := cachingState{memState: st, heads: NewHeadCache(8)}
	create := func(id string) {
		t.Helper()
		c := Case{ID: id, ItemCode: "P1", Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
		PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
		if _, _, err := Apply(cached, Op{Kind: OpCreateCase, Case: &c}); err != nil {
			t.Fatal(err)
		}
	}
	create("hot")
	for k := range 40 {
		create(fmt.Sprintf("once-%d", k)) // each fills a place in the cache
		typ := EventAccepted
		if k > 0 {
			typ = []string{EventResumed, EventPaused}[k%2]
		}
		ev := Event{Type: typ, Actor: "clerk"}
		PrepareEvent(&ev, "hot", "pc-1", clock.Now())
		before := cached.heads.hits
		if _, _, err := Apply(cached, Op{Kind: OpAppendEvent, Event: &ev}); err != nil {
			t.Fatal(err)
		}
		if cached.heads.hits != before+1 {
			t.Fatalf("step %d on the case in use, after %d other cases: its head was not in the cache (8 heads at most)", k+1, k+1)
		}
	}
	if n := len(cached.heads.m) + len(cached.heads.old); n > 8 {
		t.Fatalf("the cache holds %d heads, bound 8", n)
	}
}
