package kafka

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/tracing"
)

// Records carry their trace context in a W3C traceparent header, and only when sampled:
// the relay, at the till, decides whether a transaction is traced, and the consumer
// continues what it is given and starts nothing. franz-go's kotel plugin, tried first,
// made a span of every record at both ends and put a header on every record, sampled or
// not: at 1% sampling it cost 11% of the pipeline's events/s (docs/benchmarks.md). Here an
// unsampled record costs one check of its context and nothing on the wire.

// traceHooks are the hooks of a client when tracing is on.
func traceHooks(t *tracing.Tracing) []kgo.Opt {
	if !t.On() {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(recordTracer{tr: t.Tracer(), prop: t.Propagator()})}
}

// recordTracer makes the publish span of a sampled record, puts its context in the
// record's headers, and takes it out of a fetched record's headers into Record.Context.
type recordTracer struct {
	tr   trace.Tracer
	prop propagation.TextMapPropagator
}

var (
	_ kgo.HookProduceRecordBuffered   = recordTracer{}
	_ kgo.HookProduceRecordUnbuffered = recordTracer{}
	_ kgo.HookFetchRecordBuffered     = recordTracer{}
)

// OnProduceRecordBuffered starts the record's publish span under the context given to
// Produce (a root when it holds none, for the sampler to decide), and injects it.
func (t recordTracer) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Context == nil {
		return
	}
	if parent := trace.SpanContextFromContext(r.Context); parent.IsValid() && !parent.IsSampled() {
		return // the caller's trace is not kept: neither is this record's
	}
	ctx, span := t.tr.Start(r.Context, r.Topic+" publish", trace.WithSpanKind(trace.SpanKindProducer))
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(semconv.MessagingSystemKafka, semconv.MessagingOperationTypeSend, semconv.MessagingDestinationName(r.Topic),
		semconv.MessagingKafkaMessageKey(string(r.Key)))
	t.prop.Inject(ctx, recordCarrier{r})
	r.Context = ctx // the span ends when the broker acknowledged the record, or it failed
}

// OnProduceRecordUnbuffered ends the publish span with where the record went, or why not.
func (t recordTracer) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if r.Context == nil {
		return
	}
	span := trace.SpanFromContext(r.Context)
	if !span.IsRecording() || !hasHeader(r, "traceparent") {
		return // not a span of ours: the caller's, if any, is the caller's to end
	}
	span.SetAttributes(semconv.MessagingDestinationPartitionID(strconv.Itoa(int(r.Partition))), semconv.MessagingKafkaOffset(int(r.Offset)))
	tracing.End(span, err)
}

// OnFetchRecordBuffered takes the trace context out of a fetched record's headers.
func (t recordTracer) OnFetchRecordBuffered(r *kgo.Record) {
	if !hasHeader(r, "traceparent") {
		return
	}
	if r.Context == nil {
		r.Context = context.Background()
	}
	r.Context = t.prop.Extract(r.Context, recordCarrier{r})
}

func hasHeader(r *kgo.Record, key string) bool {
	for _, h := range r.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}

// recordCarrier is a record's headers as a propagation carrier.
type recordCarrier struct{ r *kgo.Record }

func (c recordCarrier) Get(key string) string {
	for _, h := range c.r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c recordCarrier) Set(key, value string) {
	for i, h := range c.r.Headers {
		if h.Key == key {
			c.r.Headers[i].Value = []byte(value)
			return
		}
	}
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c recordCarrier) Keys() []string {
	keys := make([]string, len(c.r.Headers))
	for i, h := range c.r.Headers {
		keys[i] = h.Key
	}
	return keys
}

// pollSpan starts the span that applies one poll (none when tracing is off). A poll holds
// events of many traces: its span continues the first traced record's trace and links to
// every other one (up to the SDK's link limit, 128), so each till's trace shows the apply
// and the Redis script calls it took part in, or links to them. A poll of no traced record
// makes no span: the consumer continues traces, it does not start them.
func (c *Consumer) pollSpan(ctx context.Context, records []*kgo.Record) (context.Context, trace.Span) {
	if c.tracer == nil {
		return tracing.Start(ctx, nil, "")
	}
	var parent trace.SpanContext
	var links []trace.Link
	var seen map[trace.TraceID]bool
	for _, r := range records {
		if r.Context == nil {
			continue
		}
		sc := trace.SpanContextFromContext(r.Context)
		if !sc.IsSampled() || seen[sc.TraceID()] {
			continue
		}
		if !parent.IsValid() {
			parent, seen = sc, map[trace.TraceID]bool{sc.TraceID(): true}
			continue
		}
		seen[sc.TraceID()] = true
		links = append(links, trace.Link{SpanContext: sc})
	}
	if !parent.IsValid() {
		return tracing.Start(ctx, nil, "")
	}
	return c.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), c.opts.Topic+" apply",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(semconv.MessagingSystemKafka, semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(c.opts.Topic), semconv.MessagingConsumerGroupName(c.opts.Group),
			semconv.MessagingBatchMessageCount(len(records)), attribute.Int("jaego.traces", len(seen))))
}
