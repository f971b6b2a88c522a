// Package redis serves gift promotions from a versioned Redis cache with a local cache
// keyed by version in front (design §9); promo.Rebuilder publishes to it.
//
// Key layout, all under one hash tag so each script runs on one Cluster slot:
//
//	<prefix>:{p}:version            the pointer: the version served now (only rises)
//	<prefix>:{p}:seq                the last version number handed to a builder
//	<prefix>:{p}:fence              the highest fencing token of a builder (see Publish)
//	<prefix>:{p}:v<N>:meta          JSON: day, window, promotion count, build time
//	<prefix>:{p}:v<N>:promotions    List: one JSON promotion per element
//
// A version is written completely, with a TTL, before one script checks it (meta present,
// list length equal to the count) and moves the pointer to it, making it persistent; the
// version it replaces expires after a grace period, long enough for readers that read the
// old pointer a moment ago.
//
// Read path: the pointer (one GET per request, or the client-side cache, see
// Options.PointerTTL) → the local otter cache keyed by version → on a miss one loader per
// version (otter's single flight) reads the version's List once, decodes it and indexes it.
// A local entry never goes stale: a version's content never changes once published, so
// the 60 s expire-after-write only bounds memory; freshness comes from the pointer.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/promo"
)

// Errors of the cache.
var (
	// ErrNotBuilt: no version was ever published (run `jaego promo rebuild`).
	ErrNotBuilt = &jaego.Error{Code: jaego.CodeNotBuilt,
		Detail: "the promotion cache has no version yet: it is built at startup, by every admin change and by `jaego promo rebuild`"}
	// ErrIncomplete: a version's keys do not hold what its meta says.
	ErrIncomplete = errors.New("promotion cache: version incomplete")
)

// Options configures a Cache; zero fields take their defaults.
type Options struct {
	Prefix string        // default "jg:promo"
	Grace  time.Duration // how long a replaced version stays readable; default 10m
	// BuildTTL bounds the life of a version that was written but never published (its
	// builder died); default 1h.
	BuildTTL time.Duration
	LocalTTL time.Duration // expire-after-write of a local entry; default 60s
	LocalMax int           // local entries (versions) at most; default 100
	// PointerTTL > 0 keeps the pointer in rueidis's server-assisted client-side cache
	// (RESP3 tracking) for at most that long: a steady-state request then makes no Redis
	// round trip, but another instance's change is seen only once the server's
	// invalidation message arrives (docs/benchmarks.md measures the delay). 0 (default)
	// reads the pointer on every request: a change is visible from the next request on.
	PointerTTL time.Duration
	// NoLocal switches the local cache off: every request reads and decodes the version's
	// List from Redis. It is the original design without its local layer, kept as the
	// baseline of `jaegobench promo`; never use it in production.
	NoLocal    bool
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Cache is the versioned promotion cache on one Redis (standalone or Cluster).
type Cache struct {
	client rueidis.Client
	opts   Options
	local  *otter.Cache[int64, *promo.Catalog]
	m      cacheMetrics

	ptr, seq, fence string
	onLoad          func(version int64) // tests: called on every load from Redis
	beforePublish   func(version int64) // tests: called between writing a version and publishing it
}

type cacheMetrics struct {
	pointer   *prometheus.CounterVec
	loads     *prometheus.CounterVec
	loadTime  prometheus.Histogram
	version   prometheus.Gauge
	published *prometheus.CounterVec
	size      prometheus.Gauge
}

// New returns a Cache on client.
func New(client rueidis.Client, opts Options) *Cache {
	if opts.Prefix == "" {
		opts.Prefix = "jg:promo"
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Minute
	}
	if opts.BuildTTL <= 0 {
		opts.BuildTTL = time.Hour
	}
	if opts.LocalTTL <= 0 {
		opts.LocalTTL = 60 * time.Second
	}
	if opts.LocalMax <= 0 {
		opts.LocalMax = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	counter := stats.NewCounter()
	f := promauto.With(opts.Registerer)
	c := &Cache{client: client, opts: opts,
		local: otter.Must(&otter.Options[int64, *promo.Catalog]{
			MaximumSize:      opts.LocalMax,
			ExpiryCalculator: otter.ExpiryWriting[int64, *promo.Catalog](opts.LocalTTL),
			StatsRecorder:    counter,
		}),
		ptr: opts.Prefix + ":{p}:version", seq: opts.Prefix + ":{p}:seq", fence: opts.Prefix + ":{p}:fence",
	}
	c.m = cacheMetrics{
		pointer: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_promo_pointer_reads_total",
			Help: "Version pointer reads by source: redis (a round trip) or client_cache (RESP3 tracking hit)."}, []string{"source"}),
		loads: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_promo_cache_loads_total",
			Help: "Loads of a version's lists from Redis into the local cache, by outcome."}, []string{"outcome"}),
		loadTime: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_promo_cache_load_seconds",
			Help: "Time to read, decode and index one version.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		version: f.NewGauge(prometheus.GaugeOpts{Name: "jaego_promo_version", Help: "The promotion cache version this instance served last."}),
		published: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_promo_publish_total",
			Help: "Version publications by outcome (published, stale_token, error)."}, []string{"outcome"}),
		size: f.NewGauge(prometheus.GaugeOpts{Name: "jaego_promo_catalog_promotions", Help: "Promotions in the version served last."}),
	}
	f.NewCounterFunc(prometheus.CounterOpts{Name: "jaego_promo_local_hits_total",
		Help: "Local (in-process) cache hits: requests answered without reading a version from Redis."},
		func() float64 { return float64(counter.Snapshot().Hits) })
	f.NewCounterFunc(prometheus.CounterOpts{Name: "jaego_promo_local_misses_total",
		Help: "Local cache misses (each waits for, or runs, the one load of its version)."},
		func() float64 { return float64(counter.Snapshot().Misses) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "jaego_promo_local_entries", Help: "Versions held in the local cache."},
		func() float64 { return float64(c.local.EstimatedSize()) })
	return c
}

func (c *Cache) metaKey(v int64) string {
	return c.opts.Prefix + ":{p}:v" + strconv.FormatInt(v, 10) + ":meta"
}
func (c *Cache) listKey(v int64) string {
	return c.opts.Prefix + ":{p}:v" + strconv.FormatInt(v, 10) + ":promotions"
}

// Version returns the version the pointer names now (0: none yet).
func (c *Cache) Version(ctx context.Context) (int64, error) {
	var r rueidis.RedisResult
	if c.opts.PointerTTL > 0 {
		r = c.client.DoCache(ctx, c.client.B().Get().Key(c.ptr).Cache(), c.opts.PointerTTL)
	} else {
		r = c.client.Do(ctx, c.client.B().Get().Key(c.ptr).Build())
	}
	v, err := r.AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(err)
	}
	if r.IsCacheHit() {
		c.m.pointer.WithLabelValues("client_cache").Inc()
	} else {
		c.m.pointer.WithLabelValues("redis").Inc()
	}
	return v, nil
}

func unavailable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return &jaego.Error{Code: jaego.CodeUnavailable, Detail: "promotion cache: " + err.Error()}
}

// Current returns the catalog of the version served now.
func (c *Cache) Current(ctx context.Context) (*promo.Catalog, error) {
	v, err := c.Version(ctx)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		return nil, ErrNotBuilt
	}
	return c.Catalog(ctx, v)
}

// Catalog returns version v from the local cache, loading it from Redis on a miss; while
// one caller loads v, the others wait for its result.
func (c *Cache) Catalog(ctx context.Context, v int64) (*promo.Catalog, error) {
	if c.opts.NoLocal {
		return c.read(ctx, v)
	}
	cat, err := c.local.Get(ctx, v, otter.LoaderFunc[int64, *promo.Catalog](c.load))
	if err != nil {
		return nil, err
	}
	c.m.version.Set(float64(v))
	c.m.size.Set(float64(cat.Len()))
	return cat, nil
}

// load reads version v's meta and List in one round trip and checks that the List holds
// exactly the promotions the meta counts.
func (c *Cache) load(ctx context.Context, v int64) (*promo.Catalog, error) {
	start := time.Now()
	if c.onLoad != nil {
		c.onLoad(v)
	}
	cat, err := c.read(ctx, v)
	if err != nil {
		c.m.loads.WithLabelValues("error").Inc()
		c.opts.Logger.Error("loading promotion version failed", "version", v, "err", err)
		return nil, err
	}
	c.m.loads.WithLabelValues("loaded").Inc()
	c.m.loadTime.Observe(time.Since(start).Seconds())
	c.opts.Logger.Debug("promotion version loaded", "version", v, "promotions", cat.Len(), "took_ms", float64(time.Since(start).Microseconds())/1000)
	return cat, nil
}

func (c *Cache) read(ctx context.Context, v int64) (*promo.Catalog, error) {
	res := c.client.DoMulti(ctx,
		c.client.B().Get().Key(c.metaKey(v)).Build(),
		c.client.B().Lrange().Key(c.listKey(v)).Start(0).Stop(-1).Build())
	raw, err := res[0].ToString()
	if rueidis.IsRedisNil(err) {
		return nil, fmt.Errorf("%w: version %d has no meta (expired?)", ErrIncomplete, v)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	var meta promo.Meta
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("version %d meta: %w", v, err)
	}
	elems, err := res[1].ToArray()
	if err != nil {
		return nil, unavailable(err)
	}
	if len(elems) != meta.Count {
		return nil, fmt.Errorf("%w: version %d lists %d promotions, its meta says %d", ErrIncomplete, v, len(elems), meta.Count)
	}
	ps := make([]promo.Promotion, len(elems))
	for i, e := range elems {
		b, err := e.AsBytes()
		if err == nil {
			err = json.Unmarshal(b, &ps[i])
		}
		if err != nil {
			return nil, fmt.Errorf("version %d element %d: %w", v, i, err)
		}
	}
	return promo.NewCatalog(v, meta.Day, ps), nil
}

// claimScript: KEYS fence, seq, pointer; ARGV token. Refuses (-1) a token below the fence;
// otherwise raises the fence to it and hands out the next version number, above the
// pointer even if seq was lost.
var claimScript = rueidis.NewLuaScript(`
local tok = tonumber(ARGV[1])
if tok < tonumber(redis.call('GET', KEYS[1]) or '0') then return -1 end
redis.call('SET', KEYS[1], tok)
local n = redis.call('INCR', KEYS[2])
local cur = tonumber(redis.call('GET', KEYS[3]) or '0')
if n <= cur then n = cur + 1; redis.call('SET', KEYS[2], n) end
return n`)

// publishScript: KEYS fence, pointer, new meta, new list, old meta, old list; ARGV token,
// new version, old version, count, grace ms. Answers 1 when published; -1 stale token;
// -2 the pointer is no longer the old version; -3 not above the pointer; -4 incomplete.
var publishScript = rueidis.NewLuaScript(`
if tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[1]) or '0') then return -1 end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur ~= tonumber(ARGV[3]) then return -2 end
if tonumber(ARGV[2]) <= cur then return -3 end
if redis.call('EXISTS', KEYS[3]) == 0 or redis.call('LLEN', KEYS[4]) ~= tonumber(ARGV[4]) then return -4 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PERSIST', KEYS[3])
redis.call('PERSIST', KEYS[4])
if cur > 0 then
  redis.call('PEXPIRE', KEYS[5], ARGV[5])
  redis.call('PEXPIRE', KEYS[6], ARGV[5])
end
return 1`)

// Publish writes ps as a new version and moves the pointer to it. token is the builder's
// fencing token (from the lock that serialises builders): Publish first raises the cache's
// fence to it, so from then on no builder with an older token (one whose lock lease ran
// out while it worked) can publish; its own publication is refused with promo.ErrStaleToken if a
// newer builder claimed the fence meanwhile. Returns the version published.
func (c *Cache) Publish(ctx context.Context, token int64, meta promo.Meta, ps []promo.Promotion) (int64, error) {
	v, err := c.publish(ctx, token, meta, ps)
	switch {
	case err == nil:
		c.m.published.WithLabelValues("published").Inc()
	case errors.Is(err, promo.ErrStaleToken):
		c.m.published.WithLabelValues("stale_token").Inc()
	default:
		c.m.published.WithLabelValues("error").Inc()
	}
	return v, err
}

func (c *Cache) publish(ctx context.Context, token int64, meta promo.Meta, ps []promo.Promotion) (int64, error) {
	tok := strconv.FormatInt(token, 10)
	v, err := claimScript.Exec(ctx, c.client, []string{c.fence, c.seq, c.ptr}, []string{tok}).AsInt64()
	if err != nil {
		return 0, unavailable(err)
	}
	if v < 0 {
		return 0, fmt.Errorf("%w (token %d)", promo.ErrStaleToken, token)
	}
	meta.Count = len(ps)
	if err := c.write(ctx, v, meta, ps); err != nil {
		return 0, err
	}
	if c.beforePublish != nil {
		c.beforePublish(v)
	}
	for {
		old, err := c.client.Do(ctx, c.client.B().Get().Key(c.ptr).Build()).AsInt64()
		if err != nil && !rueidis.IsRedisNil(err) {
			return 0, unavailable(err)
		}
		r, err := publishScript.Exec(ctx, c.client,
			[]string{c.fence, c.ptr, c.metaKey(v), c.listKey(v), c.metaKey(old), c.listKey(old)},
			[]string{tok, strconv.FormatInt(v, 10), strconv.FormatInt(old, 10), strconv.Itoa(len(ps)),
				strconv.FormatInt(c.opts.Grace.Milliseconds(), 10)}).AsInt64()
		switch {
		case err != nil:
			return 0, unavailable(err)
		case r == 1:
			c.opts.Logger.Info("promotion version published", "version", v, "replaces", old, "promotions", len(ps), "day", meta.Day)
			return v, nil
		case r == -1:
			return 0, fmt.Errorf("%w (token %d, version %d not published)", promo.ErrStaleToken, token, v)
		case r == -2:
			continue // the pointer moved between the GET and the script: read it again
		case r == -3:
			return 0, fmt.Errorf("promotion cache: version %d is not above the pointer %d", v, old)
		default:
			return 0, fmt.Errorf("%w: version %d expired or lost keys before it was published", ErrIncomplete, v)
		}
	}
}

// write stores version v's List in chunks and then its meta, all with BuildTTL.
func (c *Cache) write(ctx context.Context, v int64, meta promo.Meta, ps []promo.Promotion) error {
	const chunk = 256
	list := c.listKey(v)
	cmds := rueidis.Commands{c.client.B().Del().Key(list).Build()}
	for start := 0; start < len(ps); start += chunk {
		elems := make([]string, 0, chunk)
		for i := start; i < min(start+chunk, len(ps)); i++ {
			b, err := json.Marshal(&ps[i])
			if err != nil {
				return err
			}
			elems = append(elems, string(b))
		}
		cmds = append(cmds, c.client.B().Rpush().Key(list).Element(elems...).Build())
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	cmds = append(cmds, c.client.B().Pexpire().Key(list).Milliseconds(c.opts.BuildTTL.Milliseconds()).Build(),
		c.client.B().Set().Key(c.metaKey(v)).Value(string(mb)).PxMilliseconds(c.opts.BuildTTL.Milliseconds()).Build())
	for _, r := range c.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return unavailable(err)
		}
	}
	return nil
}
