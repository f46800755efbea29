package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stationsync/stationsync/records"
)

// FuzzCaseEventBody feeds arbitrary bodies to the decoder of
// POST /v1/cases/{id}/events and the event validation behind it: never a
// panic; either a valid event or a 400 whose JSON error says what is wrong.
func FuzzCaseEventBody(f *testing.F) {
	for _, seed := range []string{
		`{"type":"accepted","actor":"clerk-07"}`,
		`{"id":"e1","type":"paused","actor":"a","data":{"reason":"听证"}}`,
		`{"type":"received","actor":"a"}`,
		`{"type":"accepted"}`,
		`{"type":"accepted","actor":"a","colour":1}`,
		`{"type":5}`,
		`[]`, `null`, `{`, `{"type":"accepted","actor":"a"}{}`,
		`{"id":"a/b","type":"completed","actor":"x"}`,
		`{"type":"completed","actor":"x","data":"` + strings.Repeat("x", 100) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	d := &Daemon{cfg: DefaultConfig()}
	d.cfg.Limits.MaxBodyBytes = 64 << 10
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/cases/c/events", strings.NewReader(string(body)))
		var b caseEventBody
		if !d.decodeBody(w, r, &b) {
			var e apiError
			if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Message == "" {
				t.Fatalf("refused body %q answered %d %q", body, w.Code, w.Body.String())
			}
			return
		}
		ev := records.Event{ID: b.ID, Type: b.Type, Actor: b.Actor, Data: b.Data}
		err := ev.Validate()
		if err == nil {
			if !records.IsCaseEvent(ev.Type) || ev.Type == records.EventReceived || strings.TrimSpace(ev.Actor) == "" {
				t.Fatalf("invalid event accepted: %+v", ev)
			}
			return
		}
		if de, ok := records.AsError(err); !ok || de.Message == "" || de.Field == "" {
			t.Fatalf("event %+v: error %v does not name a field", ev, err)
		}
	})
}

// FuzzCaseBody does the same for POST /v1/cases.
func FuzzCaseBody(f *testing.F) {
	for _, seed := range []string{
		`{"item_code":"XC-L-0001","channel":"window","actor":"clerk-07","applicant":{"kind":"person","name":"张三","id_number":"320507199001011234"}}`,
		`{"id":"client-1","item_code":"X","channel":"web","actor":"a","applicant":{"kind":"enterprise","name":"某公司"},"agent":{"kind":"person","name":"代办员"},"tolerance":true}`,
		`{"item_code":"X"}`, `{"applicant":null}`, `{"item_code":["x"]}`, `{}`, `""`,
	} {
		f.Add([]byte(seed))
	}
	d := &Daemon{cfg: DefaultConfig()}
	d.cfg.Limits.MaxBodyBytes = 64 << 10
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/cases", strings.NewReader(string(body)))
		var b caseBody
		if !d.decodeBody(w, r, &b) {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("refused body answered %d", w.Code)
			}
			return
		}
		if b.Applicant == nil {
			return
		}
		c := records.Case{ID: b.ID, ItemCode: b.ItemCode, Channel: b.Channel, Actor: b.Actor, Applicant: *b.Applicant, Agent: b.Agent}
		if err := c.Validate(); err != nil {
			if de, ok := records.AsError(err); !ok || de.Field == "" {
				t.Fatalf("case error %v does not name a field", err)
			}
		}
	})
}
