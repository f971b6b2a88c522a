// Package redis keeps the live store inventory in Redis (standalone or Cluster): stock
// hashes, idempotency marks and the daily change streams, changed only by one Lua script.
//
// Key layout (design §5): a store belongs to shard group g = crc32(store) mod Groups, and
// every key of that group carries the hash tag {g}, so one script call touches one slot
// and stays atomic on a Cluster, and a whole store is read in one round trip to one node.
//
//	<prefix>:stk:{g}:<store>:<sku>   hash on_hand, reserved, safety, version, updated_at (unix ms)
//	<prefix>:idem:{g}:<store>:<event_id>  idempotency mark (value: the version it produced), TTL
//	<prefix>:chg:{g}:<YYYYMMDD>      change stream of the group and UTC day, TTL = retention
//	<prefix>:chgid:{g}               the last change id of the group: ids rise across its days
//	<prefix>:stores:{g}              set of the group's stores (for snapshots)
//	<prefix>:skus:{g}:<store>        set of the store's SKUs (for snapshots)
package redis

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

//go:embed apply.lua
var applyLua string

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
	// Retention is how long a day's change stream lives after its last write; default 48h.
	Retention time.Duration
	// MaxBatch is how many events of one shard group one script call applies; default 64.
	// 1 applies every event in its own call.
	MaxBatch int
	// RequireEpoch refuses writes to a shard group without its epoch mark: a deployment
	// with a durable copy, which must restore a Redis that came back empty before writing.
	RequireEpoch bool
	// Now is the clock that picks the day of the change stream; default time.Now.
	Now func() time.Time
	// Registerer receives the store's metrics; default: none are registered.
	Registerer prometheus.Registerer
	// Logger logs store faults; default slog.Default().
	Logger *slog.Logger
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
	if o.Retention <= 0 {
		o.Retention = 48 * time.Hour
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
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
	metrics storeMetrics
}

type storeMetrics struct {
	events      *prometheus.CounterVec
	applyCalls  prometheus.Histogram
	redisErrors *prometheus.CounterVec
}

// New returns a Store on client. The client may be standalone or Cluster.
func New(client rueidis.Client, opts Options) *Store {
	opts = opts.withDefaults()
	f := promauto.With(opts.Registerer)
	return &Store{
		client: client,
		opts:   opts,
		keys:   Keyspace{prefix: opts.Prefix, groups: opts.Groups},
		apply:  rueidis.NewLuaScript(applyLua),
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
	type call struct {
		group int
		idx   []int
	}
	var calls []call
	open := map[int]int{} // group -> index in calls of its call being filled
	for i, e := range events {
		results[i].EventID = e.EventID
		if err := e.Validate(); err != nil {
			results[i].Status, results[i].Err = inventory.Rejected, err
			s.metrics.events.WithLabelValues(string(e.Type), string(inventory.Rejected)).Inc()
			continue
		}
		g := s.keys.Group(e.Store)
		c, ok := open[g]
		if !ok || len(calls[c].idx) >= s.opts.MaxBatch {
			calls = append(calls, call{group: g})
			c = len(calls) - 1
			open[g] = c
		}
		calls[c].idx = append(calls[c].idx, i)
	}
	if len(calls) == 0 {
		return results, nil
	}

	stream := s.opts.Now()
	idemTTL := strconv.FormatInt(int64(s.opts.IdempotencyTTL/time.Second), 10)
	streamTTL := strconv.FormatInt(int64(s.opts.Retention/time.Second), 10)
	requireEpoch := "0"
	if s.opts.RequireEpoch {
		requireEpoch = "1"
	}
	execs := make([]rueidis.LuaExec, len(calls))
	for ci, c := range calls {
		keys := make([]string, 0, 4+3*len(c.idx))
		args := make([]string, 0, 3+8*len(c.idx))
		keys = append(keys, s.keys.StreamOn(c.group, stream), s.keys.Stores(c.group), s.keys.LastChange(c.group), s.keys.Epoch(c.group))
		args = append(args, idemTTL, streamTTL, requireEpoch)
		for _, i := range c.idx {
			e := events[i]
			expected := ""
			if e.ExpectedVersion != nil {
				expected = strconv.FormatInt(*e.ExpectedVersion, 10)
			}
			keys = append(keys, s.keys.Stock(e.Store, e.SKU), s.keys.Idempotency(e.Store, e.EventID), s.keys.SKUs(e.Store))
			partition, offset := "", ""
			if e.Origin != nil {
				partition, offset = strconv.FormatInt(int64(e.Origin.Partition), 10), strconv.FormatInt(e.Origin.Offset, 10)
			}
			args = append(args, e.EventID, string(e.Type), strconv.FormatInt(e.Qty, 10), expected, e.Store, e.SKU, partition, offset)
		}
		execs[ci] = rueidis.LuaExec{Keys: keys, Args: args}
	}

	start := time.Now()
	replies := s.apply.ExecMulti(ctx, s.client, execs...)
	s.metrics.applyCalls.Observe(time.Since(start).Seconds())
	for ci, reply := range replies {
		rows, err := reply.ToArray()
		if err == nil && len(rows) != len(calls[ci].idx) {
			err = fmt.Errorf("apply script answered %d rows for %d events", len(rows), len(calls[ci].idx))
		}
		if err != nil {
			s.metrics.redisErrors.WithLabelValues("apply").Inc()
			if strings.HasPrefix(err.Error(), "REDISLOST") {
				return nil, inventory.ErrLost
			}
			return nil, s.unavailable("apply", err)
		}
		for ri, i := range calls[ci].idx {
			r, err := parseApplyRow(rows[ri], events[i])
			if err != nil {
				return nil, fmt.Errorf("apply %s: %w", events[i].EventID, err)
			}
			results[i] = r
			s.metrics.events.WithLabelValues(string(events[i].Type), string(r.Status)).Inc()
		}
	}
	return results, nil
}

func parseApplyRow(row rueidis.RedisMessage, e inventory.Event) (inventory.Result, error) {
	f, err := row.ToArray()
	if err != nil || len(f) != 7 {
		return inventory.Result{}, fmt.Errorf("malformed apply row: %v", err)
	}
	status, _ := f[0].ToString()
	code, _ := f[1].ToString()
	n := make([]int64, 5)
	for j := range n {
		if n[j], err = f[2+j].AsInt64(); err != nil {
			return inventory.Result{}, fmt.Errorf("malformed apply row field %d: %w", 2+j, err)
		}
	}
	st := inventory.Stock{
		Store: e.Store, SKU: e.SKU, OnHand: n[0], Reserved: n[1], Safety: n[2], Version: n[3],
		UpdatedAt: time.UnixMilli(n[4]).UTC(), Source: inventory.SourcePrimary,
	}.WithAvailable()
	r := inventory.Result{EventID: e.EventID, Status: inventory.Status(status), Stock: st}
	if r.Status == inventory.Rejected {
		// The script only names the refusal; the reference model words it from the state.
		_, r.Err = inventory.Apply(st, e)
		if r.Err == nil || string(jaego.CodeOf(r.Err)) != code {
			r.Err = &jaego.Error{Code: jaego.Code(code), Detail: "refused: " + code}
		}
	}
	return r, nil
}

var stockFields = []string{"on_hand", "reserved", "safety", "version", "updated_at"}

func (s *Store) hmget(store, sku string) rueidis.Completed {
	return s.client.B().Hmget().Key(s.keys.Stock(store, sku)).Field(stockFields...).Build()
}

// Get implements inventory.StockStore.
func (s *Store) Get(ctx context.Context, store, sku string) (inventory.Stock, error) {
	res := s.client.Do(ctx, s.hmget(store, sku))
	st, found, err := parseStock(res, store, sku)
	if err != nil {
		s.metrics.redisErrors.WithLabelValues("get").Inc()
		return inventory.Stock{}, s.unavailable("get", err)
	}
	if !found {
		return inventory.Stock{}, &jaego.Error{Code: jaego.CodeNotFound,
			Detail: fmt.Sprintf("no stock record for store %s, sku %s", store, sku)}
	}
	return st, nil
}

// GetMany implements inventory.StockStore with one pipelined batch of HMGETs. The keys of
// one store share a slot, so a per-store read is one round trip to one node.
func (s *Store) GetMany(ctx context.Context, keys []inventory.Key) ([]inventory.Lookup, error) {
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = s.hmget(k.Store, k.SKU)
	}
	out := make([]inventory.Lookup, len(keys))
	for i, res := range s.client.DoMulti(ctx, cmds...) {
		st, found, err := parseStock(res, keys[i].Store, keys[i].SKU)
		if err != nil {
			s.metrics.redisErrors.WithLabelValues("get_many").Inc()
			return nil, s.unavailable("get many", err)
		}
		st.Source = inventory.SourcePrimary // a miss too: the answer says who did not find it
		out[i] = inventory.Lookup{Stock: st, Found: found}
	}
	return out, nil
}

func parseStock(res rueidis.RedisResult, store, sku string) (inventory.Stock, bool, error) {
	vals, err := res.ToArray()
	if err != nil {
		return inventory.Stock{}, false, err
	}
	if len(vals) != len(stockFields) || vals[3].IsNil() {
		return inventory.Stock{}, false, nil
	}
	n := make([]int64, len(vals))
	for i, v := range vals {
		if v.IsNil() {
			continue
		}
		if n[i], err = v.AsInt64(); err != nil {
			return inventory.Stock{}, false, fmt.Errorf("stock %s/%s field %s: %w", store, sku, stockFields[i], err)
		}
	}
	return inventory.Stock{
		Store: store, SKU: sku, OnHand: n[0], Reserved: n[1], Safety: n[2], Version: n[3],
		UpdatedAt: time.UnixMilli(n[4]).UTC(), Source: inventory.SourcePrimary,
	}.WithAvailable(), true, nil
}

// Ping implements inventory.StockStore: nil when Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Do(ctx, s.client.B().Ping().Build()).Error(); err != nil {
		return s.unavailable("ping", err)
	}
	return nil
}

func (s *Store) unavailable(op string, err error) error {
	return jaego.Unavailable("redis "+op, err)
}
