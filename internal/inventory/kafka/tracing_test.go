package kafka_test

import (
	"context"
	"slices"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/inventory/kafkatest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/tracing"
)

// TestTracedPollLinksEveryTrace: two tills' events, each in a trace of its own, arrive in one
// poll. The poll's apply span continues the first till's trace and links to the second; the
// Redis script call that applied both is its child and says so (batch size 2).
func TestTracedPollLinksEveryTrace(t *testing.T) {
	e := newEnv(t)
	rec := tracetest.NewSpanRecorder()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	e.store = invredis.New(e.client, invredis.Options{Tracer: tr.Tracer()})

	prod, err := invkafka.NewProducer(invkafka.ProducerOptions{Brokers: []string{e.broker}, Tracing: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	var tills []trace.SpanContext
	for i, sku := range []string{"A", "B"} {
		ctx, span := tr.Tracer().Start(context.Background(), "till")
		tills = append(tills, span.SpanContext())
		if err := prod.Produce(ctx, inventory.Event{EventID: "tr-" + sku, Type: inventory.Receipt, Store: "S1", SKU: sku, Qty: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		span.End()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Both records are on the store's partition before the consumer's first fetch.
	c := e.consumer(t, invkafka.ConsumerOptions{Tracing: tr})
	waitHandled(t, 2, c)

	var apply, script sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case topic + " apply":
			apply = s
		case "redis apply":
			script = s
		}
	}
	if apply == nil || script == nil {
		t.Fatalf("no apply or script span among %d", len(rec.Ended()))
	}
	if apply.SpanContext().TraceID() != tills[0].TraceID() {
		t.Errorf("the apply span is in trace %s, want the first till's %s", apply.SpanContext().TraceID(), tills[0].TraceID())
	}
	var linked []trace.TraceID
	for _, l := range apply.Links() {
		linked = append(linked, l.SpanContext.TraceID())
	}
	if !slices.Equal(linked, []trace.TraceID{tills[1].TraceID()}) {
		t.Errorf("the apply span links to %v, want the second till's trace only (%s)", linked, tills[1].TraceID())
	}
	if script.Parent().SpanID() != apply.SpanContext().SpanID() {
		t.Errorf("the script span is not the apply span's child")
	}
	size := int64(-1)
	for _, a := range script.Attributes() {
		if a.Key == "jaego.batch_size" {
			size = a.Value.AsInt64()
		}
	}
	if size != 2 {
		t.Errorf("script batch size %d, want 2", size)
	}
}

// TestUnsampledRecordsCarryNothing: a record whose trace is not sampled goes out with no
// header, and the consumer, which continues traces and starts none, makes no span of it.
func TestUnsampledRecordsCarryNothing(t *testing.T) {
	e := newEnv(t)
	never := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())))
	rec := tracetest.NewSpanRecorder()
	always := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	e.store = invredis.New(e.client, invredis.Options{Tracer: always.Tracer()})

	prod, err := invkafka.NewProducer(invkafka.ProducerOptions{Brokers: []string{e.broker}, Tracing: never})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, sku := range []string{"A", "B", "C"} {
		if err := prod.Produce(ctx, inventory.Event{EventID: "un-" + sku, Type: inventory.Receipt, Store: "S1", SKU: sku, Qty: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range kafkatest.ReadAll(t, e.broker, topic, 3) {
		if len(r.Headers) != 0 {
			t.Errorf("record %s carries headers %v", r.Key, r.Headers)
		}
	}
	c := e.consumer(t, invkafka.ConsumerOptions{Tracing: always})
	waitHandled(t, 3, c)
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("the consumer made %d spans of untraced records", n)
	}
}
