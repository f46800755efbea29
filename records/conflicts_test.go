package records

import (
	"strings"
	"testing"
)

// An online write the history does not allow is refused and writes
// nothing; the same write delivered from an outbox is kept as a conflict,
// and delivering it again changes nothing.
func TestOfflineWritesAreKeptAsConflicts(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c-1", "P1")
	if _, err := postEvent(st, clock, "c-1", EventRejected); err != nil {
		t.Fatal(err)
	}
	ev := Event{ID: "late", Type: EventAccepted, Actor: "clerk"}
	PrepareEvent(&ev, "c-1", "pc-2", clock.Now())
	before := len(st)
	if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev}); err == nil || len(st) != before {
		t.Fatalf("online: err %v, %d keys written", err, len(st)-before)
	}
	for range 2 {
		if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev, Offline: true}); err != nil {
			t.Fatal(err)
		}
		c, _ := GetCase(st, ev.CaseID)
		if c.State != EventRejected || len(c.Events) != 3 || !c.Events[2].Conflict || c.Events[2].ID != "late" {
			t.Fatalf("after the offline event: state %s, events %+v", c.State, c.Events)
		}
	}
	// A second first evaluation, offline: parked, not applied.
	for _, id := range []string{"e1", "e2", "e2"} {
		e := Evaluation{ID: id, Level: "满意", Channel: 1, Attempt: 1}
		PrepareEvaluation(&e, "c-1", "pc-2", clock.Now(), 15)
		if _, _, err := Apply(st, Op{Kind: OpEvaluate, Evaluation: &e, Offline: true}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := GetCase(st, "c-1")
	if err != nil || len(c.Evaluations) != 1 {
		t.Fatalf("evaluations %d (%v), want 1", len(c.Evaluations), err)
	}
	list, err := ListConflicts(st, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "e2" || list[0].Kept != KeptParked || list[0].Op == nil ||
		list[1].ID != "late" || list[1].Kept != KeptInHistory || list[1].CaseID != "c-1" || list[1].Reason == "" {
		t.Fatalf("conflicts = %+v", list)
	}

	// Resolving: needs a person and a note; a retry is a repeat; another
	// resolution of the same conflict is refused.
	res := Resolution{Actor: "chief", Note: "applicant informed", HLC: clock.Now()}
	if _, _, err := Apply(st, Op{Kind: OpResolveConflict, ConflictID: "late", Resolution: &Resolution{Actor: "chief"}}); err == nil {
		t.Fatal("a resolution without a note was accepted")
	}
	if _, ch, err := Apply(st, Op{Kind: OpResolveConflict, ConflictID: "late", Resolution: &res}); err != nil || len(ch) != 1 {
		t.Fatalf("resolve: %v, %d changes", err, len(ch))
	}
	if _, ch, err := Apply(st, Op{Kind: OpResolveConflict, ConflictID: "late", Resolution: &res}); err != nil || len(ch) != 0 {
		t.Fatalf("resolve again: %v, %d changes", err, len(ch))
	}
	other := Resolution{Actor: "deputy", Note: "x", HLC: clock.Now()}
	if _, _, err := Apply(st, Op{Kind: OpResolveConflict, ConflictID: "late", Resolution: &other}); err == nil {
		t.Fatal("a resolved conflict was resolved again by someone else")
	}
	if _, _, err := Apply(st, Op{Kind: OpResolveConflict, ConflictID: "nope", Resolution: &other}); err == nil {
		t.Fatal("an unknown conflict was resolved")
	}
	if open, _ := ListConflicts(st, false); len(open) != 1 || open[0].ID != "e2" {
		t.Fatalf("open conflicts = %+v", open)
	}
	if all, _ := ListConflicts(st, true); len(all) != 2 || all[1].Resolved == nil || all[1].Resolved.Actor != "chief" {
		t.Fatalf("all conflicts = %+v", all)
	}
}

// A parked new case keeps the applicant, masked in the view.
func TestParkedCaseIsMasked(t *testing.T) {
	st, clock := testStation(t)
	c := Case{ID: "c-9", ItemCode: "GONE", Channel: "window", Actor: "clerk",
		Applicant: Applicant{Kind: "person", Name: "张三", IDNumber: "320507199001011234", Phone: "13912345678"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
	if _, _, err := Apply(st, Op{Kind: OpCreateCase, Case: &c}); err == nil {
		t.Fatal("a case for an unknown item was created online")
	}
	if _, _, err := Apply(st, Op{Kind: OpCreateCase, Case: &c, Offline: true}); err != nil {
		t.Fatal(err)
	}
	list, _ := ListConflicts(st, false)
	if len(list) != 1 || list[0].CaseID != "c-9" || list[0].Op.Case.Applicant.IDNumber != c.Applicant.IDNumber {
		t.Fatalf("conflicts = %+v", list)
	}
	m := list[0].Masked()
	if m.Op.Case.Applicant.IDNumber == c.Applicant.IDNumber || m.Op.Case.Applicant.Phone == c.Applicant.Phone {
		t.Fatalf("masked conflict shows personal data: %+v", m.Op.Case.Applicant)
	}
	if list[0].Op.Case.Applicant.IDNumber != c.Applicant.IDNumber {
		t.Fatal("masking changed the stored record")
	}
}

// The largest timestamp applied is kept, so a restarted clock starts after it.
func TestMaxHLCIsKept(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c-1", "P1")
	latest := clock.Now()
	ev := Event{Type: EventAccepted, Actor: "clerk"}
	PrepareEvent(&ev, "c-1", "pc-1", latest)
	if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev}); err != nil {
		t.Fatal(err)
	}
	if h, err := MaxHLC(st); err != nil || h != latest {
		t.Fatalf("MaxHLC = %q (%v), want %q", h, err, latest)
	}
}

// The feed shows a parked new case's applicant masked.
func TestConflictChangeIsMasked(t *testing.T) {
	st, clock := testStation(t)
	c := Case{ID: "c-9", ItemCode: "GONE", Channel: "window", Actor: "clerk",
		Applicant: Applicant{Kind: "person", Name: "张三", IDNumber: "320507199001011234", Phone: "13912345678"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
	_, changes, err := Apply(st, Op{Kind: OpCreateCase, Case: &c, Offline: true})
	if err != nil || len(changes) != 1 || changes[0].Kind != "conflict" {
		t.Fatalf("changes %+v, %v", changes, err)
	}
	for _, full := range []bool{false, true} {
		m, err := MaskChange(changes[0], full)
		if err != nil {
			t.Fatal(err)
		}
		if shown := strings.Contains(string(m.Data), c.Applicant.IDNumber); shown != full {
			t.Fatalf("full=%v: ID number shown = %v: %s", full, shown, m.Data)
		}
	}
}

// A case cannot grow past its size bound: the next step is refused online
// and kept as a conflict offline, and nothing is written.
func TestCaseSizeIsBounded(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c-1", "P1")
	data := []byte(`{"note":"` + strings.Repeat("x", 15000) + `"}`)
	var err error
	for i := 0; err == nil && i < 100; i++ {
		typ := EventResumed
		if i%2 == 1 {
			typ = EventPaused
		}
		if i == 0 {
			typ = EventAccepted
		}
		ev := Event{Type: typ, Actor: "clerk", Data: data}
		PrepareEvent(&ev, "c-1", "pc-1", clock.Now())
		_, _, err = Apply(st, Op{Kind: OpAppendEvent, Event: &ev})
	}
	if de, ok := AsError(err); !ok || de.Code != CodeConflict || !strings.Contains(de.Message, "is full") {
		t.Fatalf("a case grew without bound: %v", err)
	}
	before := len(st)
	ev := Event{ID: "late", Type: EventWithdrawn, Actor: "clerk", Data: data}
	PrepareEvent(&ev, "c-1", "pc-2", clock.Now())
	if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev, Offline: true}); err != nil {
		t.Fatal(err)
	}
	list, _ := ListConflicts(st, false)
	if len(list) != 1 || list[0].ID != "late" || list[0].Kept != KeptParked || len(st) != before+1 {
		t.Fatalf("offline step on a full case: conflicts %+v, %d keys written", list, len(st)-before)
	}
}
