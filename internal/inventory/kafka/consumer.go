// Package kafka carries stock events over Kafka (design §6): the consumer group that
// applies them to the stock store, and the producer that the POS relay and the load
// generator use.
//
// Delivery: offsets are committed only after their events are applied (or, for poison
// messages, after the dead-letter record is acknowledged), so delivery is at least once; the
// store's idempotency makes the effect exactly once, across crashes and rebalances.
package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/tracing"
)

// Defaults of the pipeline.
const (
	DefaultTopic = "jaego.stock-events"
	DefaultGroup = "jaego-stock"
	DLQSuffix    = ".dlq"
)

// Headers of a dead-letter record.
const (
	HeaderError      = "jaego-error"        // machine code: invalid_json, invalid_input
	HeaderDetail     = "jaego-error-detail" // human-readable reason
	HeaderTopic      = "jaego-original-topic"
	HeaderPartition  = "jaego-original-partition"
	HeaderOffset     = "jaego-original-offset"
	HeaderOccurredAt = "jaego-dead-lettered-at"
)

// ConsumerOptions configures a Consumer.
type ConsumerOptions struct {
	Brokers []string
	Topic   string // default DefaultTopic; the DLQ is Topic + ".dlq"
	Group   string // default DefaultGroup
	// MaxPoll is how many records one poll hands to one Apply; default 2,000.
	MaxPoll int
	// RetryBackoff is the first wait after the store failed; it doubles up to 5 s.
	RetryBackoff time.Duration
	// ApplyTimeout bounds one attempt to apply a poll; default 10 s. A hung Redis is then
	// retried like a dead one.
	ApplyTimeout time.Duration
	// SessionTimeout is how long the group waits for a silent member before reassigning its
	// partitions; default 45 s (Kafka's). Shorter means faster takeover after a crash.
	SessionTimeout time.Duration
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
	// ClientOpts are extra franz-go options (tests shorten session timeouts with them).
	ClientOpts []kgo.Opt
	// GroupLagEvery is how often the lag of every partition of the group (not only this
	// member's) is read from the brokers for jaego_consumer_group_lag; default 15 s.
	GroupLagEvery time.Duration
	// WaitWhole, when set, returns once a store that lost its data (inventory.ErrLost) is
	// whole again (`jaego restore` done). Meanwhile the consumer leaves the group, so that
	// the restore can move the group's offsets back to what the durable copy holds; it then
	// joins again and resumes from there. Without it, a lost store is retried like a dead one.
	WaitWhole func(ctx context.Context) error
	// Tracing, when on, continues the trace of every record that carries one (its
	// traceparent header): each poll is applied in one span, a child of the first traced
	// record's context, linked to every other trace of the poll (trace.go).
	Tracing *tracing.Tracing
	// Loss, with WaitWhole, is a channel closed once the store is known to have lost its
	// data (the breaker's loss state): the consumer leaves its group then, even when no
	// record came to fail on (no POS traffic), so a restore can always move its offsets.
	Loss func() <-chan struct{}
}

// Consumer applies stock events from Kafka to a store.
type Consumer struct {
	mu      sync.Mutex
	client  *kgo.Client
	abandon context.CancelFunc // cancels client's context: what it has in flight fails
	kopts   []kgo.Opt
	store   inventory.StockStore
	opts    ConsumerOptions
	dlq     string
	log     *slog.Logger
	m       consumerMetrics
	done    atomic.Int64
	tracer  trace.Tracer
}

// Handled is how many records this consumer has applied, refused or dead-lettered and
// committed (or tried to commit) since it started.
func (c *Consumer) Handled() int64 { return c.done.Load() }

type consumerMetrics struct {
	records   *prometheus.CounterVec
	lag       *prometheus.GaugeVec
	groupLag  *prometheus.GaugeVec
	batch     prometheus.Histogram
	endToEnd  prometheus.Histogram
	retries   prometheus.Counter
	commitErr prometheus.Counter
}

// NewConsumer joins the consumer group (lazily, on the first poll).
func NewConsumer(store inventory.StockStore, opts ConsumerOptions) (*Consumer, error) {
	if opts.Topic == "" {
		opts.Topic = DefaultTopic
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.MaxPoll <= 0 {
		opts.MaxPoll = 2000
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 100 * time.Millisecond
	}
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 10 * time.Second
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 45 * time.Second
	}
	if opts.GroupLagEvery <= 0 {
		opts.GroupLagEvery = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Consumer{store: store, opts: opts, dlq: opts.Topic + DLQSuffix, log: opts.Logger, tracer: opts.Tracing.Tracer()}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(opts.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			// Only marked records were applied: commit exactly those before letting go.
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				c.log.Warn("commit on revoke failed; the new owner re-applies (idempotently)", "err", err)
			}
			c.forgetLag(revoked)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { c.forgetLag(lost) }),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.SessionTimeout(opts.SessionTimeout),
		kgo.HeartbeatInterval(opts.SessionTimeout / 10),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	}, opts.ClientOpts...)
	kopts = append(kopts, traceHooks(opts.Tracing)...)
	c.kopts = kopts
	if err := c.join(); err != nil {
		return nil, err
	}
	f := promauto.With(opts.Registerer)
	c.m = consumerMetrics{
		records: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_consumer_records_total",
			Help: "Kafka records handled by the stock consumer, by outcome: applied, duplicate, refused, dead_lettered."}, []string{"outcome"}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "jaego_consumer_lag",
			Help: "Records behind the partition's high watermark after the last poll."}, []string{"topic", "partition"}),
		groupLag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "jaego_consumer_group_lag",
			Help: "Records of every partition of the topic not committed by the group, as the brokers see it (every member reports the whole group: take the max per partition)."}, []string{"topic", "partition"}),
		batch: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_consumer_batch_seconds",
			Help: "Time to apply and commit one poll.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		endToEnd: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_consumer_end_to_end_seconds",
			Help: "From the record's timestamp (produce time) to its event being applied.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		retries: f.NewCounter(prometheus.CounterOpts{Name: "jaego_consumer_store_retries_total",
			Help: "Times a poll's events were retried because the stock store was unavailable."}),
		commitErr: f.NewCounter(prometheus.CounterOpts{Name: "jaego_consumer_commit_errors_total",
			Help: "Offset commits that failed (the records are re-applied, idempotently)."}),
	}
	return c, nil
}

// join makes the client that joins the group (lazily, on its first poll).
func (c *Consumer) join() error {
	ctx, abandon := context.WithCancel(context.Background())
	client, err := kgo.NewClient(append(c.kopts, kgo.WithContext(ctx))...)
	if err != nil {
		abandon()
		return fmt.Errorf("kafka consumer: %w", err)
	}
	c.mu.Lock()
	c.client, c.abandon = client, abandon
	c.mu.Unlock()
	return nil
}

// leave leaves the group and closes the client, within a session timeout (10 s at most).
// kgo lets a join in flight finish before it leaves, and a join waits for every member
// to rejoin: one stuck applying to a down Redis holds it up to the rebalance timeout (a
// minute). A leave that has not finished by then is abandoned: the group drops this
// member after its session timeout anyway.
func (c *Consumer) leave() {
	c.mu.Lock()
	client, abandon := c.client, c.abandon
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), min(c.opts.SessionTimeout, 10*time.Second))
	defer cancel()
	client.AllowRebalance() // nothing polls any more: the final revoke may run
	if err := client.LeaveGroupContext(ctx); err != nil {
		c.log.Warn("the group did not answer the leave in time: left without it", "err", err)
		abandon()
	}
	client.Close()
	abandon()
}

func (c *Consumer) current() *kgo.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

// Close leaves the group, committing what was applied.
func (c *Consumer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := c.current()
	if err := client.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("final commit failed", "err", err)
	}
	c.leave()
}

// Run consumes until ctx ends. It returns nil on a clean stop.
func (c *Consumer) Run(ctx context.Context) error {
	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	go c.reportGroupLag(lagCtx)
	for {
		err := c.consumeUntilLoss(ctx)
		if !errors.Is(err, inventory.ErrLost) || c.opts.WaitWhole == nil {
			return err
		}
		// The store lost its data: leave the group without committing the poll in hand,
		// wait for the restore, and join again from the offsets it set.
		c.log.Error("the stock store lost its data: the consumer leaves its group until `jaego restore` is done")
		c.leave()
		c.m.lag.Reset()
		if err := c.opts.WaitWhole(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.log.Info("the stock store is whole again: the consumer joins its group")
		if err := c.join(); err != nil {
			return err
		}
	}
}

// consumeUntilLoss consumes until ctx ends, an error, or (with Loss) the store's loss,
// which it answers as inventory.ErrLost.
func (c *Consumer) consumeUntilLoss(ctx context.Context) error {
	if c.opts.Loss == nil || c.opts.WaitWhole == nil {
		return c.consume(ctx, c.current())
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	loss := c.opts.Loss()
	go func() {
		select {
		case <-loss:
			cancel(inventory.ErrLost)
		case <-cctx.Done():
		}
	}()
	err := c.consume(cctx, c.current())
	if ctx.Err() == nil && errors.Is(context.Cause(cctx), inventory.ErrLost) {
		return inventory.ErrLost
	}
	return err
}

func (c *Consumer) consume(ctx context.Context, client *kgo.Client) error {
	for {
		fetches := client.PollRecords(ctx, c.opts.MaxPoll)
		if ctx.Err() != nil {
			client.AllowRebalance()
			return nil
		}
		if errors.Is(fetches.Err0(), kgo.ErrClientClosed) {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.log.Warn("kafka fetch error", "topic", topic, "partition", p, "err", err)
		})
		records := fetches.Records()
		if len(records) > 0 {
			if err := c.handle(ctx, client, records); err != nil {
				client.AllowRebalance()
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				lag := p.HighWatermark - p.Records[n-1].Offset - 1
				c.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(lag, 0)))
			}
		})
		client.AllowRebalance()
	}
}

// forgetLag drops the lag gauges of partitions this member no longer owns: their new owner
// reports them, and a stale value here would keep a lag alert firing.
func (c *Consumer) forgetLag(partitions map[string][]int32) {
	for topic, ps := range partitions {
		for _, p := range ps {
			c.m.lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
		}
	}
}

// handle applies one poll: decode, dead-letter the poison, apply the rest (retrying while
// the store is unavailable), then mark and commit every record. The poll is applied in
// chunks of applyChunk records, in order, one at a time, each while the next is decoded:
// decoding is a fifth of the consumer's CPU, and done first for the whole poll it kept the
// store idle that long (docs/benchmarks.md, POS event pipeline).
func (c *Consumer) handle(ctx context.Context, client *kgo.Client, records []*kgo.Record) (err error) {
	start := time.Now()
	ctx, span := c.pollSpan(ctx, records)
	defer func() { tracing.End(span, err) }()
	type chunk struct {
		events  []inventory.Event
		applied []*kgo.Record
		results []inventory.Result
	}
	decoded := make(chan *chunk, 1)
	var done []*chunk // applied, in order; read after applyErr
	applyErr := make(chan error, 1)
	go func() {
		var failed error
		for ch := range decoded {
			if failed == nil { // after a failure the rest is drained, not applied: nothing is committed
				ch.results, failed = c.applyWithRetry(ctx, ch.events)
				done = append(done, ch)
			}
		}
		applyErr <- failed
	}()
	var dead []*kgo.Record
	for from := 0; from < len(records); from += applyChunk {
		rs := records[from:min(from+applyChunk, len(records))]
		ch := &chunk{events: make([]inventory.Event, 0, len(rs)), applied: make([]*kgo.Record, 0, len(rs))}
		for _, r := range rs {
			e, err := inventory.DecodeEvent(r.Value)
			if err != nil {
				dead = append(dead, c.deadLetter(r, err))
				continue
			}
			e.Origin = &inventory.Origin{Partition: r.Partition, Offset: r.Offset}
			ch.events = append(ch.events, e)
			ch.applied = append(ch.applied, r)
		}
		decoded <- ch
	}
	close(decoded)
	if err := <-applyErr; err != nil {
		return err
	}
	if len(dead) > 0 {
		// The poison goes to the DLQ, acknowledged, before its offset is committed.
		if err := client.ProduceSync(ctx, dead...).FirstErr(); err != nil {
			return fmt.Errorf("produce to %s: %w", c.dlq, err)
		}
		c.m.records.WithLabelValues("dead_lettered").Add(float64(len(dead)))
	}
	now := time.Now()
	for _, ch := range done {
		for i, res := range ch.results {
			outcome := string(res.Status)
			switch res.Status {
			case inventory.Rejected:
				outcome = "refused"
				e := ch.events[i]
				c.log.InfoContext(ctx, "stock event refused", "event_id", res.EventID, "store", e.Store, "sku", e.SKU,
					"type", e.Type, "code", jaego.CodeOf(res.Err), "err", res.Err)
			case inventory.Applied:
				tracing.Observe(c.m.endToEnd, ch.applied[i].Context, now.Sub(ch.applied[i].Timestamp).Seconds())
			}
			c.m.records.WithLabelValues(outcome).Inc()
		}
	}
	client.MarkCommitRecords(records...)
	if err := client.CommitMarkedOffsets(ctx); err != nil && ctx.Err() == nil {
		c.m.commitErr.Inc()
		c.log.Warn("offset commit failed; records will be re-applied idempotently", "err", err)
	}
	tracing.Observe(c.m.batch, ctx, time.Since(start).Seconds())
	c.done.Add(int64(len(records)))
	return nil
}

// applyChunk is how many records of a poll one Apply takes: batches of ~60 events per shard
// group (16 by default), as a whole poll of 2,000 gave; 512 cost Redis more per event than
// the overlap saved (docs/benchmarks.md).
const applyChunk = 1000

// applyWithRetry retries while the store is unavailable, backing off up to 5 s: nothing is
// committed meanwhile, so a long outage loses nothing.
func (c *Consumer) applyWithRetry(ctx context.Context, events []inventory.Event) ([]inventory.Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	backoff := c.opts.RetryBackoff
	for {
		attempt, cancel := context.WithTimeout(ctx, c.opts.ApplyTimeout)
		results, err := c.store.Apply(attempt, events)
		cancel()
		if errors.Is(err, inventory.ErrLost) && c.opts.WaitWhole != nil {
			return nil, err
		}
		if err == nil {
			for _, r := range results {
				if r.Status == inventory.Rejected && !inventory.IsRefusal(r.Err) {
					// decode already validated: an invalid result means the two disagree.
					return nil, fmt.Errorf("event %s rejected after validation: %w", r.EventID, r.Err)
				}
			}
			return results, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.m.retries.Inc()
		c.log.Warn("stock store unavailable; retrying the batch", "events", len(events), "backoff_ms", backoff.Milliseconds(), "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (c *Consumer) deadLetter(r *kgo.Record, err error) *kgo.Record {
	code := string(jaego.CodeOf(err))
	c.log.Warn("poison stock event sent to the DLQ", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "code", code, "err", err)
	return &kgo.Record{
		Topic: c.dlq,
		Key:   r.Key,
		Value: r.Value,
		Headers: append(append([]kgo.RecordHeader(nil), r.Headers...),
			kgo.RecordHeader{Key: HeaderError, Value: []byte(code)},
			kgo.RecordHeader{Key: HeaderDetail, Value: []byte(err.Error())},
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kgo.RecordHeader{Key: HeaderOccurredAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		),
	}
}

// Encode is the record of an event: key = store, value = the event JSON.
func Encode(topic string, e inventory.Event) (*kgo.Record, error) {
	v, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(e.Store), Value: v}, nil
}

// readGroupLag sets the group lag of every partition of the topic: its end offset less the
// group's committed offset (the start offset where nothing is committed). It reads offsets,
// not member assignments, so a group that is rebalancing, or whose members are all stuck,
// still has its lag.
func (c *Consumer) readGroupLag(ctx context.Context, adm *kadm.Client) error {
	ends, err := adm.ListEndOffsets(ctx, c.opts.Topic)
	if err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx, c.opts.Topic)
	if err != nil {
		return err
	}
	committed, err := adm.FetchOffsets(ctx, c.opts.Group)
	if err != nil {
		return err
	}
	ends.Each(func(end kadm.ListedOffset) {
		if end.Err != nil {
			return
		}
		from := int64(0)
		if st, ok := starts.Lookup(end.Topic, end.Partition); ok && st.Err == nil {
			from = st.Offset
		}
		if cm, ok := committed.Lookup(end.Topic, end.Partition); ok && cm.Err == nil && cm.At >= 0 {
			from = max(from, cm.At)
		}
		c.m.groupLag.WithLabelValues(end.Topic, strconv.Itoa(int(end.Partition))).Set(float64(max(0, end.Offset-from)))
	})
	return nil
}

// reportGroupLag reads, every GroupLagEvery, the lag of every partition of the topic for
// the whole group from the brokers (kadm): a member reports only the partitions it owns, so
// while a dead member's partitions wait for the session timeout nobody would report them.
func (c *Consumer) reportGroupLag(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.opts.Brokers...))
	if err != nil {
		c.log.Warn("group lag: no admin client", "err", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(c.opts.GroupLagEvery)
	defer t.Stop()
	for {
		if err := c.readGroupLag(ctx, adm); err != nil && ctx.Err() == nil {
			c.log.Warn("group lag: brokers did not answer", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
