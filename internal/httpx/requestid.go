package httpx

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"

	"github.com/jaego/jaego/internal/jaego"
	"go.opentelemetry.io/otel/trace"
)

// RequestIDHeader carries a request's id: the caller's when it sent a sane one, else a new
// one; every answer has it, and so has every log line of the request and every problem body.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID is the id of the request ctx belongs to ("" outside a request).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestID takes the caller's id (1–128 printable ASCII characters) or makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); len(id) > 0 && len(id) <= 128 {
		ok := true
		for i := 0; i < len(id) && ok; i++ {
			ok = id[i] > 0x20 && id[i] < 0x7f
		}
		if ok {
			return id
		}
	}
	// 96 random bits from the runtime's per-thread generator (math/rand/v2): an id must be
	// unique, not secret.
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	return hex.EncodeToString(b[:])
}

// Caller is the name of the API key the request was made with ("" without access control).
func Caller(ctx context.Context) string { return jaego.Caller(ctx) }

// ContextHandler adds the request id, the caller and the trace and span ids of a record's
// context to it, so that a handler that logs with the request's context
// (log.InfoContext(r.Context(), …)) needs to do nothing else.
type ContextHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if c := Caller(ctx); c != "" {
		r.AddAttrs(slog.String("key", c))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h ContextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ContextHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{h.Handler.WithGroup(name)}
}
