package inventory

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Transports map it to their own vocabulary
// (an HTTP status, a Kafka DLQ reason) in one table each; clients match on it.
type Code string

// The error codes of the inventory domain.
const (
	CodeInvalid              Code = "invalid_input"
	CodeInvalidJSON          Code = "invalid_json"
	CodeNotFound             Code = "not_found"
	CodeInsufficientStock    Code = "insufficient_stock"
	CodeInsufficientReserved Code = "insufficient_reserved"
	CodeVersionConflict      Code = "version_conflict"
	CodeUnavailable          Code = "store_unavailable"
	CodeInvalidCursor        Code = "invalid_cursor"
	CodeExpired              Code = "range_expired"
	CodeNotBuilt             Code = "not_built" // a cache that was never built (promotions)
)

// Error is a domain error with a code, the offending field when there is one, and a
// human-readable detail.
type Error struct {
	Code   Code
	Field  string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return e.Detail
}

// Is makes errors.Is(err, ErrX) match any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors, matched with errors.Is. Refusals (insufficient stock or reserved, version
// conflict) are business outcomes, not faults: the event was well-formed and changed nothing.
var (
	ErrInvalid              = &Error{Code: CodeInvalid}
	ErrNotFound             = &Error{Code: CodeNotFound}
	ErrInsufficientStock    = &Error{Code: CodeInsufficientStock}
	ErrInsufficientReserved = &Error{Code: CodeInsufficientReserved}
	ErrVersionConflict      = &Error{Code: CodeVersionConflict}
	ErrUnavailable          = &Error{Code: CodeUnavailable}
	ErrInvalidCursor        = &Error{Code: CodeInvalidCursor}
	ErrExpired              = &Error{Code: CodeExpired}
)

// Invalidf builds an invalid-input error about one field.
func Invalidf(field, format string, args ...any) error {
	return &Error{Code: CodeInvalid, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or "" when err carries none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsRefusal reports whether err is a business refusal of a valid event.
func IsRefusal(err error) bool {
	switch ErrorCode(err) {
	case CodeInsufficientStock, CodeInsufficientReserved, CodeVersionConflict:
		return true
	}
	return false
}
