// Package jaego is the shared kernel of every domain and transport (wtf's root package): the
// error type with its stable codes, the strict JSON decoder, and the identifier rules of
// design §2. It imports nothing of jaego, so the stock and promotion domains, the lock and
// every adapter can share it without importing each other; each transport maps a Code to
// its own vocabulary (an HTTP status, a Kafka disposition) in one table.
package jaego

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code that clients match on; docs/errors.md
// lists every one.
type Code string

// The error codes of jaego, every domain and transport together: one list, so that a
// transport's table can name them all.
const (
	CodeInvalid              Code = "invalid_input"
	CodeInvalidJSON          Code = "invalid_json"
	CodeBodyTooLarge         Code = "body_too_large"
	CodeInvalidCursor        Code = "invalid_cursor"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeUnauthenticated      Code = "unauthenticated" // no API key, or an unknown one
	CodeForbidden            Code = "forbidden"       // a key without the route's scope
	CodeInsufficientStock    Code = "insufficient_stock"
	CodeInsufficientReserved Code = "insufficient_reserved"
	CodeVersionConflict      Code = "version_conflict"
	CodeOutOfRange           Code = "stock_out_of_range"   // an event that would take on_hand past ±MaxQty
	CodeNotHeld              Code = "reservation_not_held" // confirm or cancel of a reservation no longer held
	CodeReservationConflict  Code = "reservation_conflict" // a reservation id reused for another basket
	CodeExpired              Code = "range_expired"
	CodeUnavailable          Code = "store_unavailable"
	CodeStoreLost            Code = "store_lost"     // Redis lost its data: writes wait for a restore
	CodeOverloaded           Code = "overloaded"     // more calls in flight to Redis than the instance allows: refused at once
	CodeNotReplicated        Code = "not_replicated" // --write-ack replicas: no replica confirmed the write in time
	CodeBreakerLost          Code = "breaker_lost"   // {"state":"auto"} during a loss: only a restore ends it
	CodeTimeout              Code = "timeout"
	CodeNotBuilt             Code = "not_built"            // the promotion cache has no version yet
	CodeRebuildFailed        Code = "cache_rebuild_failed" // a promotion change saved, its cache not rebuilt
	CodePromotionsDisabled   Code = "promotions_disabled"
	CodePromotionsDBDown     Code = "promotions_db_unavailable"
	CodeKafkaUnavailable     Code = "kafka_unavailable"
	CodeTooManyStreams       Code = "too_many_streams"       // the live tail's cap (--max-streams, --max-streams-per-key)
	CodeRateLimited          Code = "rate_limited"           // a key over its rate limit (design §11)
	CodeTooManyHolds         Code = "too_many_holds"         // a store at --max-holds-per-store
	CodeWebhooksDisabled     Code = "webhooks_disabled"      // jaego serve without --postgres or --webhook-key-file
	CodeTargetRefused        Code = "webhook_target_refused" // a webhook URL outside the rules of design §14
	CodeStarting             Code = "starting"
	CodeInternal             Code = "internal"
)

// Error is an error with a code, the offending field when there is one, and a detail that
// is safe to show a client.
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

// Sentinel errors of the codes every domain uses, matched with errors.Is.
var (
	ErrInvalid     = &Error{Code: CodeInvalid}
	ErrNotFound    = &Error{Code: CodeNotFound}
	ErrUnavailable = &Error{Code: CodeUnavailable}
)

// Errorf builds an error with code and a detail for the client.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Invalidf builds an invalid-input error about one field.
func Invalidf(field, format string, args ...any) error {
	return &Error{Code: CodeInvalid, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Unavailable wraps a failure of a backing store (Redis, PostgreSQL) as store_unavailable;
// what says which store and operation, for the logs.
func Unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}

// CodeOf returns the code of err, or "" when err carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
