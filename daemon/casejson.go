package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/stationsync/stationsync/internal/jsonlayout"
	"github.com/stationsync/stationsync/records"
)

// A case's events make up most of its JSON (their data is ~1 KiB each),
// and encoding/json compacts and checks the data of every event again
// when it writes it (json.RawMessage is a Marshaler). The answer to every
// case write holds the whole case, so case views are written here: when
// the view's strings are plain and its data compact, all of it without
// encoding/json (records.AppendCaseFieldsJSON, the events with
// records.AppendEventJSON, which copies data that is already compact, and
// the answer's other members with appendMembers); otherwise the events
// that way and the rest of the view with encoding/json. The bytes are
// those writeJSON writes for the same value.

// eventsKey is how encoding/json writes a view's Events when they are
// nil. No field before Events can hold it: they are typed fields without
// an "events" key, and inside a JSON string the quotes are escaped.
var eventsKey = []byte(`,"events":null`)

// appendJSON appends v as writeJSON encodes it, without the newline.
func appendJSON(b []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b, err
	}
	out := buf.Bytes()
	return out[:len(out)-1], nil
}

// AppendCaseViewJSON appends v as writeJSON encodes it (without the
// newline): written here when every string of the case is plain and its
// events' data compact (records.AppendCaseFieldsJSON), else its events
// here and the rest by encoding/json.
func AppendCaseViewJSON(b []byte, v CaseView) ([]byte, error) {
	if out, ok := records.AppendCaseFieldsJSON(b, &v.Case); ok {
		if v.Deadline == nil {
			out = append(out, `,"deadline":null`...)
		} else if at, err := v.Deadline.MarshalJSON(); err == nil {
			out = append(append(out, `,"deadline":`...), at...)
		} else {
			return appendCaseViewSlowly(out[:len(b)], v)
		}
		out = strconv.AppendBool(append(out, `,"overdue":`...), v.Overdue)
		return append(out, '}'), nil
	}
	return appendCaseViewSlowly(b, v)
}

// appendCaseViewSlowly is AppendCaseViewJSON for a view with strings to
// escape or data to compact: each event with records.AppendEventJSON
// where it can, the rest by encoding/json.
func appendCaseViewSlowly(b []byte, v CaseView) ([]byte, error) {
	events := v.Events
	v.Events = nil
	start := len(b)
	b, err := appendJSON(b, v)
	if err != nil {
		return b[:start], err
	}
	i := bytes.Index(b[start:], eventsKey)
	if i < 0 {
		return b[:start], fmt.Errorf("case %q: no events in its JSON", v.ID)
	}
	rest := slices.Clone(b[start+i+len(eventsKey):])
	b = append(b[:start+i], `,"events":`...)
	if b, err = appendEventsJSON(b, events); err != nil {
		return b[:start], err
	}
	return append(b, rest...), nil
}

// appendEventsJSON appends evs as writeJSON encodes them.
func appendEventsJSON(b []byte, evs []records.Event) ([]byte, error) {
	return appendArrayJSON(b, evs, func(b []byte, ev records.Event) ([]byte, error) {
		if b, ok := records.AppendEventJSON(b, ev); ok {
			return b, nil
		}
		return appendJSON(b, ev)
	})
}

// appendCaseViewsJSON appends views as writeJSON encodes them.
func appendCaseViewsJSON(b []byte, views []CaseView) ([]byte, error) {
	return appendArrayJSON(b, views, AppendCaseViewJSON)
}

// appendArrayJSON appends xs as encoding/json writes a slice (nil is
// null), each element's JSON from appendOne.
func appendArrayJSON[T any](b []byte, xs []T, appendOne func([]byte, T) ([]byte, error)) ([]byte, error) {
	if xs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendOne(b, x); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// WriteCaseJSON answers code with the case view v, as writeJSON would.
func WriteCaseJSON(w http.ResponseWriter, code int, v CaseView) {
	b, err := AppendCaseViewJSON(nil, v)
	if err != nil {
		writeJSON(w, code, v) // encoding/json says what is wrong
		return
	}
	writeBody(w, code, b)
}

// WriteCasePageJSON answers 200 with a page of cases: the object rest
// (its keys sort after "cases": "next", "station") with "cases": views,
// as writeJSON would.
func WriteCasePageJSON(w http.ResponseWriter, views []CaseView, rest map[string]any) {
	writeWith(w, http.StatusOK, "cases", views, func(b []byte) ([]byte, error) { return appendCaseViewsJSON(b, views) }, rest)
}

// writeWith answers code with the object rest plus key: v, as writeJSON
// writes such a map[string]any, v's JSON coming from appendV. The keys
// come sorted, so v's JSON goes first; should a key of rest sort before
// key, the whole answer is left to writeJSON.
func writeWith(w http.ResponseWriter, code int, key string, v any, appendV func([]byte) ([]byte, error), rest map[string]any) {
	var err error
	for k := range rest {
		if k <= key {
			err = fmt.Errorf("key %q sorts before %q", k, key)
		}
	}
	var b []byte
	if err == nil {
		b, err = appendV(append(append([]byte(`{"`), key...), `":`...))
	}
	if err == nil && len(rest) == 0 {
		b = append(b, '}')
	} else if err == nil {
		if r, ok := appendMembers(b, rest); ok {
			b = append(r, '}')
		} else if r, err = appendJSON(nil, rest); err == nil {
			b = append(append(b, ','), r[1:]...)
		}
	}
	if err != nil {
		all := map[string]any{key: v}
		for k, x := range rest {
			all[k] = x
		}
		writeJSON(w, code, all) // encoding/json orders the keys or says what is wrong
		return
	}
	writeBody(w, code, b)
}

// appendMembers appends the members of rest, each after a comma, in the
// order and form writeJSON writes them (keys sorted), when every key and
// string is one json.Marshal writes without escapes
// (jsonlayout.AppendPlainString) and every value a string, a bool or an
// event records.AppendEventJSON writes (an answer's "replication",
// "repeat" and "event"); else it returns b unchanged and false.
func appendMembers(b []byte, rest map[string]any) ([]byte, bool) {
	n := len(b)
	var ok bool
	for _, k := range slices.Sorted(maps.Keys(rest)) {
		if b, ok = jsonlayout.AppendPlainString(append(b, ','), k); !ok {
			return b[:n], false
		}
		b = append(b, ':')
		switch v := rest[k].(type) {
		case string:
			if b, ok = jsonlayout.AppendPlainString(b, v); !ok {
				return b[:n], false
			}
		case bool:
			b = strconv.AppendBool(b, v)
		case records.Event:
			if b, ok = records.AppendEventJSON(b, v); !ok {
				return b[:n], false
			}
		default:
			return b[:n], false
		}
	}
	return b, true
}

// writeBody answers code with the JSON body and a newline, as writeJSON
// does. With its length known, net/http writes it without chunking.
func writeBody(w http.ResponseWriter, code int, body []byte) {
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
