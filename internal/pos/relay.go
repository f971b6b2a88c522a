package pos

import (
	"context"
	"errors"
	"io"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/tracing"
)

// Producer sends stock events on (the Kafka producer of inventory/kafka): Produce may buffer,
// Flush returns once every event produced so far is acknowledged.
type Producer interface {
	Produce(ctx context.Context, e inventory.Event) error
	Flush(ctx context.Context) error
}

// Relay produces the events of every transaction read from in and waits until all are
// acknowledged. What was read before a malformed line is still produced and flushed: it was
// valid, and the event ids make a re-run after the fix safe. With a tracer (tracing on),
// each transaction is a span, the parent of its events' publish spans: one till
// transaction, one trace, across the relay, Kafka and the consumer.
func Relay(ctx context.Context, in io.Reader, p Producer, tr trace.Tracer) (Stats, error) {
	st, readErr := Read(in, func(events []inventory.Event) error {
		ctx, span := tracing.Start(ctx, tr, "pos transaction", trace.WithAttributes(
			attribute.String("jaego.store", events[0].Store), attribute.Int("jaego.events", len(events))))
		var err error
		defer func() { tracing.End(span, err) }()
		for _, e := range events {
			if err = p.Produce(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	flushErr := p.Flush(ctx)
	return st, errors.Join(readErr, flushErr)
}
