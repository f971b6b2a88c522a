package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/tracing"
)

// Options configures Instrument.
type Options struct {
	// AccessLog logs one line per request (method, path, route, status, duration, request
	// id, remote address).
	AccessLog bool
	// Authorize, when set, checks every matched request before its handler: it returns the
	// caller's name (kept in the request's context: Caller, and every log line of it) or an
	// unauthenticated or forbidden error, answered as a problem. A change under /v1/admin/
	// by a named caller is logged as an audit line.
	Authorize func(r *http.Request) (caller string, err error)
	// Limit, when set, takes a token of the authorized caller's rate limit: it sets the
	// RateLimit headers on h and answers an error (429 rate_limited) past the limit.
	Limit func(caller string, h http.Header) error
	// Tracing, when on, continues the caller's traceparent (or starts a trace) with one
	// server span per request, named by its route, and puts the trace id on the latency
	// histogram as an exemplar.
	Tracing *tracing.Tracing
}

// Instrument wraps a ServeMux: it gives every request an id (X-Request-Id), records
// jaego_http_requests_total and jaego_http_request_duration_seconds by route pattern, logs
// 5xx answers and panics (and every request with Options.AccessLog), turns a panic into a
// 500 problem, and answers unknown paths and methods with problem+json.
func Instrument(mux *http.ServeMux, reg prometheus.Registerer, log *slog.Logger, opts ...Options) http.Handler {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	f := promauto.With(reg)
	requests := f.NewCounterVec(prometheus.CounterOpts{
		Name: "jaego_http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	denied := f.NewCounterVec(prometheus.CounterOpts{
		Name: "jaego_auth_denied_total",
		Help: "Requests refused by access control, by code (unauthenticated, forbidden).",
	}, []string{"code"})
	limited := f.NewCounterVec(prometheus.CounterOpts{
		Name: "jaego_rate_limited_total",
		Help: "Requests refused with 429 rate_limited, by API key name (names come from the keys file only).",
	}, []string{"key"})
	latency := f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jaego_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"route"})

	tracer, prop := o.Tracing.Tracer(), o.Tracing.Propagator()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		w.Header().Set(RequestIDHeader, id)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		var span trace.Span
		if tracer != nil {
			ctx, span = serverSpan(ctx, tracer, prop, r)
		}
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic in handler", "method", r.Method, "path", r.URL.Path, "panic", p)
				if rec.status == 0 {
					WriteProblem(rec, ProblemOf(errors.New("panic")))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			requests.WithLabelValues(route, MethodLabel(r.Method), strconv.Itoa(rec.code())).Inc()
			tracing.Observe(latency.WithLabelValues(route), ctx, time.Since(start).Seconds())
			if span != nil {
				endServerSpan(span, r, route, rec.code())
			}
			took := float64(time.Since(start).Microseconds()) / 1000
			switch {
			case o.AccessLog:
				log.InfoContext(ctx, "request", "method", r.Method, "path", r.URL.Path, "route", route, "status", rec.code(),
					"duration_ms", took, "remote", r.RemoteAddr)
			case rec.code() >= 500:
				log.WarnContext(ctx, "request failed", "method", r.Method, "path", r.URL.Path, "status", rec.code(), "duration_ms", took)
			}
			if caller := Caller(r.Context()); caller != "" && r.Method != http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/admin/") {
				log.InfoContext(r.Context(), "audit", "method", r.Method, "path", r.URL.Path, "status", rec.code())
			}
		}()
		if _, pattern := mux.Handler(r); pattern == "" {
			problemForUnmatched(rec, r, mux)
			return
		}
		// A query string Go's URL.Query would half-read (a bad escape drops the pair, so
		// ?cursor=%%% served the first page) is refused whole.
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			WriteProblem(rec, ProblemOf(jaego.Errorf(jaego.CodeInvalid, "malformed query string: %v", err)))
			return
		}
		if o.Authorize != nil {
			caller, err := o.Authorize(r)
			if err != nil {
				code := jaego.CodeOf(err)
				denied.WithLabelValues(string(code)).Inc()
				if code == jaego.CodeUnauthenticated {
					rec.Header().Set("WWW-Authenticate", `Bearer realm="jaego"`)
				}
				WriteProblem(rec, ProblemOf(err))
				return
			}
			if caller != "" {
				r = r.WithContext(jaego.WithCaller(r.Context(), caller))
			}
			if o.Limit != nil && caller != "" {
				if err := o.Limit(caller, rec.Header()); err != nil {
					limited.WithLabelValues(caller).Inc()
					WriteProblem(rec, ProblemOf(err))
					return
				}
			}
		}
		mux.ServeHTTP(rec, r)
	})
}

// serverSpan continues the caller's trace context (traceparent) in a server span of
// r. Attributes are set only on a span that records: an unsampled request costs the
// header parse and the span's ids, nothing more (otelhttp computed every attribute and
// wrapped the writer for every request, sampled or not: 19% of lookups/s at 1% sampling,
// docs/benchmarks.md).
func serverSpan(ctx context.Context, tr trace.Tracer, prop propagation.TextMapPropagator, r *http.Request) (context.Context, trace.Span) {
	if _, ok := r.Header["Traceparent"]; ok {
		ctx = prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := tr.Start(ctx, MethodLabel(r.Method), serverKind...)
	if span.IsRecording() {
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(MethodLabel(r.Method)), semconv.URLPath(r.URL.Path),
			semconv.ServerAddress(r.Host), semconv.NetworkPeerAddress(r.RemoteAddr), semconv.UserAgentOriginal(r.UserAgent()))
	}
	return ctx, span
}

var serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// endServerSpan names the span by its route (a pattern names its method, "GET /v1/…", or
// not, "/console/") and ends it with the status: an error from 500 on.
func endServerSpan(span trace.Span, r *http.Request, route string, status int) {
	if span.IsRecording() {
		name := route
		if !strings.Contains(route, " ") {
			name = MethodLabel(r.Method) + " " + route
		}
		span.SetName(name)
		span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.End()
}

// MethodLabel is a request method as a metric label: the methods of RFC 9110 and PATCH
// as they are, anything else "other", so that no client can create label values (a
// series per random method).
func MethodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// problemForUnmatched lets the mux decide between 404 and 405 (with its Allow header) and
// answers that status as problem+json instead of the mux's plain text.
func problemForUnmatched(w http.ResponseWriter, r *http.Request, mux *http.ServeMux) {
	probe := &headerOnly{header: http.Header{}}
	mux.ServeHTTP(probe, r)
	status := probe.status
	if status == 0 {
		status = http.StatusNotFound
	}
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	err := jaego.Errorf(jaego.CodeNotFound, "no such resource: %s", r.URL.Path)
	if status == http.StatusMethodNotAllowed {
		err = jaego.Errorf(jaego.CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
	}
	WriteProblem(w, ProblemOf(err))
}

type headerOnly struct {
	header http.Header
	status int
}

func (h *headerOnly) Header() http.Header         { return h.header }
func (h *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerOnly) WriteHeader(status int)      { h.status = status }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Unwrap lets http.ResponseController reach Flush and deadlines of the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
