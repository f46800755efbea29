package jsonlayout

import (
	"encoding/json"
	"testing"
)

// Each reader takes what json.Marshal writes and refuses the rest, the
// same way for every value: leading zeros, fractions, exponents, escapes,
// white space, values cut short.
func TestReaderTakesOnlyTheLayout(t *testing.T) {
	cases := []struct {
		in   string
		read func(*Reader) any
		want any // nil: refused
	}{
		{`"n":0}`, func(r *Reader) any { return r.Int(`"n":`) }, 0},
		{`"n":-12}`, func(r *Reader) any { return r.Int(`"n":`) }, -12},
		{`"n":012}`, func(r *Reader) any { return r.Int(`"n":`) }, nil},
		{`"n":1.5}`, func(r *Reader) any { return r.Int(`"n":`) }, nil},
		{`"n":1e3}`, func(r *Reader) any { return r.Int(`"n":`) }, nil},
		{`"n":-}`, func(r *Reader) any { return r.Int(`"n":`) }, nil},
		{`"n":99999999999999999999}`, func(r *Reader) any { return r.Int(`"n":`) }, nil},
		{`"n":18446744073709551615}`, func(r *Reader) any { return r.Uint(`"n":`) }, uint64(18446744073709551615)},
		{`"n":-1}`, func(r *Reader) any { return r.Uint(`"n":`) }, nil},
		{`"s":"王芳"}`, func(r *Reader) any { return r.Str(`"s":`) }, "王芳"},
		{`"s":"a\"b"}`, func(r *Reader) any { return r.Str(`"s":`) }, nil},
		{`"s":"a\nb"}`, func(r *Reader) any { return r.Str(`"s":`) }, nil},
		{"\"s\":\"a\xffb\"}", func(r *Reader) any { return r.Str(`"s":`) }, nil},
		{`"s" :"a"}`, func(r *Reader) any { return r.Str(`"s":`) }, nil},
		{`"b":true}`, func(r *Reader) any { return r.Bool(`"b":`) }, true},
		{`"b":tru}`, func(r *Reader) any { return r.Bool(`"b":`) }, nil},
		{`"d":{"a":["}",1]}}`, func(r *Reader) any { return string(r.Raw(`"d":`)) }, `{"a":["}",1]}`},
		{`"d":"x\"}"}`, func(r *Reader) any { return string(r.Raw(`"d":`)) }, `"x\"}"`},
		{`"d":-1.5e3}`, func(r *Reader) any { return string(r.Raw(`"d":`)) }, `-1.5e3`},
		{`"d":null}`, func(r *Reader) any { return string(r.Raw(`"d":`)) }, `null`},
		{`"d":{"a":}}`, func(r *Reader) any { return string(r.Raw(`"d":`)) }, nil},
		{`"d":{"a":1`, func(r *Reader) any { return string(r.Raw(`"d":`)) }, nil},
		{`"d":nul}`, func(r *Reader) any { return string(r.Raw(`"d":`)) }, nil},
	}
	for _, tc := range cases {
		r := NewReader([]byte(tc.in))
		got := tc.read(r)
		r.Lit("}")
		switch {
		case tc.want == nil && r.Done():
			t.Errorf("%s: read %v, want it refused", tc.in, got)
		case tc.want != nil && (!r.Done() || got != tc.want):
			t.Errorf("%s: read %v (done %v), want %v", tc.in, got, r.Done(), tc.want)
		}
		if tc.want != nil {
			// What is taken is what json.Unmarshal reads.
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte("{"+tc.in), &m); err != nil {
				t.Errorf("%s: json.Unmarshal: %v", tc.in, err)
			}
		}
	}
}
