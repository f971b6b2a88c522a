package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/tracing"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestWanted(t *testing.T) {
	for _, c := range []struct {
		env  func(string) string
		want bool
	}{
		{env(), false},
		{env("OTEL_SERVICE_NAME", "x", "OTEL_TRACES_SAMPLER", "always_on"), false}, // no endpoint
		{env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), true},
		{env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"), true},
		{env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_SDK_DISABLED", "true"), false},
		{env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_SDK_DISABLED", "TRUE"), false},
		{env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_SDK_DISABLED", "false"), true},
		{env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_TRACES_EXPORTER", "none"), false},
	} {
		if got := tracing.Wanted(c.env); got != c.want {
			t.Errorf("Wanted(%v %v %v %v) = %v, want %v", c.env("OTEL_EXPORTER_OTLP_ENDPOINT"), c.env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
				c.env("OTEL_SDK_DISABLED"), c.env("OTEL_TRACES_EXPORTER"), got, c.want)
		}
	}
}

func TestSetupOffIsNil(t *testing.T) {
	tr, err := tracing.Setup(context.Background(), env(), "jaego", "test")
	if err != nil || tr != nil || tr.On() || tr.Tracer() != nil || tr.Shutdown(context.Background()) != nil {
		t.Fatalf("with no endpoint: %v, %v; want nil and off", tr, err)
	}
	ctx := context.Background()
	got, span := tracing.Start(ctx, tr.Tracer(), "x")
	if got != ctx || span.IsRecording() {
		t.Errorf("Start with tracing off changed the context or recorded a span")
	}
}

func TestSetupRefusesWhatItCannotExport(t *testing.T) {
	for _, e := range []func(string) string{
		env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318", "OTEL_TRACES_EXPORTER", "zipkin"),
		env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
		env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"),
	} {
		if tr, err := tracing.Setup(context.Background(), e, "jaego", "test"); err == nil {
			tr.Shutdown(context.Background())
			t.Errorf("Setup accepted exporter %q protocol %q", e("OTEL_TRACES_EXPORTER"), e("OTEL_EXPORTER_OTLP_PROTOCOL")+e("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
		}
	}
}

// TestSetupExportsOverHTTP: with an endpoint, a span reaches it as OTLP/HTTP protobuf, named
// by the service given, at Shutdown at the latest.
func TestSetupExportsOverHTTP(t *testing.T) {
	var posts atomic.Int64
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			posts.Add(1)
			body.Store(string(b))
		}
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL) // the exporter reads the process environment
	tr, err := tracing.Setup(context.Background(), os.Getenv, "jaego-under-test", "v1")
	if err != nil || !tr.On() {
		t.Fatalf("Setup: %v, on %v", err, tr.On())
	}
	_, span := tr.Tracer().Start(context.Background(), "a span of the test")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := body.Load().(string)
	if posts.Load() == 0 || !strings.Contains(b, "a span of the test") || !strings.Contains(b, "jaego-under-test") {
		t.Fatalf("%d OTLP posts; last body holds the span and the service: %v", posts.Load(),
			strings.Contains(b, "a span of the test") && strings.Contains(b, "jaego-under-test"))
	}
}

// TestObserveExemplar: a sampled span's trace id goes on the histogram as an exemplar; an
// unsampled one's, or none, does not.
func TestObserveExemplar(t *testing.T) {
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	dropped := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: []float64{1, 2}})
	exemplars := func() map[float64]string {
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			t.Fatal(err)
		}
		out := map[float64]string{}
		for _, b := range m.Histogram.Bucket {
			if e := b.Exemplar; e != nil {
				out[b.GetUpperBound()] = e.Label[0].GetValue()
			}
		}
		return out
	}
	ctx, span := sampled.Tracer("t").Start(context.Background(), "kept")
	tracing.Observe(h, ctx, 0.5)
	span.End()
	ctx2, span2 := dropped.Tracer("t").Start(context.Background(), "dropped")
	tracing.Observe(h, ctx2, 1.5)
	span2.End()
	tracing.Observe(h, nil, 1.5) // a record without a context (tracing off)
	tracing.Observe(h, context.Background(), 1.5)
	got := exemplars()
	if len(got) != 1 || got[1] != span.SpanContext().TraceID().String() {
		t.Fatalf("exemplars %v, want only {1: %s}", got, span.SpanContext().TraceID())
	}
	var m dto.Metric
	_ = h.Write(&m)
	if m.Histogram.GetSampleCount() != 4 {
		t.Fatalf("%d observations, want 4", m.Histogram.GetSampleCount())
	}
	if trace.SpanContextFromContext(ctx2).IsSampled() {
		t.Fatal("the never-sampled span is sampled")
	}
}
