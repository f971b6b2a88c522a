package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/auth"
	"github.com/jaego/jaego/internal/httpx"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/pos"
	poshttp "github.com/jaego/jaego/internal/pos/http"
	"github.com/jaego/jaego/internal/tracing"
)

// relayConfig is the configuration of `jaego relay`.
type relayConfig struct {
	config
	In          string
	Linger      time.Duration
	BatchBytes  int
	BufferBytes int
}

// runRelay is `jaego relay`: POS transactions (NDJSON) in, stock events out to Kafka with
// asynchronous batching. Input comes from --in (a file, or - for stdin) or, with --http,
// from POST /relay. A malformed line stops the relay with its line number (stdin/file) or
// refuses the whole request (HTTP); nothing is skipped silently.
func runRelay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, stdin io.Reader) error {
	var cfg relayConfig
	f := newEnvFlags("relay", getenv, stderr)
	f.String(&cfg.KafkaBrokers, "kafka", "JAEGO_KAFKA_BROKERS", "", "Kafka brokers host:port,… (required)")
	f.String(&cfg.KafkaTopic, "topic", "JAEGO_KAFKA_TOPIC", invkafka.DefaultTopic, "topic of stock events")
	f.String(&cfg.In, "in", "JAEGO_RELAY_IN", "-", "NDJSON input file, - for stdin; ignored with --http")
	f.String(&cfg.HTTPAddr, "http", "JAEGO_RELAY_HTTP", "", "serve POST /relay on this address instead of reading --in")
	f.Duration(&cfg.Linger, "linger", "JAEGO_RELAY_LINGER", 5*time.Millisecond, "how long a batch waits for more records (linger.ms)")
	f.Int(&cfg.BatchBytes, "batch-bytes", "JAEGO_RELAY_BATCH_BYTES", 1<<20, "maximum bytes of one record batch (batch.size)")
	f.Int(&cfg.BufferBytes, "buffer-bytes", "JAEGO_RELAY_BUFFER_BYTES", 32<<20, "maximum bytes buffered before produce blocks (buffer.memory)")
	logFlags(f, &cfg.config)
	authFlags(f, &cfg.config)
	if err := f.Parse(args); err != nil {
		return err
	}
	if cfg.HTTPAddr != "" {
		if err := cfg.authMode("keys"); err != nil { // the HTTP intake is closed unless told otherwise
			return err
		}
	}
	if cfg.KafkaBrokers == "" {
		return errors.New("--kafka (JAEGO_KAFKA_BROKERS) is required")
	}
	if cfg.BatchBytes < 1024 || cfg.BatchBytes > 1<<30 || cfg.BufferBytes < cfg.BatchBytes {
		return fmt.Errorf("--batch-bytes must be 1 KiB..1 GiB and --buffer-bytes at least --batch-bytes (got %d, %d)", cfg.BatchBytes, cfg.BufferBytes)
	}
	log := cfg.logger(stderr)
	tr, stopTracing, err := startTracing(ctx, getenv, "jaego-relay", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := prometheus.NewRegistry()
	tr.Register(reg)
	prod, err := invkafka.NewProducer(invkafka.ProducerOptions{
		Brokers: splitList(cfg.KafkaBrokers), Topic: cfg.KafkaTopic, Linger: cfg.Linger,
		BatchBytes: int32(cfg.BatchBytes), BufferBytes: cfg.BufferBytes, Registerer: reg, Logger: log, Tracing: tr,
	})
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = prod.Close(closeCtx)
	}()
	if cfg.HTTPAddr != "" {
		return serveRelay(ctx, cfg.config, prod, reg, tr, log, stdout)
	}
	in := stdin
	if cfg.In != "-" {
		file, err := os.Open(cfg.In)
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	}
	st, err := pos.Relay(ctx, in, prod, tr.Tracer())
	fmt.Fprintf(stdout, "relayed %d events from %d lines (%d stock transactions; left out: %d non-stock transactions, %d non-stock lines, %d blank lines)\n",
		st.Events, st.Lines, st.StockTxns, st.NonStockTxns, st.NonStockLines, st.BlankLinesSeen)
	if err != nil {
		return fmt.Errorf("relay %s: %w", cfg.In, err)
	}
	return nil
}

func serveRelay(ctx context.Context, cfg config, prod *invkafka.Producer, reg *prometheus.Registry, tr *tracing.Tracing, log *slog.Logger, stdout io.Writer) error {
	addr := cfg.HTTPAddr
	o := httpx.Options{Tracing: tr}
	if cfg.Auth == "keys" {
		guard, err := auth.NewGuard(cfg.APIKeys)
		if err != nil {
			return err
		}
		limit, err := auth.ParseLimit(cfg.RateLimit)
		if err != nil {
			return fmt.Errorf("--rate-limit: %w", err)
		}
		guard.SetDefaultLimit(limit)
		o.Authorize, o.Limit = guard.Authorize, guard.Limit
	} else {
		log.Warn("access control is off (--auth none): POST /relay takes events from anyone who can reach it")
	}
	mux := http.NewServeMux()
	poshttp.New(prod, tr.Tracer(), log).Register(mux)
	mux.Handle("GET /healthz", healthz())
	mux.Handle("GET /metrics", metricsHandler(reg))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("relay http listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: httpx.Instrument(mux, reg, log, o), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "jaego relay\n  api:    http://%s/relay\n", l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
