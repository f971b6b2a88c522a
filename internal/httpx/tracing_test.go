package httpx_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/tracing"
)

// TestInstrumentTraces: with tracing on, a request continues the caller's traceparent in a
// server span named by its route, and every log line of the request carries the trace and
// span ids; a request without one starts a trace of its own; one to no route is named so.
func TestInstrumentTraces(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	var logs bytes.Buffer
	log := slog.New(httpx.ContextHandler{Handler: slog.NewJSONHandler(&logs, nil)})
	mux := http.NewServeMux()
	mux.Handle("GET /v1/stores/{store}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handling")
		httpx.WriteJSON(w, http.StatusOK, map[string]string{})
	}))
	srv := httptest.NewServer(httpx.Instrument(mux, prometheus.NewRegistry(), log, httpx.Options{Tracing: tr}))
	defer srv.Close()

	const traceID, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	req, _ := http.NewRequest("GET", srv.URL+"/v1/stores/S001", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-"+parent+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, path := range []string{"/v1/stores/S002", "/nowhere"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want one per request (3)", len(spans))
	}
	first, second, third := spans[0], spans[1], spans[2]
	if first.Name() != "GET /v1/stores/{store}" || first.SpanContext().TraceID().String() != traceID ||
		first.Parent().SpanID().String() != parent || !first.Parent().IsRemote() {
		t.Errorf("first span %q trace %s parent %s: want the route, continuing %s/%s", first.Name(), first.SpanContext().TraceID(),
			first.Parent().SpanID(), traceID, parent)
	}
	if second.SpanContext().TraceID().String() == traceID || second.Parent().IsValid() {
		t.Errorf("a request without traceparent continued a trace")
	}
	if third.Name() != "GET unmatched" {
		t.Errorf("a request to no route is named %q", third.Name())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(logs.String(), "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line["msg"] != "handling" || line["trace_id"] != traceID || line["span_id"] != first.SpanContext().SpanID().String() {
		t.Errorf("log line %v: want trace_id %s and span_id %s", line, traceID, first.SpanContext().SpanID())
	}
}

// BenchmarkInstrument is the middleware's own cost per request (a handler that does
// nothing) with tracing off, on at 1% and at 100% sampling (no exporter: the span is made
// and ended, not sent): go test -bench Instrument ./internal/httpx.
func BenchmarkInstrument(b *testing.B) {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/stores/{store}/skus/{sku}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	for _, c := range []struct {
		name string
		tr   *tracing.Tracing
	}{
		{"off", nil},
		{"sampled=1%", tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01)))))},
		{"sampled=100%", tracing.New(sdktrace.NewTracerProvider())},
	} {
		h := httpx.Instrument(mux, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), httpx.Options{Tracing: c.tr})
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest("GET", "/v1/stores/S001/skus/8809461234567", nil)
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
