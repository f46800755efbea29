package records

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testStation is an in-memory station state with one item of each kind.
func testStation(t *testing.T) (memState, *Clock) {
	t.Helper()
	st := memState{}
	clock := NewClock(func() time.Time { return time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC) })
	for _, it := range []Item{
		{Code: "P1", Name: "食品经营许可", Type: ItemType{Code: "01"}, Origin: OriginLocal, PromisedLimit: &Limit{5, "working_days"}},
		{Code: "I1", Name: "社会保险参保登记", Type: ItemType{Code: "20"}, Origin: OriginLocal, Instant: true},
	} {
		if _, _, err := Apply(st, Op{Kind: OpPutItem, Item: &it}); err != nil {
			t.Fatal(err)
		}
	}
	return st, clock
}

func newTestCase(t *testing.T, st memState, clock *Clock, id, item string) {
	t.Helper()
	c := Case{ID: id, ItemCode: item, Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
	if _, _, err := Apply(st, Op{Kind: OpCreateCase, Case: &c}); err != nil {
		t.Fatal(err)
	}
}

func postEvent(st memState, clock *Clock, caseID, typ string) (Case, error) {
	ev := Event{Type: typ, Actor: "clerk"}
	if err := ev.Validate(); err != nil {
		return Case{}, err
	}
	PrepareEvent(&ev, caseID, "pc-1", clock.Now())
	v, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev})
	if err != nil {
		return Case{}, err
	}
	c, err := GetCase(st, caseID)
	if w := v.(CaseWrite); err == nil && (w.State != c.State || w.Event == nil || w.Event.ID != ev.ID) {
		return c, fmt.Errorf("answer %+v, case state %s", w, c.State)
	}
	return c, err
}

func TestLifecycleTransitions(t *testing.T) {
	all := []string{EventAccepted, EventCorrectionRequested, EventSupplemented, EventPaused, EventResumed, EventCompleted, EventRejected, EventWithdrawn}
	// paths to reach each state of a promised (non-instant) case
	paths := map[string][]string{
		EventReceived:            {},
		EventAccepted:            {EventAccepted},
		EventCorrectionRequested: {EventAccepted, EventCorrectionRequested},
		EventSupplemented:        {EventAccepted, EventCorrectionRequested, EventSupplemented},
		EventPaused:              {EventAccepted, EventPaused},
		EventResumed:             {EventAccepted, EventPaused, EventResumed},
		EventCompleted:           {EventAccepted, EventCompleted},
		EventRejected:            {EventRejected},
		EventWithdrawn:           {EventWithdrawn},
	}
	want := map[string][]string{
		EventReceived:            {EventAccepted, EventCorrectionRequested, EventRejected, EventWithdrawn},
		EventAccepted:            {EventCorrectionRequested, EventPaused, EventCompleted, EventRejected, EventWithdrawn},
		EventCorrectionRequested: {EventSupplemented, EventRejected, EventWithdrawn},
		EventSupplemented:        {EventCorrectionRequested, EventPaused, EventCompleted, EventRejected, EventWithdrawn}, // accepted once already
		EventPaused:              {EventResumed, EventWithdrawn},
		EventResumed:             {EventCorrectionRequested, EventPaused, EventCompleted, EventRejected, EventWithdrawn},
		EventCompleted:           {},
		EventRejected:            {},
		EventWithdrawn:           {},
	}
	for state, path := range paths {
		for _, next := range all {
			st, clock := testStation(t)
			newTestCase(t, st, clock, "c", "P1")
			for _, p := range path {
				if _, err := postEvent(st, clock, "c", p); err != nil {
					t.Fatalf("path to %s: %s: %v", state, p, err)
				}
			}
			before := fmt.Sprint(st)
			c, err := postEvent(st, clock, "c", next)
			ok := false
			for _, w := range want[state] {
				ok = ok || w == next
			}
			switch {
			case ok && err != nil:
				t.Errorf("%s -> %s refused: %v", state, next, err)
			case ok && c.State != next:
				t.Errorf("%s -> %s: state %s", state, next, c.State)
			case !ok && err == nil:
				t.Errorf("%s -> %s allowed, want 409", state, next)
			case !ok:
				de, _ := AsError(err)
				if de == nil || de.Code != CodeConflict || !strings.Contains(de.Message, "is "+state) || !strings.Contains(de.Message, next) {
					t.Errorf("%s -> %s: %v; want a conflict naming the state and the event", state, next, err)
				}
				if fmt.Sprint(st) != before {
					t.Errorf("%s -> %s: a refused event changed the store", state, next)
				}
			}
		}
	}
}

func TestInstantCaseCompletesOnTheSpot(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "i", "I1")
	if c, err := postEvent(st, clock, "i", EventCompleted); err != nil || c.State != EventCompleted {
		t.Fatalf("instant received -> completed: %v %v", c.State, err)
	}
	newTestCase(t, st, clock, "p", "P1")
	if _, err := postEvent(st, clock, "p", EventCompleted); err == nil {
		t.Fatal("a promised case completed without acceptance")
	}
}

func TestEventRetryIsIdempotent(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c", "P1")
	ev := Event{ID: "client-ev-1", Type: EventAccepted, Actor: "clerk"}
	PrepareEvent(&ev, "c", "pc-1", clock.Now())
	if _, ch, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev}); err != nil || len(ch) != 1 {
		t.Fatal(err)
	}
	again := ev
	again.HLC = clock.Now()
	v, ch, err := Apply(st, Op{Kind: OpAppendEvent, Event: &again})
	c, _ := GetCase(st, "c")
	if err != nil || len(ch) != 0 || len(c.Events) != 2 || v.(CaseWrite).State != EventAccepted {
		t.Fatalf("retry: %v changes %d events %d answer %+v", err, len(ch), len(c.Events), v)
	}
	// The same id for another case is a conflict, not a silent repeat.
	newTestCase(t, st, clock, "d", "P1")
	other := Event{ID: "client-ev-1", Type: EventAccepted, Actor: "clerk"}
	PrepareEvent(&other, "d", "pc-1", clock.Now())
	if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &other}); err == nil {
		t.Fatal("an event id of case c was accepted for case d")
	}
}

// Any permutation of a case's events folds to the same state and order.
func TestFoldIsOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	histories := [][]string{
		{EventAccepted, EventCorrectionRequested, EventSupplemented, EventPaused, EventResumed, EventCompleted},
		{EventAccepted, EventPaused, EventResumed, EventPaused, EventResumed, EventRejected},
		{EventCorrectionRequested, EventSupplemented, EventAccepted, EventCompleted},
		{EventAccepted, EventCompleted, EventWithdrawn, EventRejected}, // two conflicts at the end
		{EventWithdrawn, EventAccepted}, // a conflict
	}
	for hi, h := range histories {
		base := Case{ID: "c", Instant: false}
		ms := int64(1_800_000_000_000)
		base.Events = append(base.Events, Event{ID: "c.received", Type: EventReceived, HLC: MakeHLC(ms, 0)})
		for i, typ := range h {
			// Some events share a wall time: the logical part and the id decide.
			base.Events = append(base.Events, Event{ID: fmt.Sprintf("e%02d", i), Type: typ, HLC: MakeHLC(ms+int64(i/2)*1000, i%2)})
		}
		want := base
		want.Events = append([]Event(nil), base.Events...)
		want.Fold()
		for n := 0; n < 200; n++ {
			c := base
			c.Events = append([]Event(nil), base.Events...)
			rng.Shuffle(len(c.Events), func(i, j int) { c.Events[i], c.Events[j] = c.Events[j], c.Events[i] })
			c.Fold()
			if c.State != want.State || !reflect.DeepEqual(c.Events, want.Events) {
				t.Fatalf("history %d permutation %d: state %s, want %s", hi, n, c.State, want.State)
			}
		}
	}
}

func TestEvaluationsAndWorkOrders(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c", "P1")
	postEvent(st, clock, "c", EventAccepted)
	postEvent(st, clock, "c", EventCompleted)

	evaluate := func(e Evaluation) (Case, []Change, error) {
		if err := e.Validate(); err != nil {
			return Case{}, nil, err
		}
		PrepareEvaluation(&e, "c", "pc-1", clock.Now(), 10)
		_, ch, err := Apply(st, Op{Kind: OpEvaluate, Evaluation: &e})
		if err != nil {
			return Case{}, nil, err
		}
		c, err := GetCase(st, "c")
		return c, ch, err
	}
	for _, bad := range []Evaluation{
		{Level: "差", Channel: 4, Attempt: 1},
		{Level: "满意", Channel: 9, Attempt: 1},
		{Level: "满意", Channel: 4, Attempt: 3},
	} {
		if _, _, err := evaluate(bad); err == nil {
			t.Errorf("evaluation %+v accepted", bad)
		}
	}
	if _, _, err := evaluate(Evaluation{Level: "满意", Channel: 4, Attempt: 2}); err == nil {
		t.Error("a second evaluation without a work order was accepted")
	}
	c, ch, err := evaluate(Evaluation{ID: "ev1", Level: "不满意", Channel: 4, Attempt: 1, Text: "等候时间太长", Evaluator: "13900000000"})
	if err != nil || len(c.Evaluations) != 1 || len(ch) != 2 || ch[1].Kind != "workorder" {
		t.Fatalf("bad review: %v, %d changes", err, len(ch))
	}
	if _, _, err := evaluate(Evaluation{Level: "满意", Channel: 4, Attempt: 1}); err == nil {
		t.Error("a second first evaluation was accepted (一事一评)")
	}
	wo, err := GetWorkOrder(st, "WO-c")
	if err != nil || wo.State != WorkOrderOpen || wo.DueDays != 10 || wo.Level != "不满意" {
		t.Fatalf("work order: %+v %v", wo, err)
	}
	step := func(ev WorkOrderEvent) (WorkOrder, error) {
		if err := ev.Validate(); err != nil {
			return WorkOrder{}, err
		}
		PrepareWorkOrderEvent(&ev, "pc-1", clock.Now())
		v, _, err := Apply(st, Op{Kind: OpWorkOrderEvent, WorkOrderID: "WO-c", WorkOrderEvent: &ev})
		if err != nil {
			return WorkOrder{}, err
		}
		return v.(WorkOrder), nil
	}
	if _, err := step(WorkOrderEvent{Type: WorkOrderInvalid, Actor: "a"}); err == nil {
		t.Error("invalid without an approver accepted")
	}
	if _, err := step(WorkOrderEvent{Type: WorkOrderInvalid, Actor: "a", Approver: "a"}); err == nil {
		t.Error("invalid approved by its own actor accepted")
	}
	if _, err := step(WorkOrderEvent{Type: WorkOrderClosed, Actor: "a"}); err == nil {
		t.Error("open -> closed accepted")
	}
	for _, ev := range []WorkOrderEvent{
		{Type: WorkOrderAssigned, Actor: "lead", Owner: "王五"},
		{Type: WorkOrderVerifying, Actor: "王五"},
		{Type: WorkOrderRectifying, Actor: "王五", Note: "增设取号机"},
		{Type: WorkOrderReplied, Actor: "王五"},
		{Type: WorkOrderClosed, Actor: "王五", Note: "回访满意"},
	} {
		if wo, err = step(ev); err != nil {
			t.Fatalf("%s: %v", ev.Type, err)
		}
	}
	if wo.State != WorkOrderClosed || wo.Owner != "王五" || wo.Callback != "回访满意" {
		t.Fatalf("closed work order: %+v", wo)
	}
	c, _, err = evaluate(Evaluation{Level: "满意", Channel: 6, Attempt: 2})
	if err != nil || len(c.Evaluations) != 2 {
		t.Fatalf("second evaluation: %v", err)
	}
	if wo, _ := GetWorkOrder(st, "WO-c"); wo.SecondLevel != "满意" {
		t.Fatalf("second level not on the work order: %+v", wo)
	}
	if m := c.Masked(); m.Evaluations[0].Evaluator != "" || c.WithoutEvaluators().Evaluations[0].Evaluator != "" {
		t.Fatal("evaluator shown")
	}
}

func TestClockOrdersAfterObserved(t *testing.T) {
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(func() time.Time { return wall })
	a := c.Now()
	b := c.Now()
	if !(a < b) {
		t.Fatalf("%s !< %s", a, b)
	}
	future := MakeHLC(wall.Add(time.Hour).UnixMilli(), 5)
	c.Observe(future)
	if n := c.Now(); !(n > future) {
		t.Fatalf("after observing %s the clock issued %s", future, n)
	}
	if _, _, err := ParseHLC("nope"); err == nil {
		t.Fatal("bad hlc parsed")
	}
}

// A PC whose clock is behind cannot place a step before the case's
// history: applying moves it after the last event.
func TestLaggingClockEventIsOrderedAfterHistory(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c", "P1")
	behind := NewClock(func() time.Time { return time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC) }) // an hour behind
	ev := Event{Type: EventAccepted, Actor: "clerk"}
	PrepareEvent(&ev, "c", "pc-2", behind.Now())
	if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev}); err != nil {
		t.Fatalf("accept from a lagging clock: %v", err)
	}
	c, _ := GetCase(st, "c")
	if c.State != EventAccepted || c.Events[1].ID != ev.ID || !(c.Events[1].HLC > c.Events[0].HLC) {
		t.Fatalf("state %s, events %+v", c.State, c.Events)
	}
}
