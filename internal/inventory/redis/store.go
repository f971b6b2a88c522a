// Package redis keeps the live store inventory in Redis (standalone or Cluster): stock
// hashes, idempotency marks and the daily change streams, changed only by one Lua script.
//
// Key layout (design §5): a store belongs to shard group g = crc32(store) mod Groups, and
// every key of that group carries the hash tag {g}, so one script call touches one slot
// and stays atomic on a Cluster, and a whole store is read with one command on one node.
//
//	<prefix>:stk:{g}:<store>         hash: field <sku>, value "on_hand:reserved:safety:version:updated_at"
//	<prefix>:idem:{g}:<window>:<b>   hash of idempotency marks: field = 12-byte digest of store and event id
//	<prefix>:chg:{g}:<YYYYMMDD>      change stream of the group and UTC day, TTL = retention
//	<prefix>:chgid:{g}               the last change id of the group: ids rise across its days
//	<prefix>:stores:{g}              set of the group's stores (for snapshots)
//	<prefix>:epoch:{g}               the group's epoch mark (see Store.Lost)
//	<prefix>:dirgeo:{0}, :dir:{0}, :dirver:{0}  the store directory: geo index, records, version (sourcing/redis)
//	<prefix>:srcg:{g}:<id>           the record of a sourcing hold (sourcing/redis)
//
// docs/architecture.md §5 says why, with the bytes each part costs.
package redis

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/tracing"
)

var (
	//go:embed common.lua
	commonLua string
	//go:embed apply.lua
	applyBody string
	// applyLua is the apply step: common.lua, then apply.lua.
	applyLua = commonLua + "\n" + applyBody
)

// ApplyScript returns the Lua source of the apply step, for tools that drive it directly
// (the redis-benchmark baseline).
func ApplyScript() string { return applyLua }

// Options configures a Store. The zero value of every field means its default.
type Options struct {
	// Prefix starts every key; default "jg". Tests give each test its own.
	Prefix string
	// Groups is the number of shard groups G; fixed for the life of a deployment. Default 16.
	Groups int
	// IdempotencyTTL is how long applied event ids are remembered; default and minimum 7 days.
	IdempotencyTTL time.Duration
	// MarkBuckets is how many hashes one shard group's idempotency marks of one window (half
	// the TTL) are spread over; default 1024. Fixed for a deployment, like Groups: pick it so
	// that a bucket holds at most ~100 marks (events per 3.5 days ÷ (Groups × 100)), and the
	// marks stay in Redis's compact encoding.
	MarkBuckets int
	// Retention is how long a day's change stream lives after its last write; default 48h.
	Retention time.Duration
	// MaxBatch is how many events of one shard group one script call applies; default 64.
	// 1 applies every event in its own call.
	MaxBatch int
	// MaxHoldsPerStore bounds the reservations one store holds at once (beyond it a hold is
	// too_many_holds), and so the Redis memory of holds; default 10,000.
	MaxHoldsPerStore int
	// AckReplicas answers a write (events, loads, reservation steps) only once a replica
	// confirmed it (WAIT 1 within the caller's deadline), else ErrNotReplicated:
	// --write-ack replicas. Off, a write is answered once the master applied it.
	AckReplicas bool
	// AckConcurrency is how many WAIT calls (one per shard group a write touches) are
	// under way at most, each on a goroutine of its own that carries no deadline into
	// rueidis (see groupAcked); a write beyond it waits for one with its context. Default 64.
	AckConcurrency int
	// RequireEpoch refuses writes to a shard group without its epoch mark: a deployment
	// with a durable copy, which must restore a Redis that came back empty before writing.
	RequireEpoch bool
	// Now is the clock that picks the day of the change stream; default time.Now.
	Now func() time.Time
	// Registerer receives the store's metrics; default: none are registered.
	Registerer prometheus.Registerer
	// Logger logs store faults; default slog.Default().
	Logger *slog.Logger
	// Tracer, when set, makes one client span per script call (design §16), with its shard
	// group and batch size; nil (tracing off) makes none.
	Tracer trace.Tracer
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "jg"
	}
	if o.Groups <= 0 {
		o.Groups = 16
	}
	if o.IdempotencyTTL < 7*24*time.Hour {
		o.IdempotencyTTL = 7 * 24 * time.Hour
	}
	if o.MarkBuckets <= 0 {
		o.MarkBuckets = 1024
	}
	if o.Retention <= 0 {
		o.Retention = 48 * time.Hour
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
	}
	if o.MaxHoldsPerStore <= 0 {
		o.MaxHoldsPerStore = 10000
	}
	if o.AckConcurrency <= 0 {
		o.AckConcurrency = 64
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Store is the Redis implementation of inventory.StockStore.
type Store struct {
	client  rueidis.Client
	opts    Options
	keys    Keyspace
	apply   *rueidis.Lua
	reserve *rueidis.Lua
	// The same scripts by SHA-1, for the writes that wait for a replica (AckReplicas).
	applySc, reserveSc script
	ackSlots           chan struct{} // one per WAIT call under way (Options.AckConcurrency)
	metrics            storeMetrics
}

type storeMetrics struct {
	events      *prometheus.CounterVec
	applyCalls  prometheus.Histogram
	redisErrors *prometheus.CounterVec
	// Store orders (design §12).
	reservations *prometheus.CounterVec
	expired      prometheus.Counter
	expiryDelay  prometheus.Histogram
	held         prometheus.Gauge
}

// New returns a Store on client. The client may be standalone or Cluster.
func New(client rueidis.Client, opts Options) *Store {
	opts = opts.withDefaults()
	f := promauto.With(opts.Registerer)
	return &Store{
		client:    client,
		opts:      opts,
		keys:      Keyspace{prefix: opts.Prefix, groups: opts.Groups, markTTL: opts.IdempotencyTTL, markBuckets: opts.MarkBuckets},
		apply:     rueidis.NewLuaScript(applyLua),
		reserve:   rueidis.NewLuaScript(commonLua + "\n" + reservationBody),
		applySc:   newScript(applyLua),
		reserveSc: newScript(commonLua + "\n" + reservationBody),
		ackSlots:  make(chan struct{}, opts.AckConcurrency),
		metrics: storeMetrics{
			events: f.NewCounterVec(prometheus.CounterOpts{
				Name: "jaego_stock_events_total",
				Help: "Stock events handled by the store, by type and status (applied, duplicate, rejected).",
			}, []string{"type", "status"}),
			applyCalls: f.NewHistogram(prometheus.HistogramOpts{
				Name:    "jaego_stock_apply_seconds",
				Help:    "Latency of one Apply: its script calls, pipelined (one call per shard group and batch).",
				Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
			}),
			redisErrors: f.NewCounterVec(prometheus.CounterOpts{
				Name: "jaego_redis_errors_total",
				Help: "Redis calls that failed, by operation.",
			}, []string{"op"}),
			reservations: f.NewCounterVec(prometheus.CounterOpts{
				Name: "jaego_reservations_total",
				Help: "Reservation steps by op (hold, confirm, cancel, expire) and outcome (held, again, short, conflict, done, as_is, not_held).",
			}, []string{"op", "outcome"}),
			expired: f.NewCounter(prometheus.CounterOpts{
				Name: "jaego_reservations_expired_total",
				Help: "Held reservations released because their time was up.",
			}),
			held: f.NewGauge(prometheus.GaugeOpts{
				Name: "jaego_reservations_held",
				Help: "Reservations held now (in the expiry queues), as of the last sweep.",
			}),
			expiryDelay: f.NewHistogram(prometheus.HistogramOpts{
				Name:    "jaego_reservation_expiry_delay_seconds",
				Help:    "How long after its expires_at the sweeper released a reservation.",
				Buckets: []float64{.05, .1, .2, .3, .5, .75, 1, 2, 5, 10},
			}),
		},
	}
}

// Keys is the store's keyspace.
func (s *Store) Keys() Keyspace { return s.keys }

// Apply implements inventory.StockStore. Valid events are grouped by shard group, in
// order, into script calls of at most MaxBatch events; calls to different groups are
// pipelined (and on a Cluster sent to their nodes in parallel).
func (s *Store) Apply(ctx context.Context, events []inventory.Event) ([]inventory.Result, error) {
	results := make([]inventory.Result, len(events))
	ops := make([]op, 0, len(events))
	valid := make([]int, 0, len(events))
	for i, e := range events {
		results[i].EventID = e.EventID
		if err := e.Validate(); err != nil {
			results[i].Status, results[i].Err = inventory.Rejected, err
			s.metrics.events.WithLabelValues(string(e.Type), string(inventory.Rejected)).Inc()
			continue
		}
		o := op{eventID: e.EventID, typ: string(e.Type), qty: e.Qty, store: e.Store, sku: e.SKU}
		if e.ExpectedVersion != nil {
			o.expected = strconv.FormatInt(*e.ExpectedVersion, 10)
		}
		if e.Origin != nil {
			o.partition, o.offset = strconv.FormatInt(int64(e.Origin.Partition), 10), strconv.FormatInt(e.Origin.Offset, 10)
		}
		ops, valid = append(ops, o), append(valid, i)
	}
	rows, err := s.exec(ctx, ops, s.opts.MaxBatch)
	if err != nil {
		return nil, err
	}
	for j, i := range valid {
		r := rows[j].result(events[i])
		results[i] = r
		s.metrics.events.WithLabelValues(string(events[i].Type), string(r.Status)).Inc()
	}
	return results, nil
}

// applyWaves is how many pipelines one Apply's script calls go in (see exec).
const applyWaves = 4

// op is one event as the apply script takes it.
type op struct {
	eventID, typ      string
	qty               int64
	expected          string // expected version; for a load, the safety stock
	store, sku        string
	partition, offset string
	// A load row's mark (its line) and load id; empty for an event, whose mark is the
	// digest of its store and id.
	mark, loadID string
}

// row is the script's answer for one op.
type row struct {
	status, code string
	stock        inventory.Stock
}

func (r row) result(e inventory.Event) inventory.Result {
	res := inventory.Result{EventID: e.EventID, Status: inventory.Status(r.status), Stock: r.stock}
	if res.Status == inventory.Rejected {
		// The script only names the refusal; the reference model words it from the state.
		_, res.Err = inventory.Apply(r.stock, e)
		if res.Err == nil || string(jaego.CodeOf(res.Err)) != r.code {
			res.Err = r.err()
		}
	}
	return res
}

func (r row) err() error { return &jaego.Error{Code: jaego.Code(r.code), Detail: "refused: " + r.code} }

// exec runs ops through the apply script: grouped by shard group, in order, into calls of
// at most maxBatch ops, pipelined.
func (s *Store) exec(ctx context.Context, ops []op, maxBatch int) ([]row, error) {
	type call struct {
		group int
		idx   []int
	}
	var calls []call
	open := map[int]int{} // group -> index in calls of its call being filled
	for i, o := range ops {
		g := s.keys.Group(o.store)
		c, ok := open[g]
		if !ok || len(calls[c].idx) >= maxBatch {
			calls = append(calls, call{group: g})
			c = len(calls) - 1
			open[g] = c
		}
		calls[c].idx = append(calls[c].idx, i)
	}
	rows := make([]row, len(ops))
	if len(calls) == 0 {
		return rows, nil
	}

	now := s.opts.Now()
	markExpiry := strconv.FormatInt(s.keys.MarkExpiry(s.keys.MarkWindow(now)).UnixMilli(), 10)
	streamTTL := strconv.FormatInt(int64(s.opts.Retention/time.Second), 10)
	requireEpoch := "0"
	if s.opts.RequireEpoch {
		requireEpoch = "1"
	}
	form := func(c call) rueidis.LuaExec {
		keys := make([]string, 0, 4+(1+marksPerEvent)*len(c.idx))
		args := make([]string, 0, 4+9*len(c.idx))
		keys = append(keys, s.keys.StreamOn(c.group, now), s.keys.Stores(c.group), s.keys.LastChange(c.group), s.keys.Epoch(c.group))
		args = append(args, markExpiry, streamTTL, requireEpoch, strconv.Itoa(marksPerEvent))
		for _, i := range c.idx {
			o := ops[i]
			keys = append(keys, s.keys.Stock(o.store))
			if o.loadID != "" {
				for range marksPerEvent {
					keys = append(keys, s.keys.Load(c.group, o.loadID))
				}
			} else {
				var marks []string
				marks, o.mark = s.keys.Marks(o.store, o.eventID, now)
				keys = append(keys, marks...)
			}
			args = append(args, o.eventID, o.typ, strconv.FormatInt(o.qty, 10), o.expected, o.store, o.sku, o.partition, o.offset, o.mark)
		}
		return rueidis.LuaExec{Keys: keys, Args: args}
	}

	// The calls go in waves of whole shard groups (a group's calls stay in order, in one
	// pipeline), each sent as soon as it is formed, so Redis can start before the whole
	// Apply is formed (~3 µs an event). Measured, the gain is mostly Redis's: four smaller
	// pipelines cost it 5–16% less an event than one of ~1,000 events; its busy share in
	// the POS pipeline stayed 0.72 (docs/benchmarks.md, "Where Redis waits").
	waveOf := map[int]int{}
	for _, c := range calls {
		if _, ok := waveOf[c.group]; !ok {
			waveOf[c.group] = len(waveOf) % applyWaves
		}
	}
	spans := scriptSpans(s, ctx, "apply", calls, func(c call) (int, int) { return c.group, len(c.idx) })
	start := time.Now()
	replies := make([]rueidis.RedisResult, len(calls))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ackErr error
	for w := range min(applyWaves, len(waveOf)) {
		var idx, groups []int
		var execs []rueidis.LuaExec
		for ci, c := range calls {
			if waveOf[c.group] == w {
				idx, groups, execs = append(idx, ci), append(groups, c.group), append(execs, form(c))
			}
		}
		wg.Go(func() {
			var res []rueidis.RedisResult
			if s.opts.AckReplicas {
				var err error
				if res, err = s.execAcked(ctx, s.applySc, execs, groups); err != nil {
					mu.Lock()
					ackErr = err
					mu.Unlock()
					return
				}
			} else {
				res = s.apply.ExecMulti(ctx, s.client, execs...)
			}
			for j, ci := range idx {
				replies[ci] = res[j]
			}
		})
	}
	wg.Wait()
	tracing.Observe(s.metrics.applyCalls, ctx, time.Since(start).Seconds())
	if ackErr != nil {
		endSpans(spans, nil, ackErr)
		return nil, ackErr
	}
	endSpans(spans, replies, nil)
	for ci, reply := range replies {
		answers, err := reply.ToArray()
		if err == nil && len(answers) != applyRowLen*len(calls[ci].idx) {
			err = fmt.Errorf("apply script answered %d values for %d events", len(answers), len(calls[ci].idx))
		}
		if err != nil {
			s.metrics.redisErrors.WithLabelValues("apply").Inc()
			return nil, s.scriptError("apply", err)
		}
		for ri, i := range calls[ci].idx {
			r, err := parseApplyRow(answers[applyRowLen*ri:applyRowLen*(ri+1)], ops[i])
			if err != nil {
				return nil, fmt.Errorf("apply %s: %w", ops[i].eventID, err)
			}
			rows[i] = r
		}
	}
	return rows, nil
}

// scriptSpans starts one client span per script call of calls, as children of ctx's span:
// the shard group and the batch size are what tell a slow call's cause (a hot group, a
// large batch). A call is traced as part of a traced operation only: none when tracing is
// off or ctx holds no sampled span (an untraced poll, the expiry sweeper).
func scriptSpans[C any](s *Store, ctx context.Context, script string, calls []C, of func(C) (group, size int)) []trace.Span {
	if s.opts.Tracer == nil || !trace.SpanContextFromContext(ctx).IsSampled() {
		return nil
	}
	spans := make([]trace.Span, len(calls))
	for i, c := range calls {
		g, n := of(c)
		_, spans[i] = s.opts.Tracer.Start(ctx, "redis "+script, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(semconv.DBSystemNameRedis, semconv.DBOperationName("EVALSHA"),
				attribute.String("jaego.script", script), attribute.Int("jaego.shard_group", g), attribute.Int("jaego.batch_size", n)))
	}
	return spans
}

// endSpans ends spans with the error of their reply (or err, which failed them all).
func endSpans(spans []trace.Span, replies []rueidis.RedisResult, err error) {
	for i, sp := range spans {
		e := err
		if e == nil && i < len(replies) {
			e = replies[i].Error()
		}
		tracing.End(sp, e)
	}
}

// applyRowLen is how many values apply.lua answers an event (flat, for the whole call).
const applyRowLen = 7

func parseApplyRow(f []rueidis.RedisMessage, o op) (row, error) {
	var err error
	status, _ := f[0].ToString()
	code, _ := f[1].ToString()
	var n [5]int64
	for j := range n {
		if n[j], err = f[2+j].AsInt64(); err != nil {
			return row{}, fmt.Errorf("malformed apply row field %d: %w", 2+j, err)
		}
	}
	st := inventory.Stock{
		Store: o.store, SKU: o.sku, OnHand: n[0], Reserved: n[1], Safety: n[2], Version: n[3],
		UpdatedAt: time.UnixMilli(n[4]).UTC(), Source: inventory.SourcePrimary,
	}.WithAvailable()
	return row{status: status, code: code, stock: st}, nil
}

// Get implements inventory.StockStore: one HGET (with RequireEpoch, and the group's epoch
// mark in the same round trip: a Redis that lost its data answers ErrLost, never a miss).
func (s *Store) Get(ctx context.Context, store, sku string) (inventory.Stock, error) {
	get := s.client.B().Hget().Key(s.keys.Stock(store)).Field(sku).Build()
	var v string
	var err error
	if s.opts.RequireEpoch {
		res := s.client.DoMulti(ctx, get, s.client.B().Exists().Key(s.keys.Epoch(s.keys.Group(store))).Build())
		if marked, eerr := res[1].AsInt64(); eerr == nil && marked == 0 {
			return inventory.Stock{}, inventory.ErrLost
		}
		v, err = res[0].ToString()
	} else {
		v, err = s.client.Do(ctx, get).ToString()
	}
	if rueidis.IsRedisNil(err) {
		return inventory.Stock{}, &jaego.Error{Code: jaego.CodeNotFound,
			Detail: fmt.Sprintf("no stock record for store %s, sku %s", store, sku)}
	}
	if err == nil {
		var st inventory.Stock
		if st, err = unpackStock(store, sku, v); err == nil {
			return st, nil
		}
	}
	s.metrics.redisErrors.WithLabelValues("get").Inc()
	return inventory.Stock{}, s.unavailable("get", err)
}

// GetMany implements inventory.StockStore: one HMGET per store (a store is one hash), all
// pipelined, so a per-store read is one command to one node.
func (s *Store) GetMany(ctx context.Context, keys []inventory.Key) ([]inventory.Lookup, error) {
	type read struct {
		store string
		idx   []int
	}
	var reads []read
	byStore := map[string]int{}
	for i, k := range keys {
		r, ok := byStore[k.Store]
		if !ok {
			reads = append(reads, read{store: k.Store})
			r = len(reads) - 1
			byStore[k.Store] = r
		}
		reads[r].idx = append(reads[r].idx, i)
	}
	cmds := make(rueidis.Commands, len(reads))
	for ri, r := range reads {
		fields := make([]string, len(r.idx))
		for j, i := range r.idx {
			fields[j] = keys[i].SKU
		}
		cmds[ri] = s.client.B().Hmget().Key(s.keys.Stock(r.store)).Field(fields...).Build()
	}
	// With RequireEpoch, each group read is checked for its epoch mark in the same round
	// trip: a Redis that lost its data answers ErrLost, never misses.
	if s.opts.RequireEpoch {
		seen := map[int]bool{}
		for _, r := range reads {
			if g := s.keys.Group(r.store); !seen[g] {
				seen[g] = true
				cmds = append(cmds, s.client.B().Exists().Key(s.keys.Epoch(g)).Build())
			}
		}
	}
	results := s.client.DoMulti(ctx, cmds...)
	for _, res := range results[len(reads):] {
		if marked, err := res.AsInt64(); err == nil && marked == 0 {
			return nil, inventory.ErrLost
		}
	}
	out := make([]inventory.Lookup, len(keys))
	for ri, res := range results[:len(reads)] {
		vals, err := res.ToArray()
		if err == nil && len(vals) != len(reads[ri].idx) {
			err = fmt.Errorf("HMGET answered %d values for %d SKUs", len(vals), len(reads[ri].idx))
		}
		for j, i := range reads[ri].idx {
			if err != nil {
				break
			}
			k := keys[i]
			// A miss too says who did not find it.
			out[i] = inventory.Lookup{Stock: inventory.Stock{Store: k.Store, SKU: k.SKU, Source: inventory.SourcePrimary}}
			if vals[j].IsNil() {
				continue
			}
			var v string
			if v, err = vals[j].ToString(); err == nil {
				out[i].Stock, err = unpackStock(k.Store, k.SKU, v)
				out[i].Found = err == nil
			}
		}
		if err != nil {
			s.metrics.redisErrors.WithLabelValues("get_many").Inc()
			return nil, s.unavailable("get many", err)
		}
	}
	return out, nil
}

// Ping implements inventory.StockStore: nil when Redis answers for every shard group (one
// EXISTS of each group's epoch mark, pipelined): on a Cluster whose master of some groups
// is down, a PING that any node answers would say "up" while those groups fail.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.epochs(ctx)
	return err
}

func (s *Store) unavailable(op string, err error) error {
	return jaego.Unavailable("redis "+op, err)
}
