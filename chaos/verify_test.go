//go:build linux

package chaos

import (
	"strings"
	"testing"
)

// The checker must catch each kind of violation it claims to: these run
// verify on hand-made histories and holdings, without any process.
func TestVerifyFindsViolations(t *testing.T) {
	// History: case A created (ok) with events a1 ok, a2 refused, a3 sent
	// without an answer; case B's creation never answered; case C refused.
	exp := map[string]*expect{
		"A": {created: ok, okEvents: map[string]bool{"a1": true}, refused: map[string]bool{"a2": true},
			sent: map[string]bool{"a1": true, "a2": true, "a3": true}},
		"B": {created: unknown, okEvents: map[string]bool{}, refused: map[string]bool{}, sent: map[string]bool{}},
		"C": {created: refused, okEvents: map[string]bool{}, refused: map[string]bool{}, sent: map[string]bool{}},
	}
	ev := func(id, typ string) eventView { return eventView{ID: id, Type: typ} }
	good := caseView{ID: "A", State: "accepted", Events: []eventView{ev("r", "received"), ev("a1", "accepted")}}
	withA3 := caseView{ID: "A", State: "paused", Events: []eventView{ev("r", "received"), ev("a1", "accepted"), ev("a3", "paused")}}
	b := caseView{ID: "B", State: "received", Events: []eventView{ev("rb", "received")}}
	place := func(cs ...caseView) map[string]caseView {
		m := map[string]caseView{}
		for _, c := range cs {
			m[c.ID] = c
		}
		return m
	}
	order := []string{"pc-1", "pc-2", "center"}

	// Correct: an unanswered event (a3) and an unanswered case (B) may be
	// present or absent, as long as every place agrees.
	for _, holdings := range []map[string]map[string]caseView{
		{"pc-1": place(good), "pc-2": place(good), "center": place(good)},
		{"pc-1": place(withA3, b), "pc-2": place(withA3, b), "center": place(withA3, b)},
	} {
		if r, v, _ := verify(exp, holdings, order); len(v) != 0 || r.Cases == 0 {
			t.Fatalf("a correct outcome gave %d cases and violations %q", r.Cases, v)
		}
	}

	for _, tc := range []struct {
		name string
		at   map[string]caseView // pc-2's holdings; pc-1 and center hold good
		want string
	}{
		{"lost case", place(), "answered 201/202 at creation, missing at pc-2"},
		{"lost event", place(caseView{ID: "A", State: "received", Events: []eventView{ev("r", "received")}}), "event a1 answered 201/202 is present 0 times at pc-2"},
		{"doubled event", place(caseView{ID: "A", State: "accepted", Events: []eventView{ev("r", "received"), ev("a1", "accepted"), ev("a1", "accepted")}}), "present 2 times at pc-2"},
		{"refused event present", place(caseView{ID: "A", State: "accepted", Events: []eventView{ev("r", "received"), ev("a1", "accepted"), ev("a2", "paused")}}), "event a2 was refused, yet pc-2 has it"},
		{"invented event", place(caseView{ID: "A", State: "accepted", Events: []eventView{ev("r", "received"), ev("a1", "accepted"), ev("zz", "paused")}}), "event zz (paused) that no clerk sent"},
		{"invented case", place(good, caseView{ID: "Z", State: "received", Events: []eventView{ev("rz", "received")}}), "pc-2 has a case no clerk created"},
		{"refused case present", place(good, caseView{ID: "C", State: "received", Events: []eventView{ev("rc", "received")}}), "creation was refused, yet pc-2 has it"},
		{"different state", place(caseView{ID: "A", State: "completed", Events: good.Events}), "differs: pc-1 has accepted"},
		{"still pending", place(caseView{ID: "A", State: "accepted", Pending: true, Events: good.Events}), "still pending at pc-2"},
		{"two received", place(caseView{ID: "A", State: "accepted", Events: []eventView{ev("r", "received"), ev("r2", "received"), ev("a1", "accepted")}}), "pc-2 has 2 received events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holdings := map[string]map[string]caseView{"pc-1": place(good), "pc-2": tc.at, "center": place(good)}
			_, v, ids := verify(exp, holdings, order)
			if !strings.Contains(strings.Join(v, "\n"), tc.want) {
				t.Fatalf("violations %q do not say %q", v, tc.want)
			}
			if len(ids) == 0 {
				t.Fatalf("no case id named for %q", v)
			}
		})
	}
}
