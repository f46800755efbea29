package records

import (
	"errors"
	"fmt"
)

// Error codes carried by *Error. The HTTP layer maps them to status codes.
const (
	CodeInvalid  = "invalid"   // the input is malformed or incomplete (400)
	CodeNotFound = "not_found" // the referenced record does not exist (404)
	CodeConflict = "conflict"  // the input contradicts the stored state (409)
)

// Error is a domain error: it names the field (when there is one) and says
// what is wrong, so a clerk or an integrator can fix the input.
type Error struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Invalid returns a CodeInvalid error about field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound returns a CodeNotFound error.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Conflict returns a CodeConflict error.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// AsError reports whether err is (or wraps) a domain *Error and returns it.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}
