// Package http is the relay's HTTP intake: POS transactions posted as NDJSON, validated
// whole, then produced to Kafka as stock events.
package http

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/pos"
)

// API is the relay intake.
type API struct {
	producer pos.Producer
	tracer   trace.Tracer // nil: tracing off
	log      *slog.Logger
}

// New returns the intake producing to p, each transaction a span of tr (nil: none).
func New(p pos.Producer, tr trace.Tracer, log *slog.Logger) *API {
	return &API{producer: p, tracer: tr, log: log}
}

// Register adds the relay's routes to mux. This is the one list of them.
func (a *API) Register(mux httpx.Mux) {
	mux.Handle("POST /relay", a.relay())
}

func (a *API) relay() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := httpx.ReadBody(w, r)
		if err != nil {
			httpx.Fail(w, r, a.log, err)
			return
		}
		// Validate the whole body before producing any of it: a bad request changes nothing.
		if _, err := pos.Read(bytes.NewReader(body), func([]inventory.Event) error { return nil }); err != nil {
			p := httpx.ProblemOf(jaego.Errorf(jaego.CodeInvalid, "%v", err))
			var le *pos.LineError
			if errors.As(err, &le) {
				p.Extra["line"] = le.Line
			}
			httpx.WriteProblem(w, p)
			return
		}
		st, err := pos.Relay(r.Context(), bytes.NewReader(body), a.producer, a.tracer)
		if err != nil {
			httpx.Fail(w, r, a.log, jaego.Errorf(jaego.CodeKafkaUnavailable, "producing to Kafka: %v", err))
			return
		}
		httpx.WriteJSON(w, http.StatusOK, st)
	})
}
