package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// statusOf is the one table from error codes to HTTP statuses, for every route of jaego.
var statusOf = map[jaego.Code]int{
	jaego.CodeInvalid:              http.StatusBadRequest,
	jaego.CodeInvalidJSON:          http.StatusBadRequest,
	jaego.CodeInvalidCursor:        http.StatusBadRequest,
	jaego.CodeBodyTooLarge:         http.StatusRequestEntityTooLarge,
	jaego.CodeNotFound:             http.StatusNotFound,
	jaego.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	jaego.CodeUnauthenticated:      http.StatusUnauthorized,
	jaego.CodeForbidden:            http.StatusForbidden,
	jaego.CodeInsufficientStock:    http.StatusConflict,
	jaego.CodeInsufficientReserved: http.StatusConflict,
	jaego.CodeVersionConflict:      http.StatusConflict,
	jaego.CodeOutOfRange:           http.StatusConflict,
	jaego.CodeNotHeld:              http.StatusConflict,
	jaego.CodeReservationConflict:  http.StatusConflict,
	jaego.CodeExpired:              http.StatusGone,
	jaego.CodeBreakerLost:          http.StatusConflict,
	jaego.CodeRateLimited:          http.StatusTooManyRequests,
	jaego.CodeTooManyHolds:         http.StatusTooManyRequests,
	jaego.CodeUnavailable:          http.StatusServiceUnavailable,
	jaego.CodeStoreLost:            http.StatusServiceUnavailable,
	jaego.CodeOverloaded:           http.StatusServiceUnavailable,
	jaego.CodeNotReplicated:        http.StatusServiceUnavailable,
	jaego.CodeNotBuilt:             http.StatusServiceUnavailable,
	jaego.CodeRebuildFailed:        http.StatusServiceUnavailable,
	jaego.CodePromotionsDisabled:   http.StatusServiceUnavailable,
	jaego.CodePromotionsDBDown:     http.StatusServiceUnavailable,
	jaego.CodeKafkaUnavailable:     http.StatusServiceUnavailable,
	jaego.CodeTooManyStreams:       http.StatusServiceUnavailable,
	jaego.CodeWebhooksDisabled:     http.StatusServiceUnavailable,
	jaego.CodeTargetRefused:        http.StatusUnprocessableEntity,
	jaego.CodeStarting:             http.StatusServiceUnavailable,
	jaego.CodeTimeout:              http.StatusGatewayTimeout,
	jaego.CodeInternal:             http.StatusInternalServerError,
}

// StatusOf is the HTTP status of code; a code the table lacks is a 500.
func StatusOf(code jaego.Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemOf turns an error into its problem detail: a timeout (504), an error with a code by
// the table above, anything else a 500 that says nothing of the inside.
func ProblemOf(err error) Problem {
	var e *jaego.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Problem{Status: http.StatusGatewayTimeout, Code: string(jaego.CodeTimeout),
			Detail: "the backing store did not answer in time", Extra: map[string]any{}}
	case errors.As(err, &e):
		p := Problem{Status: StatusOf(e.Code), Detail: e.Error(), Code: string(e.Code), Extra: map[string]any{}}
		if e.Field != "" {
			p.Extra["field"] = e.Field
		}
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) {
			p.RetryAfter = ra.RetryAfter()
			p.Detail = err.Error()
		} else if e.Code == jaego.CodeUnavailable || e.Code == jaego.CodeStoreLost || e.Code == jaego.CodeTooManyStreams || e.Code == jaego.CodeOverloaded || e.Code == jaego.CodeNotReplicated {
			p.RetryAfter = time.Second
		}
		return p
	}
	return Problem{Status: http.StatusInternalServerError, Code: string(jaego.CodeInternal), Detail: "internal error", Extra: map[string]any{}}
}

// Fail answers the problem of err, and logs err (which may say more than the answer) when
// the status is a server error.
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	p := ProblemOf(err)
	if p.Status >= 500 && log != nil {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "code", p.Code, "err", err)
	}
	WriteProblem(w, p)
}
