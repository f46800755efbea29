package records

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// sampleEvent is an event as a station PC records it, without data.
func sampleEvent() Event {
	at := time.Date(2026, 11, 27, 9, 30, 1, 123456789, time.UTC)
	return Event{ID: "ev-1", CaseID: "c-1", Type: EventAccepted, Actor: "王芳", HLC: MakeHLC(at.UnixMilli(), 3), At: at, Node: "pc-1"}
}

// encodeEvent writes what json.Marshal writes, and writes it itself (not
// through json.Marshal) for the events a station records.
func TestEncodeEventMatchesMarshal(t *testing.T) {
	base := sampleEvent()
	at := base.At
	cases := []struct {
		name string
		edit func(*Event)
		fast bool // written without json.Marshal
	}{
		{"no data", func(*Event) {}, true},
		{"compact data with spaces and Chinese in strings", func(e *Event) {
			e.Data = json.RawMessage(`{"note":"材料 齐全, ok","n":[1,2.5,true,null],"q":"a\"b\\c"}`)
		}, true},
		{"data ending strings in escaped backslashes", func(e *Event) { e.Data = json.RawMessage(`{"q":"a\\\\","r":["\\\"",1]}`) }, true},
		{"data null", func(e *Event) { e.Data = json.RawMessage(`null`) }, true},
		{"no node, conflict, pending", func(e *Event) { e.Node, e.Conflict, e.Pending = "", true, true }, true},
		{"zero time", func(e *Event) { e.At = time.Time{} }, true},
		{"other zone", func(e *Event) { e.At = at.In(time.FixedZone("CST", 8*3600)) }, true},
		{"data with whitespace", func(e *Event) { e.Data = json.RawMessage("{ \"note\" :\n \"x\" }") }, false},
		{"data with html", func(e *Event) { e.Data = json.RawMessage(`{"note":"<b>&</b>"}`) }, false},
		{"data with U+2028", func(e *Event) { e.Data = json.RawMessage("{\"note\":\"a\u2028b\"}") }, false},
		{"actor with quote", func(e *Event) { e.Actor = `a"b` }, false},
		{"actor with html", func(e *Event) { e.Actor = `a<b` }, false},
		{"actor with control character", func(e *Event) { e.Actor = "a\tb" }, false},
		{"actor with invalid UTF-8", func(e *Event) { e.Actor = "a\xffb" }, false},
		{"node with U+2029", func(e *Event) { e.Node = "pc\u20291" }, false},
	}
	for _, tc := range cases {
		ev := base
		tc.edit(&ev)
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := encodeEvent(ev)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s:\ngot  %s (%v)\nwant %s", tc.name, got, err, want)
		}
		if _, fast := appendEventJSON(nil, ev); fast != tc.fast {
			t.Errorf("%s: written without json.Marshal: %v, want %v", tc.name, fast, tc.fast)
		}
	}
}

func FuzzEncodeEvent(f *testing.F) {
	f.Add("ev-1", "王芳", "pc-1", `{"note":"材料 齐全"}`, false, int64(0))
	f.Add("e\"v", "a<b", "", "{ \"a\" : 1 }", true, int64(1e18))
	f.Add("x", "y", "z", `"\u2028 \\"`, false, int64(-62135596800))
	f.Add("x", "y", "z", `{"q":"a\\\\"," x":[1, 2],"r":"\" "}`, false, int64(1))
	f.Fuzz(func(t *testing.T, id, actor, node, data string, conflict bool, unixNano int64) {
		ev := Event{ID: id, CaseID: "c", Type: EventPaused, Actor: actor, HLC: HLC(node), At: time.Unix(0, unixNano).UTC(), Node: node, Conflict: conflict}
		if data != "" {
			if !json.Valid([]byte(data)) {
				return // stored data is valid JSON
			}
			ev.Data = json.RawMessage(data)
		}
		want, werr := json.Marshal(ev)
		got, gerr := encodeEvent(ev)
		if (werr == nil) != (gerr == nil) || string(got) != string(want) {
			t.Fatalf("got %s (%v), want %s (%v)", got, gerr, want, werr)
		}
	})
}

// Data that is not JSON is refused before anything is written, for an
// event and for a new case's received event (the encoder above trusts it).
func TestInvalidEventDataIsRefused(t *testing.T) {
	st, clock := testStation(t)
	newTestCase(t, st, clock, "c", "P1")
	keys := len(st)
	ev := Event{Type: EventAccepted, Actor: "clerk", Data: json.RawMessage(`{"note":`)}
	PrepareEvent(&ev, "c", "pc-1", clock.Now())
	if _, _, err := Apply(st, Op{Kind: OpAppendEvent, Event: &ev}); err == nil {
		t.Fatal("an event with data that is not JSON was applied")
	} else if de, _ := AsError(err); de == nil || de.Field != "data" || de.Code != CodeInvalid {
		t.Fatalf("got %v, want invalid data", err)
	}
	c := Case{ID: "d", ItemCode: "P1", Channel: "window", Actor: "clerk", Applicant: Applicant{Kind: "person", Name: "张三"}}
	PrepareCase(&c, "XC-IP-01", "pc-1", clock.Now())
	c.Events[0].Data = json.RawMessage(`{"a" 1}`)
	if _, _, err := Apply(st, Op{Kind: OpCreateCase, Case: &c}); err == nil {
		t.Fatal("a case whose received event's data is not JSON was created")
	} else if de, _ := AsError(err); de == nil || de.Field != "events[0].data" {
		t.Fatalf("got %v, want invalid events[0].data", err)
	}
	if len(st) != keys {
		t.Fatalf("refused writes changed the state: %d keys, was %d", len(st), keys)
	}
}

// decodeEvent reads what json.Unmarshal reads, and reads it itself (not
// through json.Unmarshal) for events as encodeEvent stores them.
func TestDecodeEventMatchesUnmarshal(t *testing.T) {
	base := sampleEvent()
	at := base.At
	events := []struct {
		name string
		edit func(*Event)
		fast bool // read without json.Unmarshal
	}{
		{"no data", func(*Event) {}, true},
		{"data with escapes inside", func(e *Event) {
			e.Data = json.RawMessage(`{"note":"材料 齐全, ok","n":[1,2.5,true,null],"q":"a\"b\\c"}`)
		}, true},
		{"data null", func(e *Event) { e.Data = json.RawMessage(`null`) }, true},
		{"data true, conflict", func(e *Event) { e.Data, e.Conflict = json.RawMessage(`true`), true }, true},
		{"data a string", func(e *Event) { e.Data = json.RawMessage(`",\"conflict\":true"`) }, true},
		{"no node, conflict, pending", func(e *Event) { e.Node, e.Conflict, e.Pending = "", true, true }, true},
		{"data ending like the conflict field", func(e *Event) { e.Data = json.RawMessage(`{"x":1,"conflict":true}`) }, true},
		{"other zone", func(e *Event) { e.At = at.In(time.FixedZone("CST", 8*3600)) }, true},
		{"actor with quote", func(e *Event) { e.Actor = `a"b` }, false},
		{"actor with html", func(e *Event) { e.Actor = `a<b` }, false},
		{"actor with invalid UTF-8", func(e *Event) { e.Actor = "a\xffb" }, false},
	}
	for _, tc := range events {
		ev := base
		tc.edit(&ev)
		stored, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		checkDecode(t, tc.name, stored)
		if _, fast := parseEventJSON(stored); fast != tc.fast {
			t.Errorf("%s: read without json.Unmarshal: %v, want %v", tc.name, fast, tc.fast)
		}
	}
	for _, raw := range []string{
		`{"id":"a","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z","data":{"a" 1}}`, // data not JSON
		`{"id":"a","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"yesterday"}`,
		`{"id":"a","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z"} `,
		`{"id":"a","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z","extra":1}`,
		`{"case_id":"c","id":"a","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z"}`,
		`{"id":"a\u0041","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z"}`,
		`{"id":"a","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z","data":{} }`, // found by FuzzDecodeEvent
		`{"id":"a","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z","data": {}}`,
		`{"id":"a","case_id":"c","type":"accepted","actor":"x","hlc":"h","at":"2026-11-27T09:30:01Z","data":{ "a":1 }}`, // kept inside
	} {
		checkDecode(t, raw, []byte(raw))
	}
}

// checkDecode fails unless decodeEvent(v) gives what json.Unmarshal gives,
// error or event.
func checkDecode(t *testing.T, name string, v []byte) {
	t.Helper()
	var want Event
	werr := json.Unmarshal(v, &want)
	got, gerr := decodeEvent(v)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: error %v, json.Unmarshal's %v", name, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\ngot  %#v\nwant %#v", name, got, want)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"id":"ev-1","case_id":"c-1","type":"accepted","actor":"王芳","hlc":"h","at":"2026-11-27T09:30:01.123Z","node":"pc-1","data":{"note":"x"},"conflict":true}`))
	f.Add([]byte(`{"id":"e","case_id":"c","type":"t","actor":"a","hlc":"h","at":"2026-11-27T09:30:01+08:00","data":null,"pending":true}`))
	f.Add([]byte(`{"id":"e","case_id":"c","type":"t","actor":"a","hlc":"h","at":"2026-11-27T09:30:01Z","data":[1,"conflict":true}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		checkDecode(t, "fuzzed", v)
	})
}
