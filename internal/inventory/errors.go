package inventory

import "github.com/jaego/jaego/internal/jaego"

// Refusals of a valid event by the state it met, matched with errors.Is. They are business
// outcomes, not faults: the event was well-formed and changed nothing.
var (
	ErrInsufficientStock    = &jaego.Error{Code: jaego.CodeInsufficientStock}
	ErrInsufficientReserved = &jaego.Error{Code: jaego.CodeInsufficientReserved}
	ErrVersionConflict      = &jaego.Error{Code: jaego.CodeVersionConflict}
	ErrOutOfRange           = &jaego.Error{Code: jaego.CodeOutOfRange}
)

// IsRefusal reports whether err is a business refusal of a valid event.
func IsRefusal(err error) bool {
	switch jaego.CodeOf(err) {
	case jaego.CodeInsufficientStock, jaego.CodeInsufficientReserved, jaego.CodeVersionConflict, jaego.CodeOutOfRange:
		return true
	}
	return false
}

// ErrLost is a write refused because the stock store lost its data (Redis came back empty)
// in a deployment with a durable copy: nothing is written before `jaego restore`.
var ErrLost = jaego.Errorf(jaego.CodeStoreLost, "the stock store (Redis) lost its data: writes wait for `jaego restore`; reads come from the durable copy")
