package center

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stationsync/stationsync/daemon"
	"github.com/stationsync/stationsync/records"
)

// Fuzz targets for the JSON bodies of the center's API. Like
// daemon/fuzz_test.go, each runs the handler's decoding and checks up to
// the point where the body would be written (through the center's raft
// node): a refused body is a 4xx whose JSON error has a message (and the
// field when a validation failed); an accepted one is valid by the domain
// rules and survives the JSON round trip it takes through raft.

const fuzzStation = "XC-YCH-01"

type fuzzAPIError struct {
	Error struct {
		Code    string `json:"code"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"error"`
}

func fuzzCenter() *Center {
	return &Center{stations: []daemon.StationRef{{ID: fuzzStation}, {ID: "XC-YCH-02"}}, loc: time.UTC}
}

// decodeCenterBody decodes body as the center's handlers do (limit
// bytes); false means refused, and the refusal has been checked.
func decodeCenterBody(t *testing.T, method, path string, body []byte, v any, limit int64) bool {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if daemon.DecodeBody(w, r, v, limit) {
		return true
	}
	checkAnswer(t, body, w, http.StatusBadRequest, "")
	return false
}

// checkAnswer checks an error answer: the status, a JSON error with a
// message and, if field is not "", that field.
func checkAnswer(t *testing.T, body []byte, w *httptest.ResponseRecorder, status int, field string) {
	t.Helper()
	var e fuzzAPIError
	if w.Code != status || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Message == "" || e.Error.Code == "" || (field != "" && e.Error.Field != field) {
		t.Fatalf("body %q answered %d %q, want %d with a message (field %q)", body, w.Code, w.Body.String(), status, field)
	}
}

// checkRefusal checks a validation error and its answer: 400 naming a
// field.
func checkRefusal(t *testing.T, body []byte, err error) {
	t.Helper()
	de, ok := records.AsError(err)
	if !ok || de.Code != records.CodeInvalid || de.Field == "" || de.Message == "" {
		t.Fatalf("body %q: refusal %v is not an invalid-input error naming a field", body, err)
	}
	w := httptest.NewRecorder()
	daemon.WriteDomainError(w, err)
	checkAnswer(t, body, w, http.StatusBadRequest, de.Field)
}

// stableJSON checks that v encodes, decodes and encodes again to the same
// bytes, and returns the decoded copy.
func stableJSON[T any](t *testing.T, v *T) *T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode accepted %+v: %v", v, err)
	}
	var back T
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if b2, err := json.Marshal(&back); err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the value:\n %s\n %s (%v)", b, b2, err)
	}
	return &back
}

func addBodySeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

// FuzzCatalogueItemBody: PUT /v1/catalogue/items/{code} (a district item).
func FuzzCatalogueItemBody(f *testing.F) {
	addBodySeeds(f,
		`{"code":"XC-D-0001","name":"企业开办一窗通办","type":{"code":"20","name":"公共服务"},"legal_limit":{"value":5,"unit":"working_days"},"promised_limit":{"value":1,"unit":"working_days"},"objects":[2],"materials":[{"name":"申请书","required":true,"originals":1}]}`,
		`{"name":"路径编码","type":{"code":"01"},"origin":"district","version":9}`,
		`{"code":"XC-D-0001","name":"x","type":{"code":"20"},"origin":"local"}`,
		`{"code":"XC-D-9999","name":"x","type":{"code":"20"}}`,
		`{"code":"XC-D-0001","name":"","type":{"code":"20"}}`,
		`{"code":"XC-D-0001","name":"x","type":{"code":""}}`,
		`{"code":"XC-D-0001","name":"x","type":{"code":"20"},"level":9}`,
		`{"code":"XC-D-0001","name":"x","type":{"code":"20"},"channels":[0]}`,
		`{"code":"XC-D-0001","name":"x","type":{"code":"20"},"promised_limit":{"value":-2,"unit":"hours"}}`,
		`{"code":"XC-D-0001","name":"x","type":{"code":"20"},"version":"1"}`,
		`{"code":"XC-D-0001","owner":"x"}`,
		`[]`, `null`, `{`, `{} []`, ``,
	)
	const code = "XC-D-0001"
	f.Fuzz(func(t *testing.T, body []byte) {
		var it records.Item
		if !decodeCenterBody(t, http.MethodPut, "/v1/catalogue/items/"+code, body, &it, 1<<20) {
			return
		}
		// handlePutCatalogueItem's checks.
		if err := it.PrepareWrite(code, records.OriginDistrict); err != nil {
			checkRefusal(t, body, err)
			return
		}
		switch {
		case it.Code != code || it.Origin != records.OriginDistrict || it.Version != 1:
			t.Fatalf("accepted item %+v", it)
		case strings.TrimSpace(it.Name) == "" || it.Type.Code == "" || it.Level < 0 || it.Level > 6:
			t.Fatalf("accepted item %+v", it)
		}
		for _, l := range []*records.Limit{it.LegalLimit, it.PromisedLimit} {
			if l != nil && (l.Value <= 0 || !slices.Contains([]string{"working_days", "days", "hours"}, l.Unit)) {
				t.Fatalf("accepted limit %+v", *l)
			}
		}
		for _, o := range it.Objects {
			if o < 1 || o > 6 {
				t.Fatalf("accepted object %d", o)
			}
		}
		for _, c := range it.Channels {
			if c < 1 || c > 4 {
				t.Fatalf("accepted channel %d", c)
			}
		}
		for _, m := range it.Materials {
			if strings.TrimSpace(m.Name) == "" || m.Originals < 0 || m.Copies < 0 {
				t.Fatalf("accepted material %+v", m)
			}
		}
		if err := stableJSON(t, &it).Validate(); err != nil {
			t.Fatalf("accepted item is invalid after the round trip: %v", err)
		}
	})
}

// FuzzTokenBody: POST /v1/tokens, through the real handler. The test
// center has no CA folder, so an accepted body is answered 409 no_ca
// (the next step after the checks of the body).
func FuzzTokenBody(f *testing.F) {
	addBodySeeds(f,
		`{"station":"XC-YCH-01"}`,
		`{"station":"XC-YCH-02","ttl":"72h"}`,
		`{"station":"XC-YCH-01","ttl":"1m"}`,
		`{"station":"XC-YCH-01","ttl":"720h"}`,
		`{"station":"XC-YCH-01","ttl":"721h"}`,
		`{"station":"XC-YCH-01","ttl":"59s"}`,
		`{"station":"XC-YCH-01","ttl":"-1h"}`,
		`{"station":"XC-YCH-01","ttl":"tomorrow"}`,
		`{"station":"XC-YCH-01","ttl":3600}`,
		`{"station":"XC-OTHER"}`,
		`{"station":""}`,
		`{"station":"XC-YCH-01","node":"pc-1"}`,
		`{"station":"XC-YCH-01","ttl":"`+strings.Repeat("9", 5000)+`h"}`,
		`[]`, `null`, `{`, `{}`, ``,
	)
	c := fuzzCenter()
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/tokens", bytes.NewReader(body))
		c.handleNewToken(w, r)
		if w.Code == http.StatusBadRequest {
			checkAnswer(t, body, w, http.StatusBadRequest, "")
			var e fuzzAPIError
			json.Unmarshal(w.Body.Bytes(), &e)
			// A validation failure names station or ttl; a decoding
			// failure may name the field it could not decode (as JSON
			// decodes it: invalid UTF-8 becomes U+FFFD, escapes such as
			// \b or \u0041 become what they stand for).
			if f := e.Error.Field; f != "" && f != "station" && f != "ttl" && !strings.Contains(asJSONDecodes(body), f) && !slices.Contains(jsonStrings(body), f) {
				t.Fatalf("body %q: refusal names field %q", body, e.Error.Field)
			}
			return
		}
		checkAnswer(t, body, w, http.StatusConflict, "")
		var b tokenBody
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("accepted body %q does not decode: %v", body, err)
		}
		if !c.knowsStation(b.Station) {
			t.Fatalf("accepted a token for station %q", b.Station)
		}
		if b.TTL != "" {
			d, err := time.ParseDuration(b.TTL)
			if err != nil || d < time.Minute || d > 30*24*time.Hour {
				t.Fatalf("accepted ttl %q", b.TTL)
			}
		}
	})
}

// FuzzCenterEvaluationBody: POST /v1/cases/{id}/evaluations?station= at
// the center.
func FuzzCenterEvaluationBody(f *testing.F) {
	addBodySeeds(f,
		`{"level":"不满意","channel":6,"text":"回访：等候时间太长","evaluator":"回访员"}`,
		`{"id":"ev-c-1","level":"满意","channel":1,"attempt":2}`,
		`{"level":"满意","channel":0}`,
		`{"level":"很好","channel":1}`,
		`{"level":"满意","channel":1,"attempt":5}`,
		`{"id":"x/y","level":"满意","channel":1}`,
		`{"level":"满意","channel":1,"text":"`+strings.Repeat("t", 4001)+`"}`,
		`{"level":"满意","channel":[1]}`,
		`{"level":"满意","channel":1,"station":"XC-YCH-01"}`,
		`[]`, `null`, `{`, `{}`, ``,
	)
	c := fuzzCenter()
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/cases/c-1/evaluations?station="+fuzzStation, nil)
		if st, err := c.station(r); err != nil || st != fuzzStation {
			t.Fatalf("station %q: %v", st, err)
		}
		var b daemon.EvaluationBody
		if !decodeCenterBody(t, http.MethodPost, "/v1/cases/c-1/evaluations?station="+fuzzStation, body, &b, 1<<20) {
			return
		}
		e := b.Evaluation()
		if err := e.Validate(); err != nil {
			checkRefusal(t, body, err)
			return
		}
		if !slices.Contains(records.Levels, e.Level) || (e.Attempt != 1 && e.Attempt != 2) || len(e.Text) > 4000 {
			t.Fatalf("accepted evaluation %+v", e)
		}
		if _, ok := records.EvaluationChannels[e.Channel]; !ok {
			t.Fatalf("accepted channel %d", e.Channel)
		}
		if e.ID != "" && (len(e.ID) > 64 || strings.ContainsAny(e.ID, "/ ")) {
			t.Fatalf("accepted id %q", e.ID)
		}
		if err := stableJSON(t, &e).Validate(); err != nil {
			t.Fatalf("accepted evaluation is invalid after the round trip: %v", err)
		}
	})
}

// FuzzCenterWorkOrderEventBody: POST /v1/workorders/{id}/events?station=
// at the center.
func FuzzCenterWorkOrderEventBody(f *testing.F) {
	addBodySeeds(f,
		`{"type":"invalid","actor":"区中心","approver":"科长","note":"重复评价"}`,
		`{"id":"we-1","type":"assigned","actor":"a","owner":"b"}`,
		`{"type":"closed","actor":"a","note":"已回访"}`,
		`{"type":"cannot_rectify","actor":"a","approver":"a"}`,
		`{"type":"assigned","actor":"a","owner":" "}`,
		`{"type":"reopened","actor":"a"}`,
		`{"type":"closed","actor":""}`,
		`{"type":"closed","actor":"a","note":"`+strings.Repeat("注", 1500)+`"}`,
		`{"type":"closed","actor":["a"]}`,
		`[]`, `null`, `{`, `{}`, ``,
	)
	c := fuzzCenter()
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/workorders/w-1/events?station="+fuzzStation, nil)
		if st, err := c.station(r); err != nil || st != fuzzStation {
			t.Fatalf("station %q: %v", st, err)
		}
		var b daemon.WorkOrderEventBody
		if !decodeCenterBody(t, http.MethodPost, "/v1/workorders/w-1/events?station="+fuzzStation, body, &b, 1<<20) {
			return
		}
		ev := b.Event()
		if err := ev.Validate(); err != nil {
			checkRefusal(t, body, err)
			return
		}
		if strings.TrimSpace(ev.Actor) == "" || len(ev.Note) > 4000 || ev.Type == records.WorkOrderOpen {
			t.Fatalf("accepted work-order event %+v", ev)
		}
		if ev.Type == records.WorkOrderAssigned && strings.TrimSpace(ev.Owner) == "" {
			t.Fatalf("accepted assignment without owner %+v", ev)
		}
		if (ev.Type == records.WorkOrderInvalid || ev.Type == records.WorkOrderCannotRectify) && (strings.TrimSpace(ev.Approver) == "" || ev.Approver == ev.Actor) {
			t.Fatalf("accepted %s without another approver: %+v", ev.Type, ev)
		}
		if err := stableJSON(t, &ev).Validate(); err != nil {
			t.Fatalf("accepted event is invalid after the round trip: %v", err)
		}
	})
}

// jsonStrings are the strings (keys and values) in body as a JSON decoder
// reads them, up to the first error.
func jsonStrings(body []byte) []string {
	var out []string
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

// asJSONDecodes is body with each byte that is not valid UTF-8 replaced by
// U+FFFD, as encoding/json decodes strings.
func asJSONDecodes(body []byte) string {
	var b strings.Builder
	for len(body) > 0 {
		r, n := utf8.DecodeRune(body)
		b.WriteRune(r) // utf8.RuneError for an invalid byte (n == 1)
		body = body[n:]
	}
	return b.String()
}
