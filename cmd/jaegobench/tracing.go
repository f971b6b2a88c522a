package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/jaego/jaego/internal/embedded"
	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/pos"
	"github.com/jaego/jaego/internal/tracing"
)

// tracingFlags reads the flags of `jaegobench tracing`.
func tracingFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	events := fs.Int("events", 150_000, "POS events of one pipeline phase")
	dur := fs.Duration("duration", 30*time.Second, "lookup load per mode, over all rounds")
	conns := fs.Int("conns", 32, "concurrent lookup connections")
	rounds := fs.Int("rounds", 5, "rounds; the order of the modes rotates")
	return func(ctx context.Context, out io.Writer) error {
		if *rounds < 1 {
			return fmt.Errorf("-rounds must be at least 1")
		}
		return benchTracing(ctx, out, *events, *dur, *conns, *rounds)
	}
}

// traceMode is tracing off, or on with a sampling ratio, exporting over OTLP/HTTP to a
// local receiver that reads and drops every batch (the cost measured is jaego's).
type traceMode struct {
	name  string
	ratio float64 // < 0: off
	tr    *tracing.Tracing
}

// benchTracing measures the POS pipeline (events/s, produce → kfake → consumer → Redis) and
// the single-SKU lookup over HTTP (lookups/s) with tracing off, on at 1% and at 100%
// sampling, the modes rotating over rounds in one run; ratios are to off.
func benchTracing(ctx context.Context, out io.Writer, events int, dur time.Duration, conns, rounds int) error {
	var spans, batches atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		batches.Add(1)
		spans.Add(n)
	}))
	defer sink.Close()
	modes := []*traceMode{{name: "off", ratio: -1}, {name: "on, 1% sampled", ratio: 0.01}, {name: "on, 100% sampled", ratio: 1}}
	for _, m := range modes {
		if m.ratio < 0 {
			continue
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(sink.URL+"/v1/traces"))
		if err != nil {
			return err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(m.ratio))))
		m.tr = tracing.New(tp)
		defer m.tr.Shutdown(context.Background())
	}

	client, _, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	var day []inventory.Event
	for tx := range pos.Day(pos.DayOptions{Transactions: events * 2 / 3, Seed: 17}) {
		day = append(day, tx.Events()...)
	}
	day = day[:min(events, len(day))]

	// Events: one pipeline per mode and round, on a broker of its own.
	pipe := make(map[string][]float64)
	for round := range rounds {
		for i := range modes {
			m := modes[(i+round)%len(modes)]
			rate, err := tracedPipeline(ctx, client, m, day, fmt.Sprintf("r%d-%d-", round, i))
			if err != nil {
				return fmt.Errorf("pipeline %s: %w", m.name, err)
			}
			pipe[m.name] = append(pipe[m.name], rate)
		}
	}

	// Lookups: one server per mode on one store, the load rotating.
	store := invredis.New(client, invredis.Options{})
	skus, err := seedSKUs(ctx, store)
	if err != nil {
		return err
	}
	look := make(map[string][]loadResult)
	urls := make(map[string]string)
	for _, m := range modes {
		mux := http.NewServeMux()
		invhttp.New(invredis.New(client, invredis.Options{Tracer: m.tr.Tracer()}), invhttp.Options{}).Register(mux)
		l, err := listen(httpx.Instrument(mux, prometheus.NewRegistry(), quietLog, httpx.Options{Tracing: m.tr}))
		if err != nil {
			return err
		}
		defer l.Close()
		urls[m.name] = "http://" + l.Addr().String()
	}
	for round := range rounds {
		for i := range modes {
			m := modes[(i+round)%len(modes)]
			base := urls[m.name]
			res, err := load(ctx, get(func(r *rand.Rand) string { return base + "/v1/stores/S0001/skus/" + skus[r.IntN(benchSKUs)] }), conns, dur/time.Duration(rounds))
			if err != nil {
				return fmt.Errorf("lookups %s: %w", m.name, err)
			}
			look[m.name] = append(look[m.name], res)
		}
	}

	fmt.Fprintf(out, "| tracing (%d rounds, modes rotating) | events/s, pipeline (%d events) | ratio to off, median of rounds (min–max) | lookups/s, %d connections | ratio to off, median (min–max) | lookup p99 |\n|---|---:|---:|---:|---:|---:|\n",
		rounds, len(day), conns)
	offPipe := pipe[modes[0].name]
	for mi, m := range modes {
		var pr, lr []float64
		for r := range rounds {
			pr = append(pr, pipe[m.name][r]/offPipe[r])
			lr = append(lr, look[m.name][r].rate/look[modes[0].name][r].rate)
		}
		all := merge(look[m.name])
		// The median of the rounds' ratios: each round's modes ran back to back, so the
		// machine's drift between rounds cancels, and one disturbed phase does not decide.
		pMean, lMean := median(pr), median(lr)
		plo, phi := minMax(pr)
		llo, lhi := minMax(lr)
		fmt.Fprintf(out, "| %s | %.0f | %.2f (%.2f–%.2f) | %.0f | %.2f (%.2f–%.2f) | %s |\n", m.name, mean(pipe[m.name]), pMean, plo, phi,
			all.rate, lMean, llo, lhi, ms(all.lat.pct(.99)))
		if mi == 0 {
			continue
		}
		goal := 0.97
		if m.ratio == 1 {
			goal = 0.8
		}
		measured(out, goalRow{Path: "events/s, tracing " + m.name, Baseline: "tracing off", Value: pMean, Min: plo, Max: phi, AtLeast: true, Goal: goal})
		measured(out, goalRow{Path: "lookups/s, tracing " + m.name, Baseline: "tracing off", Value: lMean, Min: llo, Max: lhi, AtLeast: true, Goal: goal})
	}
	fmt.Fprintf(out, "\nThe OTLP receiver took %d batches, %.1f MB in all.\n\n", batches.Load(), float64(spans.Load())/1e6)
	return nil
}

// tracedPipeline runs day through a producer, a kfake broker and a consumer into Redis, all
// traced as m says, and answers events/s from the first produce to the last apply.
func tracedPipeline(ctx context.Context, client rueidis.Client, m *traceMode, day []inventory.Event, prefix string) (float64, error) {
	broker, err := embedded.StartKafka("127.0.0.1:0", 8, invkafka.DefaultTopic, invkafka.DefaultTopic+invkafka.DLQSuffix)
	if err != nil {
		return 0, err
	}
	defer broker.Close()
	cons, err := invkafka.NewConsumer(invredis.New(client, invredis.Options{Tracer: m.tr.Tracer()}), invkafka.ConsumerOptions{
		Brokers: []string{broker.Addr}, Registerer: prometheus.NewRegistry(), Logger: quietLog, Tracing: m.tr})
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = cons.Run(cctx); close(done) }()
	defer func() { cancel(); <-done; cons.Close() }()
	prod, err := invkafka.NewProducer(invkafka.ProducerOptions{Brokers: []string{broker.Addr}, Registerer: prometheus.NewRegistry(),
		Logger: quietLog, Tracing: m.tr})
	if err != nil {
		return 0, err
	}
	defer prod.Close(context.Background())
	start := time.Now()
	for _, e := range day {
		e.EventID = prefix + e.EventID
		if err := prod.Produce(ctx, e); err != nil {
			return 0, err
		}
	}
	if err := prod.Flush(ctx); err != nil {
		return 0, err
	}
	for cons.Handled() < int64(len(day)) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	return float64(len(day)) / time.Since(start).Seconds(), nil
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
