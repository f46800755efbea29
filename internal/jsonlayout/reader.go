// Package jsonlayout reads JSON in the exact layout json.Marshal writes,
// for hot paths that would otherwise decode it by reflection: whoever uses
// it reads its own records' layout field by field and, when the Reader
// fails, hands the whole input to encoding/json. A Reader never accepts
// what json.Unmarshal would read differently (escapes, white space, other
// field orders); its users' fuzz tests check that against encoding/json.
package jsonlayout

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// NewReader returns a Reader of b.
func NewReader(b []byte) *Reader { return &Reader{b: b, ok: true} }

// OK says whether everything so far was read.
func (r *Reader) OK() bool { return r.ok }

// Fail marks the input as not in the layout.
func (r *Reader) Fail() { r.ok = false }

// Done says whether everything was read and nothing is left.
func (r *Reader) Done() bool { return r.ok && len(r.b) == 0 }

// Rest returns what is not read yet and reads it all (nil once the
// input is not in the layout).
func (r *Reader) Rest() []byte {
	if !r.ok {
		return nil
	}
	b := r.b
	r.b = r.b[len(b):]
	return b
}

// Object returns the JSON object that comes next (found by matching
// braces, not checked) and reads past it.
func (r *Reader) Object() []byte {
	if !r.ok {
		return nil
	}
	end := objectEnd(r.b)
	if end < 0 {
		r.ok = false
		return nil
	}
	o := r.b[:end]
	r.b = r.b[end:]
	return o
}

// IsSpace says whether c is white space to JSON.
func IsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// PlainString says whether the bytes between two quotes decode to
// themselves: no backslash, no control character, valid UTF-8.
func PlainString(s []byte) bool {
	ascii := true
	for _, c := range s {
		switch {
		case c < 0x20, c == '\\':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.Valid(s)
}

// Reader reads JSON in the exact layout json.Marshal writes; ok turns
// false (and stays false) at anything else: another order, white space,
// escapes, numbers that are not plain integers.
type Reader struct {
	b  []byte
	ok bool
}

// Lit reads s.
func (r *Reader) Lit(s string) {
	if !r.ok || !bytes.HasPrefix(r.b, []byte(s)) {
		r.ok = false
		return
	}
	r.b = r.b[len(s):]
}

// Opt reads s if it comes next.
func (r *Reader) Opt(s string) bool {
	if !r.ok || !bytes.HasPrefix(r.b, []byte(s)) {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// Quoted reads name and a string value, quotes included, with nothing to
// unescape.
func (r *Reader) Quoted(name string) []byte {
	r.Lit(name)
	if !r.ok || len(r.b) == 0 || r.b[0] != '"' {
		r.ok = false
		return nil
	}
	end := bytes.IndexByte(r.b[1:], '"')
	if end < 0 || !PlainString(r.b[1:end+1]) {
		r.ok = false
		return nil
	}
	q := r.b[:end+2]
	r.b = r.b[end+2:]
	return q
}

// Str reads name and a plain string.
func (r *Reader) Str(name string) string {
	q := r.Quoted(name)
	if !r.ok {
		return ""
	}
	return string(q[1 : len(q)-1])
}

// Int reads name and an integer as JSON writes it, within int.
func (r *Reader) Int(name string) int {
	n, err := strconv.Atoi(r.integer(name, true))
	if err != nil {
		r.ok = false
		return 0
	}
	return n
}

// Uint reads name and an unsigned integer as JSON writes it.
func (r *Reader) Uint(name string) uint64 {
	n, err := strconv.ParseUint(r.integer(name, false), 10, 64)
	if err != nil {
		r.ok = false
		return 0
	}
	return n
}

// integer reads name and -?(0|[1-9][0-9]*) (the sign only if signed),
// not followed by a fraction or an exponent, and returns its text ("" and
// not ok otherwise).
func (r *Reader) integer(name string, signed bool) string {
	r.Lit(name)
	if !r.ok {
		return ""
	}
	i := 0
	if signed && i < len(r.b) && r.b[i] == '-' {
		i++
	}
	start := i
	for i < len(r.b) && r.b[i] >= '0' && r.b[i] <= '9' {
		i++
	}
	if i == start || (r.b[start] == '0' && i > start+1) || (i < len(r.b) && (r.b[i] == '.' || r.b[i] == 'e' || r.b[i] == 'E')) {
		r.ok = false
		return ""
	}
	n := string(r.b[:i])
	r.b = r.b[i:]
	return n
}

// Bool reads name and true or false.
func (r *Reader) Bool(name string) bool {
	r.Lit(name)
	switch {
	case r.Opt("true"):
		return true
	case r.Opt("false"):
		return false
	}
	r.ok = false
	return false
}

// Time reads name and a time as time.Time.MarshalJSON writes it.
func (r *Reader) Time(name string) time.Time {
	q := r.Quoted(name)
	var t time.Time
	if r.ok && t.UnmarshalJSON(q) != nil {
		r.ok = false
	}
	return t
}

// Raw reads name and any valid JSON value that nests at most
// MaxDepth-Nesting deep (ValidNested), copied as json.RawMessage.
func (r *Reader) Raw(name string) json.RawMessage {
	r.Lit(name)
	if !r.ok {
		return nil
	}
	end := valueEnd(r.b)
	if end <= 0 || !ValidNested(r.b[:end]) {
		r.ok = false
		return nil
	}
	v := append(json.RawMessage(nil), r.b[:end]...)
	r.b = r.b[end:]
	return v
}

// objectEnd is the length of the JSON object b starts with, found by
// matching braces outside strings, or -1. It does not check the object
// (parseEventJSON does).
func objectEnd(b []byte) int {
	if len(b) == 0 || b[0] != '{' {
		return -1
	}
	return nestedEnd(b)
}

// valueEnd is the length of the JSON value b starts with (without
// checking it), or -1: up to the matching bracket of an object or an
// array, the closing quote of a string, else the first byte that ends a
// literal or number.
func valueEnd(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	switch b[0] {
	case '{', '[':
		return nestedEnd(b)
	case '"':
		for i := 1; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	}
	for i, c := range b {
		if c == ',' || c == '}' || c == ']' || IsSpace(c) {
			return i
		}
	}
	return len(b)
}

// nestedEnd is valueEnd of an object or array.
func nestedEnd(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}
