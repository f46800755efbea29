package records

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleHead is a stored head as a station writes it: item limit, an
// enterprise applicant, an agent, an evaluation and the fold.
func sampleHead() caseHead {
	at := time.Date(2026, 11, 27, 9, 30, 1, 123456789, time.UTC)
	c := Case{
		ID: "c-1", Station: "XC-01", ItemCode: "XC-L-0001", ItemName: "企业开办一窗通办", Instant: false,
		Limit: &Limit{Value: 5, Unit: "working_days"}, Channel: "window", Actor: "clerk-07",
		Applicant: Applicant{Kind: "enterprise", Name: "苏州某某科技有限公司", CreditCode: "91320507MA1XXXXX", IDType: "111", IDNumber: "320507199001011234", Phone: "13912345678"},
		Agent:     &Applicant{Kind: "person", Name: "李四"},
		State:     "accepted", CreatedAt: at,
		Evaluations: []Evaluation{{ID: "e-1", CaseID: "c-1", Level: "不满意", Channel: 4, Text: "等候时间太长", Attempt: 1, Evaluator: "x", HLC: MakeHLC(at.UnixMilli(), 1), At: at, Node: "pc-1", WorkOrderDays: 3}},
	}
	return caseHead{Case: c, Accepted: true, Last: MakeHLC(at.UnixMilli(), 2), NEvents: 3, Bytes: 1234}
}

// checkHeadCodec checks that h encodes as json.Marshal encodes it and
// that what json.Marshal writes reads back as json.Unmarshal reads it.
// It returns whether both went without encoding/json.
func checkHeadCodec(t *testing.T, name string, h caseHead) bool {
	t.Helper()
	want, err := json.Marshal(&h)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, err := encodeHead(&h)
	if err != nil || string(got) != string(want) {
		t.Fatalf("%s: encodeHead:\ngot  %s (%v)\nwant %s", name, got, err, want)
	}
	_, fastEnc := appendHeadJSON(nil, &h)
	checkDecodeHead(t, name, want)
	_, fastDec := parseHeadJSON(want)
	if fastEnc && !fastDec {
		t.Fatalf("%s: written without encoding/json but not read without it:\n%s", name, want)
	}
	// A case as a station's feed sends it.
	c := h.Case
	wantC, _ := json.Marshal(&c)
	gotC, err := encodeCase(&c)
	if err != nil || string(gotC) != string(wantC) {
		t.Fatalf("%s: encodeCase:\ngot  %s (%v)\nwant %s", name, gotC, err, wantC)
	}
	checkDecodeHead(t, name+" (case)", wantC)
	// The case as a raft entry carries it, and its evaluations.
	ops := []Op{{Kind: OpCreateCase, Case: &c}}
	for i := range c.Evaluations {
		ops = append(ops, Op{Kind: OpEvaluate, Evaluation: &c.Evaluations[i], Offline: i%2 == 0})
	}
	wantOps, _ := json.Marshal(ops)
	gotOps, err := EncodeOps(ops)
	if err != nil || string(gotOps) != string(wantOps) {
		t.Fatalf("%s: EncodeOps:\ngot  %s (%v)\nwant %s", name, gotOps, err, wantOps)
	}
	if !checkParseOps(t, name+" (ops)", wantOps) && fastEnc {
		t.Fatalf("%s: head written without encoding/json, its case as an op not read without it:\n%s", name, wantOps)
	}
	return fastEnc
}

// checkDecodeHead checks that parseHeadJSON, when it reads v, reads what
// json.Unmarshal reads, as a head and as a case.
func checkDecodeHead(t *testing.T, name string, v []byte) {
	t.Helper()
	got, ok := parseHeadJSON(v)
	if !ok {
		return
	}
	var want caseHead
	if err := json.Unmarshal(v, &want); err != nil {
		t.Fatalf("%s: parseHeadJSON read what json.Unmarshal refuses (%v):\n%s", name, err, v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\ngot  %#v\nwant %#v\n%s", name, got, want, v)
	}
	var wantC Case
	if err := json.Unmarshal(v, &wantC); err != nil || !reflect.DeepEqual(got.Case, wantC) {
		t.Fatalf("%s: as a case (%v):\ngot  %#v\nwant %#v", name, err, got.Case, wantC)
	}
}

func TestHeadJSONMatchesEncodingJSON(t *testing.T) {
	base := sampleHead()
	ev := sampleEvent()
	ev.Data = json.RawMessage(`{"note":"材料齐全","n":[1,{"a":"}"}]}`)
	cases := []struct {
		name string
		edit func(*caseHead)
		fast bool
	}{
		{"stored head", func(*caseHead) {}, true},
		{"no optional fields", func(h *caseHead) {
			h.ItemName, h.Limit, h.Agent, h.Evaluations = "", nil, nil, nil
			h.Applicant = Applicant{Kind: "person", Name: "张三"}
			h.Accepted, h.Last, h.NEvents, h.Bytes = false, "", 0, 0
		}, true},
		{"case with its first event, as a feed sends it", func(h *caseHead) { h.Events = []Event{ev} }, true},
		{"two events, pending", func(h *caseHead) { h.Events, h.Pending = []Event{ev, ev}, true }, true},
		{"empty events", func(h *caseHead) { h.Events = []Event{} }, true},
		{"instant, tolerance, commitment, negative limit", func(h *caseHead) {
			h.Instant, h.Tolerance, h.Commitment, h.Limit = true, true, true, &Limit{Value: -3}
		}, true},
		{"pending evaluation without text", func(h *caseHead) {
			h.Evaluations = append(h.Evaluations, Evaluation{ID: "e-2", Level: "满意", Attempt: 2, Pending: true})
		}, true},
		{"other zone", func(h *caseHead) { h.CreatedAt = h.CreatedAt.In(time.FixedZone("CST", 8*3600)) }, true},
		{"name with quote", func(h *caseHead) { h.Applicant.Name = `a"b` }, false},
		{"agent name with html", func(h *caseHead) { h.Agent.Name = "a&b" }, false},
		{"evaluation text with newline", func(h *caseHead) { h.Evaluations[0].Text = "a\nb" }, false},
		{"event with spaced data", func(h *caseHead) { e := ev; e.Data = json.RawMessage(`{ "a":1}`); h.Events = []Event{e} }, false},
		{"year 10000", func(h *caseHead) { h.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
	}
	for _, tc := range cases {
		h := sampleHead()
		h.Evaluations = append([]Evaluation(nil), base.Evaluations...)
		a := *base.Agent
		h.Agent = &a
		tc.edit(&h)
		if tc.name == "year 10000" {
			if _, err := encodeHead(&h); err == nil {
				t.Errorf("%s: encodeHead took a time json.Marshal refuses", tc.name)
			}
			continue
		}
		if fast := checkHeadCodec(t, tc.name, h); fast != tc.fast {
			t.Errorf("%s: without encoding/json: %v, want %v", tc.name, fast, tc.fast)
		}
	}
}

// Random heads, with strings that need escaping now and then, encode and
// read back as encoding/json does.
func TestHeadJSONRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", "王芳", "x y", `q"`, `b\s`, "<", "&amp", "\t", "\u2028", "\xff", "2026-11", "null", "}"}
	s := func() string {
		if rng.IntN(10) < 8 {
			return strs[rng.IntN(4)]
		}
		return strs[rng.IntN(len(strs))]
	}
	n := func() int { return []int{0, 1, -1, 5, 1 << 40}[rng.IntN(5)] }
	app := func() Applicant {
		return Applicant{Kind: s(), Name: s(), CreditCode: s(), IDType: s(), IDNumber: s(), Phone: s()}
	}
	at := time.Date(2026, 11, 27, 9, 30, 1, 123456789, time.UTC)
	fast := 0
	for i := range 3000 {
		h := caseHead{Case: Case{
			ID: s(), Station: s(), ItemCode: s(), ItemName: s(), Instant: rng.IntN(2) == 0,
			Channel: s(), Actor: s(), Applicant: app(), Tolerance: rng.IntN(2) == 0, Commitment: rng.IntN(2) == 0,
			State: s(), CreatedAt: at.Add(time.Duration(rng.IntN(1e9)) * time.Millisecond), Pending: rng.IntN(3) == 0,
		}, Accepted: rng.IntN(2) == 0, Last: HLC(s()), NEvents: n(), Bytes: n()}
		if rng.IntN(2) == 0 {
			h.Limit = &Limit{Value: n(), Unit: s()}
		}
		if rng.IntN(2) == 0 {
			a := app()
			h.Agent = &a
		}
		for range rng.IntN(3) - 1 + 1 {
			ev := sampleEvent()
			ev.Actor = s()
			if rng.IntN(2) == 0 {
				ev.Data = json.RawMessage(`{"k":"` + []string{"v", "}{", `\"`, "<"}[rng.IntN(4)] + `"}`)
			}
			h.Events = append(h.Events, ev)
		}
		if rng.IntN(4) == 0 {
			h.Events = []Event{}
		}
		for range rng.IntN(3) {
			h.Evaluations = append(h.Evaluations, Evaluation{ID: s(), CaseID: s(), Level: s(), Channel: n(), Text: s(), Attempt: n(), Evaluator: s(), HLC: HLC(s()), At: at, Node: s(), WorkOrderDays: n(), Pending: rng.IntN(2) == 0})
		}
		if checkHeadCodec(t, "random "+string(rune('0'+i%10)), h) {
			fast++
		}
	}
	if fast < 150 {
		t.Errorf("only %d of 3000 random heads went without encoding/json", fast)
	}
}

func FuzzDecodeHead(f *testing.F) {
	h := sampleHead()
	b, _ := json.Marshal(&h)
	f.Add(b)
	h.Events = []Event{sampleEvent()}
	h.Events[0].Data = json.RawMessage(`{"a":"}"}`)
	b, _ = json.Marshal(&h.Case)
	f.Add(b)
	f.Add([]byte(`{"id":"c","station":"s","item_code":"i","instant":false,"channel":"w","actor":"a","applicant":{"kind":"person","name":"n"},"agent":null,"tolerance":false,"commitment":false,"state":"received","created_at":"2026-11-27T09:30:01Z","events":null,"event_count":01}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		checkDecodeHead(t, "fuzzed", v)
	})
}

// EncodeOps writes what json.Marshal writes, itself for consolidate ops,
// case creations, case events and evaluations, through json.Marshal for
// the rest.
func TestEncodeOpsMatchesMarshal(t *testing.T) {
	ev := sampleEvent()
	ev.Data = json.RawMessage(`{"note":"材料齐全"}`)
	page := func(data ...string) *PulledPage {
		p := &PulledPage{Station: "XC-01", ClusterID: "cl-1", From: 7, Head: 99}
		for i, d := range data {
			p.Changes = append(p.Changes, PulledChange{Seq: uint64(8 + i), Change: Change{Kind: "event", Key: "c-1", Data: json.RawMessage(d), Stored: "not written"}})
		}
		return p
	}
	sample := sampleHead()
	withEvent := sample.Case
	withEvent.Events = []Event{ev}
	cases := []struct {
		name string
		ops  []Op
		fast bool
	}{
		{"case event", []Op{{Kind: OpAppendEvent, Event: &ev}}, true},
		{"offline case event and a page", []Op{{Kind: OpAppendEvent, Event: &ev, Offline: true}, {Kind: OpConsolidate, Pull: page(`{"a":1}`, `null`)}}, true},
		{"page without changes", []Op{{Kind: OpConsolidate, Pull: page()}}, true},
		{"page with empty changes", []Op{{Kind: OpConsolidate, Pull: &PulledPage{Changes: []PulledChange{}}}}, true},
		{"page with spaced data", []Op{{Kind: OpConsolidate, Pull: page(`{"a": 1}`)}}, false},
		{"page with html in data", []Op{{Kind: OpConsolidate, Pull: page(`{"a":"<"}`)}}, false},
		{"station with quote", []Op{{Kind: OpConsolidate, Pull: &PulledPage{Station: `a"`}}}, false},
		{"case creation", []Op{{Kind: OpCreateCase, Case: &sample.Case}}, true},
		{"bare case creation", []Op{{Kind: OpCreateCase, Case: &Case{ID: "c"}}}, true},
		{"case creation with its first event", []Op{{Kind: OpCreateCase, Case: &withEvent}}, true},
		{"case creation with html", []Op{{Kind: OpCreateCase, Case: &Case{ID: "c", ItemName: "<b>"}}}, false},
		{"evaluation", []Op{{Kind: OpEvaluate, Evaluation: &sample.Evaluations[0]}, {Kind: OpAppendEvent, Event: &ev}}, true},
		{"offline evaluation", []Op{{Kind: OpEvaluate, Evaluation: &sample.Evaluations[0], Offline: true}}, true},
		{"an item", []Op{{Kind: OpPutItem, Item: &Item{Code: "XC-L-0001"}}}, false},
		{"case event with a station", []Op{{Kind: OpAppendEvent, Event: &ev, Station: "x"}}, false},
		{"case event and evaluation in one op", []Op{{Kind: OpAppendEvent, Event: &ev, Evaluation: &sample.Evaluations[0]}}, false},
	}
	for _, tc := range cases {
		want, err := json.Marshal(tc.ops)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodeOps(tc.ops)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s:\ngot  %s (%v)\nwant %s", tc.name, got, err, want)
		}
		w := jsonWriter{ok: true}
		for i := range tc.ops {
			w.op(&tc.ops[i])
		}
		if w.ok != tc.fast {
			t.Errorf("%s: written without json.Marshal: %v, want %v", tc.name, w.ok, tc.fast)
		}
	}
	// Data json.Marshal refuses is refused, never written into an entry.
	for _, d := range []string{``, `{"a":`, `{"a":1}}`} {
		bad := ev
		bad.Data = json.RawMessage(d)
		badCase := Case{ID: "c", Events: []Event{bad}}
		for _, ops := range [][]Op{{{Kind: OpConsolidate, Pull: page(d)}}, {{Kind: OpAppendEvent, Event: &bad}}, {{Kind: OpCreateCase, Case: &badCase}}} {
			if d == "" && ops[0].Pull == nil {
				continue // empty event data is left out (omitempty)
			}
			if b, err := EncodeOps(ops); err == nil {
				t.Errorf("data %q: encoded as %s", d, b)
			}
		}
	}
}

// jsonWriter.op writes an op only when every field but Kind, Offline and
// one of Pull, Case, Event or Evaluation is empty, so a field added to Op
// must be added there.
func TestOpFieldsKnownToEncodeOps(t *testing.T) {
	known := "Kind Item Case Event Evaluation WorkOrderID WorkOrderEvent ConflictID Pull Station Seq Settings Token Resolution Offline"
	var names []string
	for f := range reflect.TypeFor[Op]().Fields() {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != known {
		t.Fatalf("Op's fields are now\n%s\nwere\n%s\ncheck jsonWriter.op (casejson.go) and update this list", got, known)
	}
}

// checkParseOps checks that ParseOpsJSON, when it reads v, reads what
// json.Unmarshal reads.
func checkParseOps(t *testing.T, name string, v []byte) bool {
	t.Helper()
	got, ok := ParseOpsJSON(v)
	if !ok {
		return false
	}
	var want []Op
	if err := json.Unmarshal(v, &want); err != nil {
		t.Fatalf("%s: ParseOpsJSON read what json.Unmarshal refuses (%v):\n%s", name, err, v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\ngot  %#v\nwant %#v\n%s", name, got, want, v)
	}
	return true
}

func TestParseOpsReadsEncodeOps(t *testing.T) {
	ev := sampleEvent()
	ev.Data = json.RawMessage(`{"note":"材料齐全","x":[1,"]"]}`)
	sample := sampleHead()
	withEvent := sample.Case
	withEvent.Events = []Event{ev}
	page := &PulledPage{Station: "XC-01", ClusterID: "cl-1", From: 7, Head: 99, Changes: []PulledChange{
		{Seq: 8, Change: Change{Kind: "event", Key: "c-1", Data: json.RawMessage(`{"a":"}"}`)}},
		{Seq: 9, Change: Change{Kind: "case", Key: "c-2", Data: json.RawMessage(`null`)}},
		{Seq: 10, Change: Change{Kind: "x", Key: "k", Data: json.RawMessage(`-1.5e3`)}},
		{Seq: 11, Change: Change{Kind: "x", Key: "k", Data: json.RawMessage(`"s\"]"`)}},
	}}
	for _, tc := range []struct {
		name string
		ops  []Op
	}{
		{"case event", []Op{{Kind: OpAppendEvent, Event: &ev}}},
		{"page and offline event", []Op{{Kind: OpConsolidate, Pull: page}, {Kind: OpAppendEvent, Event: &ev, Offline: true}}},
		{"empty page", []Op{{Kind: OpConsolidate, Pull: &PulledPage{}}}},
		{"page with no changes", []Op{{Kind: OpConsolidate, Pull: &PulledPage{Changes: []PulledChange{}}}}},
		{"none", []Op{}},
		{"case creations, an evaluation, an event", []Op{{Kind: OpCreateCase, Case: &sample.Case}, {Kind: OpCreateCase, Case: &withEvent, Offline: true}, {Kind: OpEvaluate, Evaluation: &sample.Evaluations[0]}, {Kind: OpAppendEvent, Event: &ev}}},
		{"case with no events", []Op{{Kind: OpCreateCase, Case: &Case{ID: "c", Events: []Event{}}}}},
	} {
		b, err := EncodeOps(tc.ops)
		if err != nil {
			t.Fatal(err)
		}
		if !checkParseOps(t, tc.name, b) {
			t.Errorf("%s: not read without json.Unmarshal:\n%s", tc.name, b)
		}
	}
	for _, v := range []string{
		`[{"kind":"consolidate","pull":{"station":"s","cluster_id":"c","from":01,"changes":null,"head":1}}]`,
		`[{"kind":"consolidate","pull":{"station":"s","cluster_id":"c","from":1,"changes":[{"seq":1,"kind":"k","key":"k","data":{"a":}}],"head":1}}]`,
		`[{"kind":"create_case","case":{"id":"c"}}]`,
		`[{"kind":"append_event","event":{"id":"e"}} ]`,
		`[{"kind":"evaluate","evaluation":null}]`,
		`[{"kind":"create_case","case":{"id":"c","station":"s","item_code":"i","instant":false,"channel":"w","actor":"a","applicant":{"kind":"person","name":"n"},"agent":null,"tolerance":false,"commitment":false,"state":"received","created_at":"2026-11-27T09:30:01Z","events":null,"fold_accepted":true}}]`,
	} {
		if checkParseOps(t, "refused", []byte(v)) {
			t.Errorf("read without json.Unmarshal: %s", v)
		}
	}
}

func FuzzParseOps(f *testing.F) {
	ev := sampleEvent()
	ev.Data = json.RawMessage(`{"a":[1,"]"]}`)
	b, _ := EncodeOps([]Op{{Kind: OpConsolidate, Pull: &PulledPage{Station: "s", ClusterID: "c", From: 1, Head: 3, Changes: []PulledChange{{Seq: 2, Change: Change{Kind: "event", Key: "k", Data: json.RawMessage(`{"x":null}`)}}}}}, {Kind: OpAppendEvent, Event: &ev, Offline: true}})
	f.Add(b)
	f.Add([]byte(`[{"kind":"consolidate","pull":{"station":"s","cluster_id":"c","from":0,"changes":[{"seq":1,"kind":"k","key":"k","data":null}],"head":18446744073709551615}}]`))
	h := sampleHead()
	h.Events = []Event{ev}
	b, _ = EncodeOps([]Op{{Kind: OpCreateCase, Case: &h.Case}, {Kind: OpEvaluate, Evaluation: &h.Evaluations[0], Offline: true}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, v []byte) {
		checkParseOps(t, "fuzzed", v)
	})
}

// deepArray is a valid JSON value nested n arrays deep.
func deepArray(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// Data json.Valid accepts alone can be beyond encoding/json's depth limit
// once inside an event, a case or an op: the fast paths leave it to
// encoding/json, which refuses it (found by review, 2026-11-28).
func TestDeepDataLeftToEncodingJSON(t *testing.T) {
	for _, depth := range []int{9990, 9992, 9993, 9997, 9998, 10000} {
		ev := []byte(`{"id":"e","case_id":"c","type":"t","actor":"a","hlc":"h","at":"2026-11-27T09:30:01Z","data":` + deepArray(depth) + `}`)
		var want Event
		werr := json.Unmarshal(ev, &want)
		if _, err := decodeEvent(ev); (err == nil) != (werr == nil) {
			t.Errorf("depth %d: decodeEvent: %v, json.Unmarshal: %v", depth, err, werr)
		}
		checkParseOps(t, "deep pulled data", []byte(`[{"kind":"consolidate","pull":{"station":"s","cluster_id":"c","from":0,"changes":[{"seq":1,"kind":"item","key":"k","data":`+deepArray(depth)+`}],"head":1}}]`))
		checkParseOps(t, "deep event data", []byte(`[{"kind":"append_event","event":`+string(ev)+`}]`))
		checkDecodeHead(t, "deep event data", []byte(`{"id":"c","station":"s","item_code":"i","instant":false,"channel":"w","actor":"a","applicant":{"kind":"person","name":"n"},"agent":null,"tolerance":false,"commitment":false,"state":"received","created_at":"2026-11-27T09:30:01Z","events":[`+string(ev)+`]}`))
	}
}

// EncodeOps refuses data that would put a raft entry beyond encoding/json's
// depth limit (no node could apply it), and takes data just within it.
func TestEncodeOpsRefusesDataTooDeepForAnEntry(t *testing.T) {
	pull := func(d string) []Op {
		return []Op{{Kind: OpConsolidate, Pull: &PulledPage{Station: "XC-01", Changes: []PulledChange{{Seq: 5, Change: Change{Kind: "item", Key: "k", Data: json.RawMessage(d)}}}}}}
	}
	b, err := EncodeOps(pull(deepArray(9992)))
	if err != nil {
		t.Fatal(err)
	}
	var ops []Op
	if err := json.Unmarshal([]byte(`{"v":1,"ops":`+string(b)+`}`), &struct {
		Ops *[]Op `json:"ops"`
	}{&ops}); err != nil {
		t.Fatalf("data 9,992 deep: the entry does not decode: %v", err)
	}
	if _, err := EncodeOps(pull(deepArray(9993))); err == nil || !strings.Contains(err.Error(), "station XC-01 change 5") {
		t.Errorf("data 9,993 deep: %v, want an error naming the change", err)
	}
	ev := sampleEvent()
	ev.Data = json.RawMessage(deepArray(9995))
	if _, err := EncodeOps([]Op{{Kind: OpCreateCase, Case: &Case{ID: "c", Events: []Event{ev}}}}); err == nil {
		t.Error("event data 9,995 deep inside a case: no error")
	}
}

// FuzzEncodeOps checks the writer: EncodeOps writes what json.Marshal
// writes (or fails where it fails) for ops of every kind jsonWriter.op
// writes itself, with fuzzed strings, numbers, times and data, and
// ParseOpsJSON reads it back as json.Unmarshal does.
func FuzzEncodeOps(f *testing.F) {
	f.Add("c-1", "王芳", `{"note":"材料 齐全"}`, int64(5), int64(1e18), uint8(0))
	f.Add("e\"v", "a<b", "{ \"a\" : 1 }", int64(-1), int64(-1<<62), uint8(0xff))
	f.Add("x", "\u2028", `"\u2028 \\"`, int64(1<<40), int64(1), uint8(0x5a))
	f.Add("", "", `{"a":`, int64(0), int64(0), uint8(0x0f))
	f.Fuzz(func(t *testing.T, id, text, data string, n, unixNano int64, flags uint8) {
		at := time.Unix(0, unixNano).UTC()
		ev := Event{ID: id, CaseID: text, Type: EventAccepted, Actor: text, HLC: HLC(id), At: at, Node: text, Conflict: flags&1 != 0, Pending: flags&2 != 0}
		if data != "" {
			ev.Data = json.RawMessage(data)
		}
		eval := Evaluation{ID: id, CaseID: id, Level: text, Channel: int(n), Text: text, Attempt: int(n), Evaluator: text, HLC: HLC(text), At: at, Node: id, WorkOrderDays: int(n), Pending: flags&4 != 0}
		c := Case{ID: id, Station: text, ItemCode: id, ItemName: text, Instant: flags&8 != 0, Channel: text, Actor: id,
			Applicant: Applicant{Kind: id, Name: text, Phone: text}, State: id, CreatedAt: at, Pending: flags&16 != 0}
		if flags&32 != 0 {
			c.Limit = &Limit{Value: int(n), Unit: text}
			c.Agent = &Applicant{Kind: text, Name: id, IDNumber: text}
			c.Events = []Event{ev}
			c.Evaluations = []Evaluation{eval}
		}
		page := &PulledPage{Station: id, ClusterID: text, From: uint64(n), Head: uint64(unixNano)}
		if flags&64 != 0 {
			page.Changes = []PulledChange{{Seq: uint64(n), Change: Change{Kind: text, Key: id, Data: json.RawMessage(data)}}}
		}
		offline := flags&128 != 0
		ops := []Op{{Kind: OpCreateCase, Case: &c}, {Kind: OpAppendEvent, Event: &ev, Offline: offline}, {Kind: OpEvaluate, Evaluation: &eval}, {Kind: OpConsolidate, Pull: page, Offline: offline}}
		for k := range 1 << len(ops) {
			var some []Op
			for i := range ops {
				if k&(1<<i) != 0 {
					some = append(some, ops[i])
				}
			}
			want, werr := json.Marshal(some)
			got, gerr := EncodeOps(some)
			if (werr == nil) != (gerr == nil) || string(got) != string(want) {
				t.Fatalf("EncodeOps:\ngot  %s (%v)\nwant %s (%v)", got, gerr, want, werr)
			}
			if werr == nil {
				checkParseOps(t, "fuzzed ops", want)
			}
		}
	})
}
