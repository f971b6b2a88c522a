package main

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/jaego/jaego/internal/tracing"
)

// startTracing sets tracing up from the OTEL_* variables (design §16) for the command
// named service; nil and a stop that does nothing when they do not ask for it. stop
// exports the spans still buffered (for up to 5 s).
func startTracing(ctx context.Context, getenv func(string) string, service string, log *slog.Logger) (*tracing.Tracing, func(), error) {
	tr, err := tracing.Setup(ctx, getenv, service, readBuildInfo().Version)
	if err != nil || !tr.On() {
		return nil, func() {}, err
	}
	// The SDK reports export failures through one process-wide handler: into our log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		tr.Failed()
		log.Warn("tracing", "err", err)
	}))
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	log.Info("tracing on", "endpoint", endpoint, "sampler", orNone(getenv("OTEL_TRACES_SAMPLER")))
	return tr, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			log.Warn("tracing: the last spans were not exported", "err", err)
		}
	}, nil
}
