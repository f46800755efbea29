package daemon

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stationsync/stationsync/records"
)

// Fuzz targets for the JSON bodies of the station API that fuzz_test.go
// does not cover. Each mirrors its handler up to the point where the body
// would be written to the store: decode (DecodeBody), then the handler's
// own checks and the domain validation. A refused body must be answered
// with a 4xx whose JSON error has a message (and, for a validation
// failure, the field); an accepted body must be valid by the domain rules
// and survive the JSON round trip it takes through raft unchanged.

// fuzzDaemon is a daemon with just what decodeBody needs.
func fuzzDaemon() *Daemon {
	d := &Daemon{cfg: DefaultConfig()}
	d.cfg.Limits.MaxBodyBytes = 64 << 10
	return d
}

// decodeFuzzBody decodes body into v as handler does; false means it was
// refused, and the refusal has been checked.
func decodeFuzzBody(t *testing.T, decode func(http.ResponseWriter, *http.Request, any) bool, method, path string, body []byte, v any) bool {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if decode(w, r, v) {
		return true
	}
	var e apiError
	if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Message == "" || e.Error.Code != records.CodeInvalid {
		t.Fatalf("refused body %q answered %d %q", body, w.Code, w.Body.String())
	}
	return false
}

// checkDomainRefusal checks that a validation error is answered with a
// 400 naming the field.
func checkDomainRefusal(t *testing.T, body []byte, err error) {
	t.Helper()
	de, ok := records.AsError(err)
	if !ok || de.Code != records.CodeInvalid || de.Field == "" || de.Message == "" {
		t.Fatalf("body %q: refusal %v is not an invalid-input error naming a field", body, err)
	}
	w := httptest.NewRecorder()
	writeDomainError(w, err)
	var e apiError
	if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Message == "" || e.Error.Field != de.Field {
		t.Fatalf("body %q: refusal %v answered %d %q", body, err, w.Code, w.Body.String())
	}
}

// jsonRoundTrip encodes v, decodes it into a fresh value of its type and
// checks the encoding is stable: what the replicas decode is what was
// validated.
func jsonRoundTrip[T any](t *testing.T, v *T) *T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode accepted %+v: %v", v, err)
	}
	var back T
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	b2, err := json.Marshal(&back)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the value:\n %s\n %s (%v)", b, b2, err)
	}
	return &back
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

// checkItemValid asserts the domain rules of Item.Validate on an accepted
// item, independently of it.
func checkItemValid(t *testing.T, it *records.Item) {
	t.Helper()
	switch {
	case strings.TrimSpace(it.Code) == "" || strings.ContainsAny(it.Code, "/ \t\r\n") || utf8.RuneCountInString(it.Code) > 64:
		t.Fatalf("accepted item with code %q", it.Code)
	case strings.TrimSpace(it.Name) == "":
		t.Fatalf("accepted item %q without a name", it.Code)
	case it.Type.Code == "":
		t.Fatalf("accepted item %q without a type", it.Code)
	case it.Level < 0 || it.Level > 6:
		t.Fatalf("accepted item %q of level %d", it.Code, it.Level)
	}
	for _, l := range []*records.Limit{it.LegalLimit, it.PromisedLimit} {
		if l != nil && (l.Value <= 0 || !slices.Contains([]string{"working_days", "days", "hours"}, l.Unit)) {
			t.Fatalf("accepted item %q with limit %+v", it.Code, *l)
		}
	}
	for _, o := range it.Objects {
		if o < 1 || o > 6 {
			t.Fatalf("accepted item %q with object %d", it.Code, o)
		}
	}
	for _, c := range it.Channels {
		if c < 1 || c > 4 {
			t.Fatalf("accepted item %q with channel %d", it.Code, c)
		}
	}
	for _, m := range it.Materials {
		if strings.TrimSpace(m.Name) == "" || m.Originals < 0 || m.Copies < 0 {
			t.Fatalf("accepted item %q with material %+v", it.Code, m)
		}
	}
}

// FuzzPutItemBody: PUT /v1/items/{code} (a station-local item).
func FuzzPutItemBody(f *testing.F) {
	addSeeds(f,
		`{"code":"XC-L-0001","name":"企业开办一窗通办","type":{"code":"20","name":"公共服务"},"basis":"...","legal_limit":{"value":5,"unit":"working_days"},"promised_limit":{"value":1,"unit":"working_days"},"instant":false,"objects":[2],"materials":[{"name":"申请书","required":true,"originals":1,"copies":0}]}`,
		`{"name":"无编码","type":{"code":"21"}}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"01"},"origin":"local","version":7,"channels":[1,4],"level":6}`,
		`{"code":"OTHER","name":"x","type":{"code":"20"}}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"20"},"origin":"district"}`,
		`{"code":"XC-L-0001","name":" ","type":{"code":"20"}}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"99"}}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"20"},"promised_limit":{"value":0,"unit":"days"}}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"20"},"legal_limit":{"value":3,"unit":"weeks"}}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"20"},"objects":[7]}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"20"},"materials":[{"name":"","originals":1}]}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"20"},"materials":[{"name":"m","copies":-1}]}`,
		`{"code":"XC-L-0001","name":"x","type":{"code":"20"},"department":{"credit_code":"123"}}`,
		`{"code":"XC-L-0001","name":"x","type":"20"}`,
		`{"code":"XC-L-0001","colour":"red"}`,
		`[]`, `null`, `{`, `{}{}`, ``,
	)
	d := fuzzDaemon()
	const code = "XC-L-0001"
	f.Fuzz(func(t *testing.T, body []byte) {
		var it records.Item
		if !decodeFuzzBody(t, d.decodeBody, http.MethodPut, "/v1/items/"+code, body, &it) {
			return
		}
		// handlePutItem's checks.
		if err := it.PrepareWrite(code, records.OriginLocal); err != nil {
			checkDomainRefusal(t, body, err)
			return
		}
		if it.Code != code || it.Origin != records.OriginLocal || it.Version != 0 {
			t.Fatalf("accepted item %+v", it)
		}
		checkItemValid(t, &it)
		back := jsonRoundTrip(t, &it)
		if err := back.Validate(); err != nil {
			t.Fatalf("accepted item is invalid after the round trip: %v", err)
		}
	})
}

// checkEvaluationBody runs the validation a station and the center apply
// to an evaluation body and checks its outcome.
func checkEvaluationBody(t *testing.T, body []byte, b EvaluationBody) {
	t.Helper()
	e := b.Evaluation()
	if err := e.Validate(); err != nil {
		checkDomainRefusal(t, body, err)
		return
	}
	if e.ID != "" && (len(e.ID) > 64 || strings.ContainsAny(e.ID, "/ ")) {
		t.Fatalf("accepted evaluation id %q", e.ID)
	}
	if !slices.Contains(records.Levels, e.Level) {
		t.Fatalf("accepted level %q", e.Level)
	}
	if _, ok := records.EvaluationChannels[e.Channel]; !ok {
		t.Fatalf("accepted channel %d", e.Channel)
	}
	if (e.Attempt != 1 && e.Attempt != 2) || (b.Attempt == 0 && e.Attempt != 1) {
		t.Fatalf("accepted attempt %d (body %d)", e.Attempt, b.Attempt)
	}
	if len(e.Text) > 4000 {
		t.Fatalf("accepted a text of %d bytes", len(e.Text))
	}
	back := jsonRoundTrip(t, &e)
	if err := back.Validate(); err != nil {
		t.Fatalf("accepted evaluation is invalid after the round trip: %v", err)
	}
}

// evaluationSeeds are bodies of POST /v1/cases/{id}/evaluations, valid
// and not.
var evaluationSeeds = []string{
	`{"id":"optional","level":"不满意","channel":4,"text":"等候时间太长"}`,
	`{"level":"非常满意","channel":1}`,
	`{"level":"满意","channel":6,"attempt":2,"evaluator":"回访员"}`,
	`{"level":"满意","channel":8}`,
	`{"level":"ok","channel":1}`,
	`{"level":"满意","channel":1,"attempt":3}`,
	`{"level":"满意","channel":1,"attempt":-1}`,
	`{"id":"a/b","level":"满意","channel":1}`,
	`{"id":"` + strings.Repeat("i", 65) + `","level":"满意","channel":1}`,
	`{"level":"满意","channel":1,"text":"` + strings.Repeat("长", 1400) + `"}`,
	`{"level":"满意","channel":"1"}`,
	`{"level":"满意","channel":1.5}`,
	`{"level":"满意","channel":1,"stars":5}`,
	`[]`, `null`, `{`, `{}`, ``,
}

// FuzzEvaluationBody: POST /v1/cases/{id}/evaluations.
func FuzzEvaluationBody(f *testing.F) {
	addSeeds(f, evaluationSeeds...)
	d := fuzzDaemon()
	f.Fuzz(func(t *testing.T, body []byte) {
		var b EvaluationBody
		if !decodeFuzzBody(t, d.decodeBody, http.MethodPost, "/v1/cases/c-1/evaluations", body, &b) {
			return
		}
		checkEvaluationBody(t, body, b)
	})
}

// checkWorkOrderEventBody runs the validation a station and the center
// apply to a work-order event body and checks its outcome.
func checkWorkOrderEventBody(t *testing.T, body []byte, b WorkOrderEventBody) {
	t.Helper()
	ev := b.Event()
	if err := ev.Validate(); err != nil {
		checkDomainRefusal(t, body, err)
		return
	}
	if ev.ID != "" && (len(ev.ID) > 64 || strings.ContainsAny(ev.ID, "/ ")) {
		t.Fatalf("accepted work-order event id %q", ev.ID)
	}
	if !slices.Contains([]string{records.WorkOrderAssigned, "verifying", "rectifying", "replied", "closed", records.WorkOrderInvalid, records.WorkOrderCannotRectify}, ev.Type) {
		t.Fatalf("accepted work-order event type %q", ev.Type)
	}
	if strings.TrimSpace(ev.Actor) == "" {
		t.Fatalf("accepted work-order event without an actor: %+v", ev)
	}
	if ev.Type == records.WorkOrderAssigned && strings.TrimSpace(ev.Owner) == "" {
		t.Fatalf("accepted assignment without an owner: %+v", ev)
	}
	if (ev.Type == records.WorkOrderInvalid || ev.Type == records.WorkOrderCannotRectify) && (strings.TrimSpace(ev.Approver) == "" || ev.Approver == ev.Actor) {
		t.Fatalf("accepted %s without another approver: %+v", ev.Type, ev)
	}
	if len(ev.Note) > 4000 {
		t.Fatalf("accepted a note of %d bytes", len(ev.Note))
	}
	back := jsonRoundTrip(t, &ev)
	if err := back.Validate(); err != nil {
		t.Fatalf("accepted work-order event is invalid after the round trip: %v", err)
	}
}

var workOrderEventSeeds = []string{
	`{"type":"assigned","actor":"组长","owner":"clerk-07"}`,
	`{"id":"w-e-1","type":"replied","actor":"clerk-07","note":"已电话回复"}`,
	`{"type":"invalid","actor":"a","approver":"b","note":"恶意差评"}`,
	`{"type":"closed","actor":"a"}`,
	`{"type":"open","actor":"a"}`,
	`{"type":"assigned","actor":"a"}`,
	`{"type":"invalid","actor":"a","approver":"a"}`,
	`{"type":"cannot_rectify","actor":"a"}`,
	`{"type":"replied","actor":"  "}`,
	`{"type":"replied","actor":"a","note":"` + strings.Repeat("n", 4001) + `"}`,
	`{"id":"a b","type":"replied","actor":"a"}`,
	`{"type":"replied","actor":"a","owner":7}`,
	`{"type":"replied","actor":"a","due":"tomorrow"}`,
	`[]`, `null`, `{`, `{}`, ``,
}

// FuzzWorkOrderEventBody: POST /v1/workorders/{id}/events.
func FuzzWorkOrderEventBody(f *testing.F) {
	addSeeds(f, workOrderEventSeeds...)
	d := fuzzDaemon()
	f.Fuzz(func(t *testing.T, body []byte) {
		var b WorkOrderEventBody
		if !decodeFuzzBody(t, d.decodeBody, http.MethodPost, "/v1/workorders/w-1/events", body, &b) {
			return
		}
		checkWorkOrderEventBody(t, body, b)
	})
}

// FuzzResolveConflictBody: POST /v1/conflicts/{id}/resolve.
func FuzzResolveConflictBody(f *testing.F) {
	addSeeds(f,
		`{"actor":"站长","note":"已与申请人确认，按线下记录处理"}`,
		`{"actor":"a","note":"n"}`,
		`{"actor":"","note":"n"}`,
		`{"actor":"a","note":"\t"}`,
		`{"actor":"a"}`,
		`{"actor":"a","note":"`+strings.Repeat("注", 1001)+`"}`,
		`{"actor":"a","note":"n","kept":"case"}`,
		`{"actor":1,"note":"n"}`,
		`[]`, `null`, `{`, `{}`, ``,
	)
	d := fuzzDaemon()
	f.Fuzz(func(t *testing.T, body []byte) {
		var b resolveBody
		if !decodeFuzzBody(t, d.decodeBody, http.MethodPost, "/v1/conflicts/x/resolve", body, &b) {
			return
		}
		res := records.Resolution{Actor: b.Actor, Note: b.Note}
		if err := res.Validate(); err != nil {
			checkDomainRefusal(t, body, err)
			return
		}
		if strings.TrimSpace(res.Actor) == "" || strings.TrimSpace(res.Note) == "" || utf8.RuneCountInString(res.Note) > 1000 {
			t.Fatalf("accepted resolution %+v", res)
		}
		back := jsonRoundTrip(t, &res)
		if err := back.Validate(); err != nil {
			t.Fatalf("accepted resolution is invalid after the round trip: %v", err)
		}
	})
}
