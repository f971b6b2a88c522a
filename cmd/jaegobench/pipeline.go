package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jaego/jaego/internal/embedded"
	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/pos"
)

// benchPipeline measures the POS pipeline on a private redis-server and an in-process
// Kafka-protocol broker (kfake), all on this machine:
//  1. end-to-end throughput (produce → broker → consumer group → Redis) of a POS day, as a
//     ratio to redis-benchmark -P 32 running the apply script, in the same run;
//  2. consumer lag and end-to-end latency at a steady rate;
//  3. relay producer throughput (NDJSON POS transactions → stock events) at linger 0/5/50 ms.
func benchPipeline(ctx context.Context, out io.Writer, n, rate int, steady time.Duration, rounds int) error {
	client, srv, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	var events []inventory.Event
	for tx := range pos.Day(pos.DayOptions{Transactions: n * 2 / 3, Seed: 11}) {
		events = append(events, tx.Events()...)
	}
	events = events[:min(n, len(events))]
	if err := client.Do(ctx, client.B().Flushall().Build()).Error(); err != nil {
		return err
	}
	broker, err := embedded.StartKafka("127.0.0.1:0", 8, invkafka.DefaultTopic, invkafka.DefaultTopic+invkafka.DLQSuffix)
	if err != nil {
		return err
	}
	defer broker.Close()
	pl := &pipeline{reg: prometheus.NewRegistry(), events: events}
	if pl.cons, err = invkafka.NewConsumer(invredis.New(client, invredis.Options{}),
		invkafka.ConsumerOptions{Brokers: []string{broker.Addr}, Registerer: pl.reg, Logger: quietLog}); err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = pl.cons.Run(cctx) }()
	if pl.prod, err = invkafka.NewProducer(invkafka.ProducerOptions{Brokers: []string{broker.Addr}, Registerer: prometheus.NewRegistry(), Logger: quietLog}); err != nil {
		return err
	}
	// Rounds of the baseline and the pipeline, the order rotating; each round's day has ids
	// of its own (a replayed id would be a cheaper duplicate).
	var bases, rates, ratios []float64
	var used [2]cpuTimes // baseline, pipeline: what they cost the machine, summed over rounds
	for round := range rounds {
		var base, rate float64
		for i := range 2 {
			before := cpuNow(client)
			if (i+round)%2 == 0 {
				if err := client.Do(ctx, client.B().Flushall().Build()).Error(); err != nil {
					return err
				}
				if base, err = redisBenchmarkScript(ctx, client, srv.Addr, n); err != nil {
					return err
				}
			} else if rate, err = pl.throughput(ctx, fmt.Sprintf("r%d-", round)); err != nil {
				return err
			}
			used[(i+round)%2] = used[(i+round)%2].plus(cpuNow(client).minus(before))
		}
		bases, rates, ratios = append(bases, base), append(rates, rate), append(ratios, rate/base)
	}
	lo, hi := minMax(ratios)
	med := median(ratios)
	fmt.Fprintf(out, "| POS day, %d events, 8 partitions, %d rounds | events/s (mean) | ratio to baseline, median of rounds (min–max) |\n|---|---:|---:|\n", len(pl.events), rounds)
	fmt.Fprintf(out, "| redis-benchmark EVALSHA apply script -P 32 -c 50 (baseline) | %.0f | 1.00 |\n", mean(bases))
	fmt.Fprintf(out, "| produce → kfake → consumer group → Redis, end to end | %.0f | %.2f (%.2f–%.2f) |\n\n", mean(rates), med, lo, hi)
	// Redis runs the script on one thread, the rest shares the other core with it: these say
	// which of the two is the limit.
	fmt.Fprintf(out, "| CPU an event (µs, %d rounds) | Redis | of it in EVALSHA | this process (producer, kfake, consumer) | others (redis-benchmark, kernel) | stolen |\n|---|---:|---:|---:|---:|---:|\n", rounds)
	for i, name := range []string{"redis-benchmark (baseline)", "end to end"} {
		events := n * rounds
		if i == 1 {
			events = len(pl.events) * rounds
		}
		writeScriptCost(out, name, used[i].each(events))
	}
	fmt.Fprintln(out)
	measured(out, goalRow{Path: "POS pipeline end to end", Baseline: "redis-benchmark EVALSHA -P 32", Value: med, Min: lo, Max: hi, AtLeast: true, Goal: 1.0})
	if err := pl.steady(ctx, out, rate, steady); err != nil {
		return err
	}
	return relayLinger(ctx, out, n)
}

// pipeline is the measured pipeline: a producer, a consumer group into Redis, its metrics.
type pipeline struct {
	reg      *prometheus.Registry
	cons     *invkafka.Consumer
	prod     *invkafka.Producer
	events   []inventory.Event
	sent     int   // events produced by the steady run
	produced int64 // events produced by the throughput rounds
}

// throughput produces the day at once, its ids prefixed, and waits until the consumer
// applied it; it answers events/s.
func (pl *pipeline) throughput(ctx context.Context, prefix string) (float64, error) {
	start := time.Now()
	for _, e := range pl.events {
		e.EventID = prefix + e.EventID
		if err := pl.prod.Produce(ctx, e); err != nil {
			return 0, err
		}
	}
	if err := pl.prod.Flush(ctx); err != nil {
		return 0, err
	}
	pl.produced += int64(len(pl.events))
	for pl.cons.Handled() < pl.produced {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	return float64(len(pl.events)) / time.Since(start).Seconds(), nil
}

// steady produces rate events a second for d, sampling the consumer lag, then reports the
// end-to-end latency and the lag.
func (pl *pipeline) steady(ctx context.Context, out io.Writer, rate int, d time.Duration) error {
	before := histogram(pl.reg, "jaego_consumer_end_to_end_seconds")
	var lagSamples []float64
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sample := time.NewTicker(100 * time.Millisecond)
	defer sample.Stop()
	for time.Since(start) < d {
		select {
		case <-tick.C:
			for due := int(time.Since(start).Seconds() * float64(rate)); pl.sent < due; pl.sent++ {
				e := pl.events[pl.sent%len(pl.events)]
				e.EventID = fmt.Sprintf("steady-%d", pl.sent)
				if err := pl.prod.Produce(ctx, e); err != nil {
					return err
				}
			}
		case <-sample.C:
			lagSamples = append(lagSamples, metricSum(pl.reg, "jaego_consumer_lag"))
		}
	}
	if err := pl.prod.Close(ctx); err != nil {
		return err
	}
	for pl.cons.Handled() < pl.produced+int64(pl.sent) {
		time.Sleep(time.Millisecond)
	}
	after := histogram(pl.reg, "jaego_consumer_end_to_end_seconds")
	sort.Float64s(lagSamples)
	fmt.Fprintf(out, "| steady %d events/s for %s (%d events) | value |\n|---|---:|\n", rate, d, pl.sent)
	fmt.Fprintf(out, "| end-to-end latency p50 (produce → applied) | %s |\n", ms(quantile(before, after, 0.5)))
	fmt.Fprintf(out, "| end-to-end latency p99 | %s |\n", ms(quantile(before, after, 0.99)))
	fmt.Fprintf(out, "| consumer lag, median of 100 ms samples (records) | %.0f |\n", lagSamples[len(lagSamples)/2])
	fmt.Fprintf(out, "| consumer lag, max (records) | %.0f |\n\n", lagSamples[len(lagSamples)-1])
	return nil
}

// relayLinger measures the relay's producer (NDJSON POS transactions → stock events) at
// linger 0, 5 and 50 ms, each on a broker of its own.
func relayLinger(ctx context.Context, out io.Writer, n int) error {
	var ndjson bytes.Buffer
	enc := json.NewEncoder(&ndjson)
	txns := 0
	for tx := range pos.Day(pos.DayOptions{Transactions: n * 2 / 3, Seed: 12}) {
		if err := enc.Encode(tx); err != nil {
			return err
		}
		txns++
	}
	fmt.Fprintf(out, "| relay: %d POS transactions (NDJSON) → stock events | events/s | batches | events per batch | ratio to linger 0 |\n|---|---:|---:|---:|---:|\n", txns)
	var rate0 float64
	for _, linger := range []time.Duration{0, 5 * time.Millisecond, 50 * time.Millisecond} {
		r, batches, events, err := relayOnce(ctx, ndjson.Bytes(), linger)
		if err != nil {
			return err
		}
		if linger == 0 {
			rate0 = r
		}
		fmt.Fprintf(out, "| linger %s | %.0f | %.0f | %.1f | %.2f |\n", linger, r, batches, float64(events)/batches, r/rate0)
	}
	return nil
}

// relayOnce relays ndjson through a producer with linger: events/s, batches, events.
func relayOnce(ctx context.Context, ndjson []byte, linger time.Duration) (float64, float64, int, error) {
	k, err := embedded.StartKafka("127.0.0.1:0", 8, invkafka.DefaultTopic)
	if err != nil {
		return 0, 0, 0, err
	}
	defer k.Close()
	preg := prometheus.NewRegistry()
	p, err := invkafka.NewProducer(invkafka.ProducerOptions{Brokers: []string{k.Addr}, Linger: linger, Registerer: preg, Logger: quietLog})
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	st, err := pos.Read(bytes.NewReader(ndjson), func(evs []inventory.Event) error {
		for _, e := range evs {
			if err := p.Produce(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = p.Close(ctx)
	}
	if err != nil {
		return 0, 0, 0, err
	}
	return float64(st.Events) / time.Since(start).Seconds(), metricSum(preg, "jaego_producer_batches_total"), st.Events, nil
}

func metricSum(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func histogram(reg *prometheus.Registry, name string) *dto.Histogram {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	return &dto.Histogram{}
}

// quantile estimates a quantile of the observations made between two snapshots of a
// histogram, interpolating linearly within a bucket (as PromQL's histogram_quantile).
func quantile(before, after *dto.Histogram, q float64) time.Duration {
	prev := map[float64]uint64{}
	for _, b := range before.GetBucket() {
		prev[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	total := after.GetSampleCount() - before.GetSampleCount()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, lowerCount := 0.0, 0.0
	for _, b := range after.GetBucket() {
		c := float64(b.GetCumulativeCount() - prev[b.GetUpperBound()])
		if c >= rank {
			frac := (rank - lowerCount) / math.Max(c-lowerCount, 1)
			return time.Duration((lower + frac*(b.GetUpperBound()-lower)) * float64(time.Second))
		}
		lower, lowerCount = b.GetUpperBound(), c
	}
	return time.Duration(lower * float64(time.Second))
}
