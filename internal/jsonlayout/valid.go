package jsonlayout

// Valid reports whether b is valid JSON, exactly as json.Valid does: the
// same grammar (RFC 8259: one value with white space around it, strings
// of any bytes but control characters, unescaped quotes and backslashes,
// no check of UTF-8), and the same nesting limit (10,000 objects and
// arrays inside each other).
//
// Every record a station sends or stores is checked before it goes into
// a raft entry, when it is read back, and at the center when it arrives:
// json.Valid steps a state machine through a function call per byte,
// while most of a record's bytes are the text of its strings, which Valid
// skips with a table lookup per byte. FuzzValid compares the two.
func Valid(b []byte) bool { return validDepth(b, MaxDepth) }

// MaxDepth is encoding/json's limit on objects and arrays nested inside
// each other, counted from the top of what it reads.
const MaxDepth = 10000

// Nesting bounds how deep the layouts read with a Reader put a raw value:
// an ops envelope holds a consolidate op's pulled change at 6 levels
// ({"ops":[{"pull":{"changes":[{"data": ...), a feed answer its changes
// at 4.
const Nesting = 8

// ValidNested reports whether b is valid JSON (as Valid) that also nests
// at most MaxDepth-Nesting deep, so that inside any of the layouts it is
// still within encoding/json's limit. A value json.Valid accepts can be
// refused by json.Unmarshal once it sits inside other values: a fast path
// that checks its data with ValidNested leaves such data to encoding/json.
// A value shorter than 2*(MaxDepth-Nesting) bytes cannot nest deeper than
// MaxDepth-Nesting.
func ValidNested(b []byte) bool { return validDepth(b, MaxDepth-Nesting) }

// validDepth is Valid with maxDepth in place of encoding/json's limit.
func validDepth(b []byte, maxDepth int) bool {
	var stack []byte // the open objects ('{') and arrays ('[')
	i := skipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) == maxDepth {
				return false
			}
			stack = append(stack, c)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']': empty
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = member(b, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			i = stringEnd(b, i)
		case c == '-' || c >= '0' && c <= '9':
			i = numberEnd(b, i)
		case c == 't':
			i = literalEnd(b, i, "true")
		case c == 'f':
			i = literalEnd(b, i, "false")
		case c == 'n':
			i = literalEnd(b, i, "null")
		default:
			return false
		}
		if i < 0 {
			return false
		}
		// A value ended at i: close what it ends, or go on to the next
		// element or member.
		for {
			i = skipSpace(b, i)
			if len(stack) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			open := stack[len(stack)-1]
			if b[i] == open+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
			if open == '{' {
				if i = member(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// member reads an object member's name and colon at i and the white space
// after them, returning where its value starts (-1: not valid).
func member(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = stringEnd(b, i); i < 0 {
		return -1
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// inString marks the bytes that end a run of plain string bytes: the
// quote, the backslash and the control characters json.Valid refuses.
var inString = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// stringEnd returns the index after the string that starts with the quote
// at i (-1: not valid).
func stringEnd(b []byte, i int) int {
	i++
	for {
		for i < len(b) && !inString[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return -1
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 6
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
}

// numberEnd returns the index after the number that starts at i (-1: not
// valid): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digitsEnd(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = digitsEnd(b, i+1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digitsEnd(b, i); i < 0 {
			return -1
		}
	}
	return i
}

// digitsEnd returns the index after one or more digits at i (-1: none).
func digitsEnd(b []byte, i int) int {
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}

func literalEnd(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}
