package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/pos"
)

// runLoadgen is `jaego loadgen`: a realistic POS day (thousands of stores, long-tail SKUs,
// lunch and after-work peaks) produced as stock events, compressed into as long as --rate
// makes it. The same --seed always gives the same day.
func runLoadgen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	var opts pos.DayOptions
	var rate int
	var linger time.Duration
	f := newEnvFlags("loadgen", getenv, stderr)
	f.String(&cfg.KafkaBrokers, "kafka", "JAEGO_KAFKA_BROKERS", "", "Kafka brokers host:port,… (required)")
	f.String(&cfg.KafkaTopic, "topic", "JAEGO_KAFKA_TOPIC", invkafka.DefaultTopic, "topic of stock events")
	f.Int(&opts.Transactions, "transactions", "JAEGO_LOADGEN_TRANSACTIONS", 100000, "POS transactions in the day")
	f.Int(&opts.Stores, "stores", "JAEGO_LOADGEN_STORES", 1300, "stores")
	f.Int(&opts.SKUs, "skus", "JAEGO_LOADGEN_SKUS", 20000, "SKUs")
	f.Int(&rate, "rate", "JAEGO_LOADGEN_RATE", 0, "events per second (0: as fast as the broker takes them)")
	f.Duration(&linger, "linger", "JAEGO_LOADGEN_LINGER", 5*time.Millisecond, "producer linger")
	seed := 1
	f.Int(&seed, "seed", "JAEGO_LOADGEN_SEED", 1, "random seed: the same seed gives the same day")
	logFlags(f, &cfg)
	if err := f.Parse(args); err != nil {
		return err
	}
	if cfg.KafkaBrokers == "" {
		return errors.New("--kafka (JAEGO_KAFKA_BROKERS) is required")
	}
	opts.Seed = int64(seed)
	prod, err := invkafka.NewProducer(invkafka.ProducerOptions{Brokers: splitList(cfg.KafkaBrokers), Topic: cfg.KafkaTopic,
		Linger: linger, Registerer: prometheus.NewRegistry(), Logger: cfg.logger(stderr)})
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := produceDay(ctx, pos.Day(opts), rate, func(e inventory.Event) error { return prod.Produce(ctx, e) })
	if err != nil {
		return err
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := prod.Close(closeCtx); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "produced %d events of %d transactions in %s (%.0f events/s)\n", n, opts.Transactions, el.Round(time.Millisecond), float64(n)/el.Seconds())
	return ctx.Err()
}

// produceDay produces the stock events of day's transactions, paced at rate events per second
// (0: unpaced), until the day ends or ctx is cancelled; it returns how many it produced. A
// cancel stops the generator too: the rest of the day is not generated.
func produceDay(ctx context.Context, day iter.Seq[pos.Transaction], rate int, produce func(inventory.Event) error) (int, error) {
	start := time.Now()
	n := 0
	for t := range day {
		for _, e := range t.Events() {
			if rate > 0 {
				// Pace by the clock: event n is due at start + n/rate.
				if wait := time.Until(start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
					}
				}
			}
			if ctx.Err() != nil {
				return n, nil
			}
			e.OccurredAt = time.Now().UTC() // the day is replayed now: latency is measured from now
			if err := produce(e); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
