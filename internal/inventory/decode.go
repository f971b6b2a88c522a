package inventory

import "github.com/jaego/jaego/internal/jaego"

// DecodeEvent reads one stock event strictly (unknown fields, trailing data and wrong types
// are errors, never ignored) and validates it: the one decoder of every transport.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := jaego.StrictUnmarshal(data, &e); err != nil {
		return e, err
	}
	return e, e.Validate()
}
