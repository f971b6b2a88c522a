package pos

import (
	"context"
	"errors"
	"io"

	"github.com/jaego/jaego/internal/inventory"
)

// Producer sends stock events on (the Kafka producer of inventory/kafka): Produce may buffer,
// Flush returns once every event produced so far is acknowledged.
type Producer interface {
	Produce(ctx context.Context, e inventory.Event) error
	Flush(ctx context.Context) error
}

// Relay produces the events of every transaction read from in and waits until all are
// acknowledged. What was read before a malformed line is still produced and flushed: it was
// valid, and the event ids make a re-run after the fix safe.
func Relay(ctx context.Context, in io.Reader, p Producer) (Stats, error) {
	st, readErr := Read(in, func(events []inventory.Event) error {
		for _, e := range events {
			if err := p.Produce(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	flushErr := p.Flush(ctx)
	return st, errors.Join(readErr, flushErr)
}
