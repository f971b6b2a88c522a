package httpx

import (
	"context"
	"errors"
	"net/http"

	"github.com/jaego/jaego/internal/inventory"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[inventory.Code]int{
	inventory.CodeInvalid:              http.StatusBadRequest,
	inventory.CodeInvalidJSON:          http.StatusBadRequest,
	inventory.CodeInvalidCursor:        http.StatusBadRequest,
	inventory.CodeNotFound:             http.StatusNotFound,
	inventory.CodeInsufficientStock:    http.StatusConflict,
	inventory.CodeInsufficientReserved: http.StatusConflict,
	inventory.CodeVersionConflict:      http.StatusConflict,
	inventory.CodeExpired:              http.StatusGone,
	inventory.CodeUnavailable:          http.StatusServiceUnavailable,
	inventory.CodeNotBuilt:             http.StatusServiceUnavailable,
}

// ProblemOf turns an error into its problem detail: a body that could not be read, a
// timeout (504), a domain error by its code, anything else a 500 that says nothing inside.
func ProblemOf(err error) Problem {
	var de *DecodeError
	var ie *inventory.Error
	switch {
	case errors.As(err, &de):
		return Problem{Status: de.Status, Code: de.Code, Detail: de.Detail, Extra: map[string]any{}}
	case errors.Is(err, context.DeadlineExceeded):
		return Problem{Status: http.StatusGatewayTimeout, Code: "timeout", Detail: "the backing store did not answer in time", Extra: map[string]any{}}
	case errors.As(err, &ie):
		p := Problem{Status: http.StatusInternalServerError, Detail: ie.Error(), Code: string(ie.Code), Extra: map[string]any{}}
		if s, ok := statusOf[ie.Code]; ok {
			p.Status = s
		}
		if ie.Field != "" {
			p.Extra["field"] = ie.Field
		}
		return p
	}
	return Problem{Status: http.StatusInternalServerError, Code: "internal", Detail: "internal error", Extra: map[string]any{}}
}
