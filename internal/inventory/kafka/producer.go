package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/tracing"
)

// ProducerOptions tunes the asynchronous batching of the producer. The store relay
// servers are old and small: linger and batch size trade a few milliseconds of delay for
// far fewer requests.
type ProducerOptions struct {
	Brokers []string
	Topic   string // default DefaultTopic
	// Linger is how long a partition's batch waits for more records (linger.ms); default 5ms.
	Linger time.Duration
	// BatchBytes caps one batch (batch.size); default 1 MiB.
	BatchBytes int32
	// BufferBytes caps what is buffered and not yet acknowledged (buffer.memory); Produce
	// blocks beyond it. Default 32 MiB.
	BufferBytes int
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	ClientOpts  []kgo.Opt
	// Tracing, when on, gives every sampled record a publish span (a child of the context
	// given to Produce) and carries its context in the record's headers (traceparent), so
	// the consumer continues the trace (trace.go).
	Tracing *tracing.Tracing
}

// Producer sends stock events to Kafka, keyed by store, with the idempotent producer
// (franz-go's default: no duplicates or reordering from its own retries) and acks=all.
type Producer struct {
	client   *kgo.Client
	topic    string
	log      *slog.Logger
	failed   atomic.Int64
	firstErr error
	mu       sync.Mutex
	m        producerMetrics
}

type producerMetrics struct {
	produced *prometheus.CounterVec
	batches  prometheus.Counter
}

// NewProducer connects lazily to the brokers.
func NewProducer(opts ProducerOptions) (*Producer, error) {
	if opts.Topic == "" {
		opts.Topic = DefaultTopic
	}
	if opts.Linger < 0 {
		return nil, fmt.Errorf("linger must be >= 0, got %s", opts.Linger)
	}
	if opts.BatchBytes == 0 {
		opts.BatchBytes = 1 << 20
	}
	if opts.BufferBytes == 0 {
		opts.BufferBytes = 32 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Producer{topic: opts.Topic, log: opts.Logger}
	f := promauto.With(opts.Registerer)
	p.m = producerMetrics{
		produced: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_producer_records_total",
			Help: "Stock event records produced, by outcome: acked, failed."}, []string{"outcome"}),
		batches: f.NewCounter(prometheus.CounterOpts{Name: "jaego_producer_batches_total",
			Help: "Record batches written to the brokers."}),
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.DefaultProduceTopic(opts.Topic),
		kgo.ProducerLinger(opts.Linger),
		kgo.ProducerBatchMaxBytes(opts.BatchBytes),
		kgo.MaxBufferedBytes(opts.BufferBytes),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as the Java client
		kgo.WithHooks(batchCounter{p.m.batches}),
	}, opts.ClientOpts...)
	kopts = append(kopts, traceHooks(opts.Tracing)...)
	client, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p.client = client
	return p, nil
}

type batchCounter struct{ c prometheus.Counter }

// OnProduceBatchWritten implements kgo.HookProduceBatchWritten.
func (b batchCounter) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, _ kgo.ProduceBatchMetrics) {
	b.c.Inc()
}

// Produce buffers e and returns at once (blocking only while the buffer is full). Failures
// are counted and reported by Flush.
func (p *Producer) Produce(ctx context.Context, e inventory.Event) error {
	r, err := Encode(p.topic, e)
	if err != nil {
		return err
	}
	p.client.Produce(ctx, r, func(r *kgo.Record, err error) {
		if err != nil {
			p.m.produced.WithLabelValues("failed").Inc()
			if p.failed.Add(1) == 1 {
				p.mu.Lock()
				p.firstErr = err
				p.mu.Unlock()
			}
			p.log.Error("produce failed", "store", string(r.Key), "err", err)
			return
		}
		p.m.produced.WithLabelValues("acked").Inc()
	})
	return nil
}

// Flush waits until everything buffered is acknowledged, and answers the first failure
// since the last Flush, with the count.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.client.Flush(ctx); err != nil {
		return err
	}
	if n := p.failed.Swap(0); n > 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return fmt.Errorf("%d records were not produced, first: %w", n, p.firstErr)
	}
	return nil
}

// Close flushes and disconnects.
func (p *Producer) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.client.Close()
	return err
}
