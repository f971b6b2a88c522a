// Package tracing sets up OpenTelemetry tracing (design §16) from the standard OTEL_*
// variables, and carries what the rest of jaego needs of it: a tracer provider and the W3C
// propagator to hand to its parts, the trace id of a context for log lines and exemplars.
//
// Tracing is on only when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and not switched off (OTEL_SDK_DISABLED=true,
// OTEL_TRACES_EXPORTER=none). Off, every part is given nil and does no tracing work at
// all: no exporter, no connection, no span.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of jaego's own spans.
const Scope = "github.com/jaego/jaego"

// Tracing is the tracing of one process: a nil *Tracing (Off) traces nothing.
type Tracing struct {
	sdk      *sdktrace.TracerProvider
	prop     propagation.TextMapPropagator
	failures prometheus.Counter
}

// Setup reads the OTEL_* variables through getenv and, when they ask for tracing, starts
// the SDK with a batching OTLP exporter (http/protobuf by default, grpc with
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc). It answers nil (tracing off) when no endpoint is set.
// The exporter, sampler (OTEL_TRACES_SAMPLER, _ARG) and batcher (OTEL_BSP_*) read their
// other settings from the process environment, as the SDK documents. service names the
// process when OTEL_SERVICE_NAME does not.
func Setup(ctx context.Context, getenv func(string) string, service, version string) (*Tracing, error) {
	if !Wanted(getenv) {
		return nil, nil
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" {
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: jaego exports traces over OTLP only (otlp, or none)", e)
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp *otlptrace.Exporter
	var err error
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: want http/protobuf or grpc", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	// The defaults first: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return New(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))), nil
}

// New is tracing on a provider of the caller's (a test's, with an in-memory recorder),
// with the W3C trace context propagator (traceparent, tracestate; no baggage: jaego reads
// none and passes none on).
func New(tp *sdktrace.TracerProvider) *Tracing {
	return &Tracing{sdk: tp, prop: propagation.TraceContext{}, failures: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jaego_trace_errors_total",
		Help: "Errors the OpenTelemetry SDK reported: exports that failed, spans dropped because the collector was slow or away.",
	})}
}

// Failed counts an error the SDK reported (the process's OpenTelemetry error handler).
func (t *Tracing) Failed() {
	if t != nil {
		t.failures.Inc()
	}
}

// Register puts the tracing metrics in reg; nothing when off.
func (t *Tracing) Register(reg prometheus.Registerer) {
	if t != nil {
		reg.MustRegister(t.failures)
	}
}

// Wanted tells whether the OTEL_* variables of getenv ask for tracing.
func Wanted(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") ||
		strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")) == "none" {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// On tells whether t traces.
func (t *Tracing) On() bool { return t != nil }

// Propagator carries the context across a hop: W3C traceparent and tracestate.
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return nil
	}
	return t.prop
}

// Tracer is jaego's tracer; nil when off, which every part takes as "make no spans".
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.sdk.Tracer(Scope)
}

// Shutdown exports what is still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// Start starts a span of tr, or does nothing when tr is nil (tracing off): the caller
// ends the span it gets either way.
func Start(ctx context.Context, tr trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tr == nil {
		return ctx, noSpan
	}
	return tr.Start(ctx, name, opts...)
}

var noSpan = trace.SpanFromContext(context.Background()) // a non-recording span

// End ends span, marked failed with err when there is one (what every span of jaego does
// at its end).
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Observe records v on o, with the trace id of ctx as an exemplar when ctx holds a sampled
// span (shown by /metrics to a scraper that asks for OpenMetrics).
func Observe(o prometheus.Observer, ctx context.Context, v float64) {
	if ctx == nil {
		o.Observe(v)
		return
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if e, ok := o.(prometheus.ExemplarObserver); ok {
			e.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(v)
}
