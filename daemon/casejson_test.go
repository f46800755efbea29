package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stationsync/stationsync/records"
)

// sampleView is a case view with every kind of field set, its events
// written by the fast path (plain fields, compact data) and by the
// fallback (HTML characters, data that is not compact, escapes).
func sampleView() CaseView {
	at := time.Date(2026, 11, 27, 9, 30, 1, 123000000, time.FixedZone("CST", 8*3600))
	dl := at.Add(72 * time.Hour)
	ev := func(id string, data string) records.Event {
		return records.Event{ID: id, CaseID: "c-1", Type: "accepted", Actor: "王芳", HLC: "h-" + records.HLC(id), At: at, Node: "pc-1", Data: json.RawMessage(data)}
	}
	events := []records.Event{
		ev("e1", `{"note":"plain"}`),
		ev("e2", `{"note": "not compact" }`),
		ev("e3", `{"note":"<b>&</b>"}`),
		ev("e4", ``),
		ev("e5", `null`),
		ev("e6", `{"note":"\u2028 and \"quoted\""}`),
	}
	events[2].Actor = "a<b"
	events[3].Conflict, events[3].Node = true, ""
	events[4].Pending = true
	return CaseView{
		Case: records.Case{
			ID: "c-1", Station: "XC-IP-01", ItemCode: "XC-L-0001", ItemName: "企业开办 <一窗通办> & more",
			Instant: true, Limit: &records.Limit{Value: 5, Unit: "working_days"}, Channel: "window", Actor: "clerk-07",
			Applicant: records.Applicant{Kind: "enterprise", Name: `苏州"某某"科技`, CreditCode: "91320507", IDNumber: "320507********1234"},
			Agent:     &records.Applicant{Kind: "person", Name: "events:null"},
			State:     "accepted", CreatedAt: at, Events: events,
			Evaluations: []records.Evaluation{{ID: "v1", CaseID: "c-1", Level: "不满意", Channel: 4, Text: `,"events":null`, Attempt: 1, At: at}},
		},
		Deadline: &dl,
		Overdue:  true,
	}
}

// viaWriteJSON is what writeJSON answers for v.
func viaWriteJSON(t *testing.T, code int, v any) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	writeJSON(rec, code, v)
	return rec
}

func sameAnswer(t *testing.T, name string, got, want *httptest.ResponseRecorder) {
	t.Helper()
	if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
		t.Errorf("%s: %d %q, writeJSON %d %q", name, got.Code, got.Header().Get("Content-Type"), want.Code, want.Header().Get("Content-Type"))
	}
	if cl := got.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(got.Body.Len()) {
		t.Errorf("%s: Content-Length %q for a body of %d bytes", name, cl, got.Body.Len())
	}
	if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Errorf("%s:\ngot  %s\nwant %s", name, got.Body.Bytes(), want.Body.Bytes())
	}
}

// plainView is sampleView without what needs escaping or compacting: the
// view AppendCaseViewJSON writes without encoding/json.
func plainView() CaseView {
	v := sampleView()
	v.ItemName, v.Applicant.Name, v.Evaluations[0].Text = "企业开办一窗通办", "苏州某某科技", "等候时间太长"
	v.Events = []records.Event{v.Events[0], v.Events[3], v.Events[4]}
	return v
}

func TestCaseJSONMatchesWriteJSON(t *testing.T) {
	full := sampleView()
	noEvents := sampleView()
	noEvents.Events, noEvents.Deadline, noEvents.Agent, noEvents.Limit, noEvents.Evaluations = nil, nil, nil, nil, nil
	emptyEvents := sampleView()
	emptyEvents.Events = []records.Event{}
	plain := plainView()
	plainNoDeadline := plainView()
	plainNoDeadline.Deadline, plainNoDeadline.Overdue = nil, false
	if _, ok := records.AppendCaseFieldsJSON(nil, &plain.Case); !ok {
		t.Fatal("the plain view is not written without encoding/json")
	}
	for name, v := range map[string]CaseView{"full": full, "nil events": noEvents, "empty events": emptyEvents, "plain": plain, "plain without deadline": plainNoDeadline} {
		rec := httptest.NewRecorder()
		WriteCaseJSON(rec, http.StatusOK, v)
		sameAnswer(t, name+": case", rec, viaWriteJSON(t, http.StatusOK, v))
		if rec.Header().Get("Content-Length") == "" {
			t.Errorf("%s: case answered without Content-Length", name)
		}

		views := []CaseView{v, full}
		rec = httptest.NewRecorder()
		WriteCasePageJSON(rec, views, map[string]any{"station": "XC-IP-01", "next": "c-9"})
		sameAnswer(t, name+": page", rec, viaWriteJSON(t, http.StatusOK, map[string]any{"station": "XC-IP-01", "cases": views, "next": "c-9"}))

		for i, rest := range []map[string]any{
			{"replication": "pending", "repeat": false, "event": full.Events[2]},
			{"replication": "committed", "repeat": true, "event": plain.Events[0]},
			{"replication": "committed", "repeat": false, "evaluation": plain.Evaluations[0]},
			{"replication": "<", "repeat": false},
			{"replication": "已提交", "repeat": false, "回执": "一窗通办\u007f"},
			{"replication": "line\u2028break", "repeat": true},
			{"replication": "bad \xff utf-8", "repeat": true},
		} {
			rec = httptest.NewRecorder()
			writeWith(rec, http.StatusAccepted, "case", v, func(b []byte) ([]byte, error) { return AppendCaseViewJSON(b, v) }, rest)
			want := map[string]any{"case": v}
			for k, x := range rest {
				want[k] = x
			}
			sameAnswer(t, fmt.Sprintf("%s: write answer %d", name, i), rec, viaWriteJSON(t, http.StatusAccepted, want))
		}
	}
	for _, rest := range []map[string]any{
		{"replication": "committed", "repeat": true, "event": plain.Events[0]},
		{"replication": "已提交", "repeat": false},
	} {
		if b, ok := appendMembers([]byte("{"), rest); !ok || !json.Valid(append(append(b[:1:1], b[2:]...), '}')) {
			t.Errorf("an answer's members not written without encoding/json: %s", b)
		}
	}
	for _, rest := range []map[string]any{{"replication": "a\u2028b"}, {"replication": "<"}, {"zone\n": true}, {"n": 1}} {
		if b, ok := appendMembers([]byte("{"), rest); ok || string(b) != "{" {
			t.Errorf("appendMembers(%q) = %q, %v: want it left to encoding/json", rest, b, ok)
		}
	}
	// A key that sorts before the view's: the answer still has writeJSON's order.
	rec := httptest.NewRecorder()
	writeWith(rec, http.StatusOK, "case", full, func(b []byte) ([]byte, error) { return AppendCaseViewJSON(b, full) }, map[string]any{"at": 1, "zone": 2})
	sameAnswer(t, "key before the view's", rec, viaWriteJSON(t, http.StatusOK, map[string]any{"case": full, "at": 1, "zone": 2}))
	for name, views := range map[string][]CaseView{"nil page": nil, "empty page": {}} {
		rec := httptest.NewRecorder()
		WriteCasePageJSON(rec, views, map[string]any{"next": ""})
		sameAnswer(t, name, rec, viaWriteJSON(t, http.StatusOK, map[string]any{"cases": views, "next": ""}))
	}
}

// A view encoding/json refuses (a time beyond year 9999) gets what
// writeJSON answers for it, not a body cut short by the fast path.
func TestCaseJSONRefusedAsWriteJSON(t *testing.T) {
	v := sampleView()
	v.Events[0].At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := httptest.NewRecorder()
	WriteCaseJSON(rec, http.StatusOK, v)
	sameAnswer(t, "event time out of range", rec, viaWriteJSON(t, http.StatusOK, v))
	if _, err := AppendCaseViewJSON(nil, v); err == nil {
		t.Error("AppendCaseViewJSON took an event time past year 9999")
	}
	p := plainView()
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	p.Deadline = &far
	rec = httptest.NewRecorder()
	WriteCaseJSON(rec, http.StatusOK, p)
	sameAnswer(t, "deadline out of range", rec, viaWriteJSON(t, http.StatusOK, p))
	if b, err := AppendCaseViewJSON([]byte("x"), p); err == nil || string(b) != "x" {
		t.Errorf("AppendCaseViewJSON took a deadline past year 9999: %q, %v", b, err)
	}
}

func FuzzCaseViewJSON(f *testing.F) {
	f.Add("王芳", "c-1", `{"note":"x"}`, "<&>", false, true, true)
	f.Add(`a"b`, `,"events":null`, `[1, 2]`, "\u2028", true, false, false)
	f.Add("a", "c-2", `{}`, "n", false, false, true)
	f.Fuzz(func(t *testing.T, actor, id, data, name string, conflict, pending, plain bool) {
		if !json.Valid([]byte(data)) {
			data = ""
		}
		v := sampleView()
		if plain { // the fast path's view (it falls back when a string is not plain)
			v = plainView()
		}
		v.ID, v.Applicant.Name = id, name
		v.Events = append(v.Events, records.Event{ID: id, CaseID: id, Type: "paused", Actor: actor, At: v.CreatedAt, Data: json.RawMessage(data), Conflict: conflict, Pending: pending})
		got, err := AppendCaseViewJSON(nil, v)
		want := viaWriteJSON(t, http.StatusOK, v).Body.Bytes()
		if err != nil {
			t.Fatalf("AppendCaseViewJSON: %v", err)
		}
		if !bytes.Equal(append(got, '\n'), want) {
			t.Fatalf("\ngot  %s\nwant %s", got, want)
		}
	})
}
