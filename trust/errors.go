package trust

import "fmt"

// FieldError is a malformed or out-of-range request field. It is a bad
// request, never a violation: violations are about well-formed requests
// that exceed the intent.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...interface{}) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// WiderError says that a declared intent asks for more than its role
// allows. Nothing is created when it is returned.
type WiderError struct {
	Field  string
	Reason string
}

func (e *WiderError) Error() string { return e.Field + ": " + e.Reason }

func widerErr(field, format string, args ...interface{}) *WiderError {
	return &WiderError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
