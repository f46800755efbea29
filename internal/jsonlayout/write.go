package jsonlayout

import (
	"strings"
	"unicode/utf8"
)

// AppendPlainString appends s quoted, as json.Marshal writes it, when
// json.Marshal writes it without escapes: no control characters, quotes,
// backslashes, the HTML characters it escapes (<, >, &), U+2028, U+2029
// or invalid UTF-8. Otherwise it returns b unchanged and false, and the
// caller falls back to encoding/json.
func AppendPlainString(b []byte, s string) ([]byte, bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && (!utf8.ValidString(s) || strings.ContainsRune(s, '\u2028') || strings.ContainsRune(s, '\u2029')) {
		return b, false
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}
