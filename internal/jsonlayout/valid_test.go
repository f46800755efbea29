package jsonlayout

import (
	"encoding/json"
	"strings"
	"testing"
)

var validCases = []string{
	``, ` `, `null`, ` null `, `nul`, `nulll`, `true`, `false`, `tru`, `True`,
	`0`, `-0`, `01`, `-`, `-01`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1e+5`, `1E-05`, `1.5e3`, `-1.5E+3`, `1x`, `+1`,
	`""`, `"`, `"a`, `"\"`, `"\\"`, `"\/"`, `"\u00e9"`, `"\u00G9"`, `"\u12"`, `"\x"`, "\"a\tb\"", "\"\x1f\"", "\"\x7f\"",
	"\"\xff\xfe\"", `"王芳"`, "\"\u2028\"",
	`{}`, `{ }`, `{"a":1}`, `{"a" : 1 , "b":[1,2]}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1`, `{"a":1}}`, `{,}`, `{"a":1 "b":2}`,
	`[]`, `[ ]`, `[1,2,3]`, `[1,]`, `[,1]`, `[1 2]`, `[`, `]`, `[[]]`, `[[],[{}]]`, `[{"a":[true,false,null]}]`, `[1}`, `{"a":1]`,
	`1 2`, `{} {}`, "\t\n\r {}\t\n\r", "\v{}", `{"a":"b"}x`,
}

func TestValidAsJSONValid(t *testing.T) {
	for _, c := range validCases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

// The nesting limit is encoding/json's: 10,000 levels are valid, 10,001
// are not, empty or not, objects or arrays.
func TestValidNestingLimit(t *testing.T) {
	for _, depth := range []int{9999, 10000, 10001} {
		for _, v := range []string{
			strings.Repeat("[", depth) + strings.Repeat("]", depth),
			strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1),
			strings.Repeat("[", depth-1) + `{"a":1}` + strings.Repeat("]", depth-1),
		} {
			if got, want := Valid([]byte(v)), json.Valid([]byte(v)); got != want || want != (depth <= 10000) {
				t.Errorf("depth %d: Valid = %v, json.Valid = %v", depth, got, want)
			}
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(`{"note":"材料齐全","x":[1,"]",{"y":-0.5e-3}],"z":null,"w":"\u005c\"<"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

// eventData is ~1 KiB of a case event's data, as the benchmarks write it.
var eventData = []byte(`{"note":"` + strings.Repeat("材料齐全，已受理。", 30) + `","docs":[{"name":"营业执照","pages":2},{"name":"身份证","pages":1}],"ok":true,"fee":0}`)

func BenchmarkValid(b *testing.B) {
	b.SetBytes(int64(len(eventData)))
	for b.Loop() {
		Valid(eventData)
	}
}

func BenchmarkJSONValid(b *testing.B) {
	b.SetBytes(int64(len(eventData)))
	for b.Loop() {
		json.Valid(eventData)
	}
}

// ValidNested takes what Valid takes, nested at most MaxDepth-Nesting deep.
func TestValidNested(t *testing.T) {
	for _, c := range validCases {
		if ValidNested([]byte(c)) != Valid([]byte(c)) {
			t.Errorf("ValidNested(%q) differs from Valid", c)
		}
	}
	limit := MaxDepth - Nesting
	if v := strings.Repeat("[", limit) + strings.Repeat("]", limit); !ValidNested([]byte(v)) {
		t.Errorf("%d levels refused", limit)
	}
	if v := strings.Repeat("[", limit+1) + strings.Repeat("]", limit+1); ValidNested([]byte(v)) || !Valid([]byte(v)) {
		t.Errorf("%d levels: ValidNested %v, Valid %v", limit+1, ValidNested([]byte(v)), Valid([]byte(v)))
	}
}
