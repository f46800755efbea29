package records

import (
	"testing"
	"time"

	"github.com/stationsync/stationsync/records/calendar"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// at is a wall time in Shanghai as an HLC.
func at(s string) HLC {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, shanghai)
	if err != nil {
		panic(err)
	}
	return MakeHLC(t.UnixMilli(), 0)
}

type step struct {
	typ, when string
}

// caseWith builds a case of item through the given steps (first: received).
func caseWith(t *testing.T, st memState, id, item string, steps ...step) {
	t.Helper()
	c := Case{ID: id, ItemCode: item, Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "n"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", at(steps[0].when))
	if _, _, err := Apply(st, Op{Kind: OpCreateCase, Case: &c}); err != nil {
		t.Fatal(err)
	}
	for _, s := range steps[1:] {
		ev := Event{Type: s.typ, Actor: "clerk"}
		PrepareEvent(&ev, id, "pc-1", at(s.when))
		if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev}); err != nil {
			t.Fatalf("%s %s: %v", id, s.typ, err)
		}
	}
}

func evaluateAt(t *testing.T, st memState, id, level, when string) {
	t.Helper()
	e := Evaluation{Level: level, Channel: 4, Attempt: 1}
	PrepareEvaluation(&e, id, "pc-1", at(when), 15)
	if _, _, err := Apply(st, Op{Kind: OpEvaluate, Evaluation: &e}); err != nil {
		t.Fatal(err)
	}
}

func TestDeadlineSkipsWeekendsHolidaysAndPauses(t *testing.T) {
	st, _ := testStation(t) // P1 promises 5 working days
	caseWith(t, st, "a", "P1", step{"", "2026-09-18 09:00"}, step{EventAccepted, "2026-09-18 10:00"})
	caseWith(t, st, "b", "P1", step{"", "2026-09-18 09:00"}, step{EventAccepted, "2026-09-18 10:00"},
		step{EventPaused, "2026-09-22 09:00"}, step{EventResumed, "2026-09-24 09:00"})
	// Accepted Friday 2026-09-18 and still paused: no deadline.
	caseWith(t, st, "c", "P1", step{"", "2026-09-18 09:00"}, step{EventAccepted, "2026-09-18 10:00"}, step{EventPaused, "2026-09-21 09:00"})
	files := map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays: [2026-09-25, 2026-09-26, 2026-09-27]\nworkdays: [2026-09-20]\n")}
	cal, err := calendar.Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	// Sunday 2026-09-20 is a 调休 working day here, so for "a" days 1-5
	// are Sun 20 .. Thu 24 (deadline Fri 25 00:00). For "b" Tue 22 and
	// Wed 23 are paused: Sun 20, Mon 21, Thu 24, then after the holidays
	// Mon 28 and Tue 29 (deadline Wed 30 00:00).
	want := map[string]string{"a": "2026-09-25", "b": "2026-09-30"}
	for id, day := range want {
		c, _ := GetCase(st, id)
		dl, ok := c.Deadline(cal, shanghai)
		if !ok || dl.In(shanghai).Format("2006-01-02") != day || dl.In(shanghai).Hour() != 0 {
			t.Errorf("case %s: deadline %v (%v), want %s 00:00", id, dl.In(shanghai), ok, day)
		}
	}
	c, _ := GetCase(st, "c")
	if _, ok := c.Deadline(cal, shanghai); ok {
		t.Error("a paused case has a deadline")
	}
	a, _ := GetCase(st, "a")
	if a.Overdue(cal, shanghai, time.Date(2026, 9, 24, 20, 0, 0, 0, shanghai)) || !a.Overdue(cal, shanghai, time.Date(2026, 9, 25, 0, 0, 1, 0, shanghai)) {
		t.Error("overdue flips at the wrong time")
	}
}

func TestMonthlyStats(t *testing.T) {
	st, _ := testStation(t)
	cal, _ := calendar.Parse(map[string][]byte{"2026.yaml": []byte("year: 2026\nholidays: []\nworkdays: []\n")})
	// November 2026 in Shanghai.
	caseWith(t, st, "i1", "I1", step{"", "2026-11-02 09:00"}, step{EventCompleted, "2026-11-02 09:10"})
	evaluateAt(t, st, "i1", "非常满意", "2026-11-02 09:15")
	caseWith(t, st, "i2", "I1", step{"", "2026-11-03 09:00"}, step{EventCompleted, "2026-11-03 09:10"})
	evaluateAt(t, st, "i2", "不满意", "2026-11-03 09:15")
	// on time: accepted Mon 2 Nov, deadline Mon 9 Nov 24:00, completed Fri 6.
	caseWith(t, st, "p1", "P1", step{"", "2026-11-02 09:00"}, step{EventAccepted, "2026-11-02 10:00"}, step{EventCompleted, "2026-11-06 10:00"})
	evaluateAt(t, st, "p1", "满意", "2026-11-06 10:05")
	// late: accepted Mon 2 Nov, completed Wed 11 Nov.
	caseWith(t, st, "p2", "P1", step{"", "2026-11-02 09:00"}, step{EventAccepted, "2026-11-02 10:00"}, step{EventCompleted, "2026-11-11 10:00"})
	// open and overdue: accepted Mon 9 Nov, deadline Mon 16 Nov 24:00.
	caseWith(t, st, "p3", "P1", step{"", "2026-11-09 09:00"}, step{EventAccepted, "2026-11-09 10:00"})
	// October: counted in October only.
	caseWith(t, st, "old", "P1", step{"", "2026-10-20 09:00"}, step{EventAccepted, "2026-10-20 10:00"}, step{EventCompleted, "2026-10-21 10:00"})

	now := time.Date(2026, 11, 20, 12, 0, 0, 0, shanghai)
	s, err := ComputeMonthlyStats(st, "XC-IP-01", StatsQuery{Month: "2026-11", Location: shanghai, Calendar: cal, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Items) != 2 {
		t.Fatalf("items %+v", s.Items)
	}
	i1, p1 := s.Items[0], s.Items[1]
	if i1.ItemCode != "I1" || i1.Received != 2 || i1.Instant != 2 || i1.Completed != 2 || i1.CompletedOnTime != 2 ||
		i1.Evaluated != 2 || i1.Satisfied != 1 || i1.BadReviews != 1 || *i1.EvaluationRate != 1 || *i1.Satisfaction != 0.5 ||
		i1.OpenWorkOrders != 1 || i1.OverdueWorkOrders != 0 {
		t.Errorf("I1: %+v", i1)
	}
	if p1.ItemCode != "P1" || p1.Received != 3 || p1.Instant != 0 || p1.Completed != 2 || p1.CompletedOnTime != 1 ||
		p1.Overdue != 2 || p1.Evaluated != 1 || *p1.EvaluationRate != 0.5 || *p1.Satisfaction != 1 {
		t.Errorf("P1: %+v", p1)
	}
	if s.Total.Received != 5 || s.Total.Completed != 4 || s.Total.BadReviews != 1 || *s.Total.EvaluationRate != 0.75 {
		t.Errorf("total: %+v", s.Total)
	}
	oct, _ := ComputeMonthlyStats(st, "XC-IP-01", StatsQuery{Month: "2026-10", Location: shanghai, Calendar: cal, Now: now})
	if len(oct.Items) != 1 || oct.Items[0].Received != 1 || oct.Items[0].Completed != 1 || oct.Items[0].Satisfaction != nil {
		t.Errorf("October: %+v", oct.Items)
	}
	// Opened Tue 3 Nov, the work order is due at the end of its 15th
	// working day, Tue 24 Nov.
	later, _ := ComputeMonthlyStats(st, "XC-IP-01", StatsQuery{Month: "2026-11", Location: shanghai, Calendar: cal, Now: time.Date(2026, 11, 25, 0, 0, 1, 0, shanghai)})
	if later.Items[0].OverdueWorkOrders != 1 {
		t.Errorf("work order not overdue a month later: %+v", later.Items[0])
	}
}
