package records

import (
	"bytes"
	"encoding/json"

	"github.com/stationsync/stationsync/internal/jsonlayout"
)

// encodeEvent encodes ev exactly as json.Marshal does. Every event a
// station records is encoded once when it is stored, on the raft state
// machine's single goroutine; json.Marshal scans and compacts the ~1 KiB
// of data again there (json.RawMessage is a Marshaler, whose output is
// always compacted). Data arrives compact (decoded from a raft entry that
// json.Marshal wrote), so it is copied as it is when a single byte scan
// shows compaction would not change it, and the other fields when they
// need no escaping; anything else goes through json.Marshal.
//
// ev.Data must be valid JSON (Event.Validate checks it), as json.Marshal
// would refuse it otherwise.
func encodeEvent(ev Event) ([]byte, error) {
	if b, ok := appendEventJSON(make([]byte, 0, len(ev.Data)+200), ev); ok {
		return b, nil
	}
	return json.Marshal(ev)
}

// AppendEventJSON appends ev as json.Marshal encodes it, or returns b
// unchanged and false when a field needs what only encoding/json does
// (escaping, compaction). An API answer writes a case's events with it:
// encoding/json would scan and compact every event's data again. As for
// encodeEvent, ev.Data must be valid JSON: it is copied, not checked
// (events read from the store were checked before they were written).
func AppendEventJSON(b []byte, ev Event) ([]byte, bool) {
	n := len(b)
	out, ok := appendEventJSON(b, ev)
	if !ok {
		return b[:n], false
	}
	return out, true
}

// appendEventJSON appends ev as json.Marshal encodes it, or reports false
// when a field needs what only json.Marshal does (escaping, compaction).
func appendEventJSON(b []byte, ev Event) ([]byte, bool) {
	ok := true
	str := func(name, s string) {
		if !ok {
			return
		}
		b = append(b, name...)
		b, ok = jsonlayout.AppendPlainString(b, s)
	}
	str(`{"id":`, ev.ID)
	str(`,"case_id":`, ev.CaseID)
	str(`,"type":`, ev.Type)
	str(`,"actor":`, ev.Actor)
	str(`,"hlc":`, string(ev.HLC))
	if !ok {
		return nil, false
	}
	at, err := ev.At.MarshalJSON()
	if err != nil {
		return nil, false // json.Marshal gives the error
	}
	b = append(append(b, `,"at":`...), at...)
	if ev.Node != "" {
		str(`,"node":`, ev.Node)
	}
	if len(ev.Data) > 0 {
		if !compactAndSafe(ev.Data) {
			return nil, false
		}
		b = append(append(b, `,"data":`...), ev.Data...)
	}
	if ev.Conflict {
		b = append(b, `,"conflict":true`...)
	}
	if ev.Pending {
		b = append(b, `,"pending":true`...)
	}
	return append(b, '}'), ok
}

// compactAndSafe reports whether json.Marshal would copy the valid JSON
// value d unchanged: no whitespace outside strings and none of the
// characters it escapes (<, >, &, U+2028, U+2029). It jumps from quote to
// quote with bytes.IndexByte, since most of an event's data is the text
// of its strings.
func compactAndSafe(d []byte) bool {
	if bytes.IndexByte(d, '<') >= 0 || bytes.IndexByte(d, '>') >= 0 || bytes.IndexByte(d, '&') >= 0 ||
		bytes.Contains(d, lineSeparator) || bytes.Contains(d, paragraphSeparator) {
		return false
	}
	for i := 0; i < len(d); {
		switch d[i] {
		case '"':
			end := i + 1
			for {
				k := bytes.IndexByte(d[end:], '"')
				if k < 0 {
					return false // not valid JSON: json.Marshal says so
				}
				end += k
				escapes := 0
				for p := end - 1; p > i && d[p] == '\\'; p-- {
					escapes++
				}
				if escapes%2 == 0 {
					break // the closing quote
				}
				end++
			}
			i = end + 1
		default:
			if jsonlayout.IsSpace(d[i]) {
				return false
			}
			i++
		}
	}
	return true
}

var (
	lineSeparator      = []byte("\u2028")
	paragraphSeparator = []byte("\u2029")
)

// decodeEvent decodes a stored event exactly as json.Unmarshal does.
// Reading a case decodes every one of its events (an answer to a write
// reads the case back, a digest reads a month of cases), and
// json.Unmarshal spends most of its time in reflection. Stored events are
// laid out as encodeEvent writes them, so that layout is read directly
// when it is found with nothing to unescape; anything else goes through
// json.Unmarshal.
func decodeEvent(v []byte) (Event, error) {
	if ev, ok := parseEventJSON(v); ok {
		return ev, nil
	}
	var ev Event
	err := json.Unmarshal(v, &ev)
	return ev, err
}

// parseEventJSON reads v when it has encodeEvent's layout with plain
// strings (no escapes, no control characters, valid UTF-8) and valid
// JSON data (nested no deeper than jsonlayout.ValidNested allows: an
// event may sit inside other values), or reports false. What it returns
// then is what json.Unmarshal returns for v.
func parseEventJSON(v []byte) (ev Event, ok bool) {
	const (
		conflictSuffix = `,"conflict":true`
		pendingSuffix  = `,"pending":true`
	)
	r := jsonlayout.NewReader(v)
	ev.ID = r.Str(`{"id":`)
	ev.CaseID = r.Str(`,"case_id":`)
	ev.Type = r.Str(`,"type":`)
	ev.Actor = r.Str(`,"actor":`)
	ev.HLC = HLC(r.Str(`,"hlc":`))
	ev.At = r.Time(`,"at":`)
	if r.Opt(`,"node":`) {
		ev.Node = r.Str("")
	}
	if !r.OK() {
		return Event{}, false
	}
	b := r.Rest()
	// What is left: [,"data":DATA][,"conflict":true][,"pending":true]}.
	// A valid JSON value cannot end with either suffix, so cutting them
	// from the end leaves DATA.
	if len(b) == 0 || b[len(b)-1] != '}' {
		return Event{}, false
	}
	b = b[:len(b)-1]
	if bytes.HasSuffix(b, []byte(pendingSuffix)) {
		ev.Pending, b = true, b[:len(b)-len(pendingSuffix)]
	}
	if bytes.HasSuffix(b, []byte(conflictSuffix)) {
		ev.Conflict, b = true, b[:len(b)-len(conflictSuffix)]
	}
	if len(b) > 0 {
		// json.Valid allows white space around the value, which
		// json.Unmarshal leaves out of a RawMessage: such data is left
		// to json.Unmarshal.
		var data bool
		b, data = bytes.CutPrefix(b, []byte(`,"data":`))
		if !data || len(b) == 0 || jsonlayout.IsSpace(b[0]) || jsonlayout.IsSpace(b[len(b)-1]) || !jsonlayout.ValidNested(b) {
			return Event{}, false
		}
		ev.Data = append(json.RawMessage(nil), b...)
	}
	return ev, true
}
