package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/webhook"
	whdb "github.com/jaego/jaego/internal/webhook/db"
)

// webhooksFlags reads the flags of `jaegobench webhooks`.
func webhooksFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	changes := fs.Int("changes", 200_000, "changes of the backlog delivered in each round")
	rate := fs.Int("rate", 5000, "events per second of the lag run")
	steady := fs.Duration("steady", 20*time.Second, "duration of the lag run")
	subs := fs.Int("subscriptions", 100, "active subscriptions of the lookup phases")
	dur := fs.Duration("duration", 90*time.Second, "lookups of every kind, over -lookup-rounds rounds")
	lookupRounds := fs.Int("lookup-rounds", 3, "rounds of the lookup phases (each round one phase of every kind, the order rotating): more, shorter phases for a finer ratio")
	rounds := fs.Int("rounds", 3, "rounds of the backlog delivery, each with the feed read again")
	coalesce := fs.Duration("coalesce", 50*time.Millisecond, "how long the deliveries' hub lets changes gather before it reads (jaego's setting)")
	return func(ctx context.Context, out io.Writer) error {
		if *rounds < 1 || *changes < 1000 || *lookupRounds < 1 {
			return fmt.Errorf("-rounds and -lookup-rounds must be at least 1 and -changes at least 1000")
		}
		return benchWebhooks(ctx, out, *changes, *rate, *subs, *steady, *dur, *rounds, *lookupRounds, *coalesce)
	}
}

// hookSink is the benchmark's receiver: it reads every message's body and counts its
// changes per path (by their "event_id" keys: a receiver's own JSON decoding is its cost,
// not jaego's, and would take the two cores from what is measured); on "/lag" it decodes
// the body and keeps each change's age at arrival.
type hookSink struct {
	mu     sync.Mutex
	counts map[string]*atomic.Int64
	lags   latencies
	mark   atomic.Pointer[[]byte] // a marker's event id prefix, when one is awaited
	marked map[string]int         // per path, the markers seen
}

func (h *hookSink) count(path string) *atomic.Int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.counts[path]
	if !ok {
		c = &atomic.Int64{}
		h.counts[path] = c
	}
	return c
}

// sinkBuffers hold the bodies being read: a receiver that reads a message into a buffer of
// its length, not one grown from 512 bytes for each (a receiver's costs are on the two
// cores too).
var sinkBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := sinkBuffers.Get().(*bytes.Buffer)
	defer sinkBuffers.Put(buf)
	buf.Reset()
	buf.Grow(int(max(r.ContentLength, 0)) + bytes.MinRead)
	_, err := buf.ReadFrom(r.Body)
	body := buf.Bytes()
	if err != nil || r.Header.Get("webhook-signature") == "" {
		http.Error(w, "bad message", http.StatusBadRequest)
		return
	}
	n := bytes.Count(body, []byte(`"event_id":`))
	if mark := h.mark.Load(); mark != nil {
		if k := bytes.Count(body, *mark); k > 0 {
			h.mu.Lock()
			h.marked[r.URL.Path] += k
			h.mu.Unlock()
		}
	}
	if r.URL.Path == "/lag" {
		var m struct {
			Data struct {
				Changes []struct {
					At time.Time `json:"at"`
				} `json:"changes"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, "bad message", http.StatusBadRequest)
			return
		}
		now := time.Now()
		h.mu.Lock()
		for _, c := range m.Data.Changes {
			h.lags = append(h.lags, now.Sub(c.At))
		}
		h.mu.Unlock()
	}
	h.count(r.URL.Path).Add(int64(n))
	w.WriteHeader(http.StatusNoContent)
}

// webhookRig is the delivery side of one jaego instance, in process: the feed, a hub, the
// dispatcher and the admin use case, on a private Redis and PostgreSQL.
type webhookRig struct {
	client rueidis.Client
	store  *invredis.Store
	feed   *invredis.Feed
	admin  *webhook.Admin
	sink   *hookSink
	base   string // the sink's address
	stop   func()
	sdb    *sqldb.DB
}

// quiesce has PostgreSQL do now what it would do in the next phase's background: the
// previous phase may have left hundreds of thousands of delivery-log rows and dead tuples
// for autovacuum, and a CHECKPOINT's writes, which would fall on whichever phase came next
// (they once took 0.4 of the two cores from a baseline phase).
func (r *webhookRig) quiesce(ctx context.Context) error {
	if !r.sdb.Postgres() {
		return nil
	}
	for _, q := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := r.sdb.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("webhook lookups: %s: %w", q, err)
		}
	}
	return nil
}

func newWebhookRig(ctx context.Context, coalesce time.Duration) (*webhookRig, error) {
	client, _, stopRedis, err := privateRedis()
	if err != nil {
		return nil, err
	}
	sdb, _, stopPG, err := privatePostgres(ctx)
	if err != nil {
		stopRedis()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	rig := &webhookRig{client: client, sdb: sdb, store: invredis.New(client, invredis.Options{}), sink: &hookSink{counts: map[string]*atomic.Int64{}, marked: map[string]int{}}}
	rig.feed = invredis.NewFeed(rig.store, invredis.FeedOptions{})
	watcher := invredis.NewWatcher(rig.feed)
	hub := inventory.NewHub(rig.feed, inventory.HubOptions{MaxStreams: 1 << 20, MaxPerKey: 1 << 20, Changed: watcher.Changed, Coalesce: coalesce})
	sealer, _ := webhook.NewSealer([]byte(rand.Text() + rand.Text()))
	cp := invdb.New(sdb)
	o := webhook.Options{Store: whdb.New(sdb), Feed: rig.feed, Hub: hub, Ledger: cp, Prior: cp,
		Locker: lock.New(client, lock.Options{}), Sealer: sealer, Sender: webhook.NewSender(webhook.AllowLoopback(), 0, "jaegobench"),
		Logger: quietLog}
	d := webhook.NewDispatcher(o)
	rig.admin = webhook.NewAdmin(o, webhook.AllowLoopback(), d.Kick)
	l, err := listen(rig.sink)
	if err != nil {
		cancel()
		stopPG()
		stopRedis()
		return nil, err
	}
	rig.base = "http://" + l.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() { watcher.Run(rctx) })
	wg.Go(func() { hub.Run(rctx) })
	wg.Go(func() { d.Run(rctx) })
	rig.stop = func() { cancel(); wg.Wait(); l.Close(); stopPG(); stopRedis() }
	return rig, nil
}

// subscribe makes a stock.changed subscription to the sink's path from from.
func (r *webhookRig) subscribe(ctx context.Context, path, from string, batch int, stores []string) (string, error) {
	info, err := r.admin.Create(ctx, webhook.Subscription{URL: r.base + path, Events: []string{webhook.StockChanged}, Batch: batch, Stores: stores}, from)
	return info.ID, err
}

// phaseProfile profiles the CPU of one measured phase when JAEGOBENCH_PHASEPROF names a
// directory (the file <dir>/<name>.prof: backlog-<round>-<mode> and lookups-<mode>-round<n>;
// a whole run's profile mixes the phases, and their set-up): `go tool pprof -diff_base` of a
// mode's phases against the baseline's says what the deliveries cost the read, or the
// subscriptions the lookups. It answers what stops the profile.
func phaseProfile(name string) func() {
	dir := os.Getenv("JAEGOBENCH_PHASEPROF")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".prof"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "jaegobench: phase profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "jaegobench: phase profile:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// pause pauses subscription id (its deliverer stops).
func (r *webhookRig) pause(ctx context.Context, id string) error {
	paused := webhook.Paused
	_, err := r.admin.Update(ctx, id, webhook.Patch{Status: &paused})
	return err
}

// write applies n receipts over 100 stores × 50 SKUs, 1,000 a call.
func (r *webhookRig) write(ctx context.Context, prefix string, n int) error {
	for i := 0; i < n; i += 1000 {
		batch := make([]inventory.Event, 0, 1000)
		for j := i; j < min(n, i+1000); j++ {
			batch = append(batch, inventory.Event{EventID: fmt.Sprintf("%s-%d", prefix, j), Type: inventory.Receipt,
				Store: fmt.Sprintf("W%03d", j%100), SKU: fmt.Sprintf("K%02d", (j/100)%50), Qty: 1})
		}
		if _, err := r.store.Apply(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// benchWebhooks measures design §14's delivery: a backlog delivered to a local receiver
// against the streamed feed read of the same changes (rounds, the order rotating); the
// delivery lag at rate events/s; and single-SKU lookups with subs active subscriptions
// against none.
func benchWebhooks(ctx context.Context, out io.Writer, changes, rate, subs int, steady, dur time.Duration, rounds, lookupRounds int, coalesce time.Duration) error {
	rig, err := newWebhookRig(ctx, coalesce)
	if err != nil {
		return err
	}
	defer rig.stop()
	from := time.Now()
	if err := rig.write(ctx, "backlog", changes); err != nil {
		return err
	}
	to := time.Now().Add(time.Second)
	type mode struct {
		name  string
		rates []float64
		used  cpuTimes // over its rounds
		wall  float64
	}
	modes := []*mode{{name: "streamed feed read (baseline)"}, {name: "webhook, batch 100"}, {name: "webhook, batch 1000"}}
	for round := range rounds {
		for k := range modes {
			m := modes[(round+k)%len(modes)]
			runtime.GC() // each on a collected heap, not the garbage of the one before
			stopProfile := phaseProfile(fmt.Sprintf("backlog-%d-%s", round, strings.NewReplacer(" ", "", ",", "-", "(", "", ")", "").Replace(m.name)))
			start, before := time.Now(), cpuNow(rig.client)
			var n int
			if strings.HasPrefix(m.name, "streamed") {
				if _, err := rig.feed.StreamChanges(ctx, from, to, "", func(cs []inventory.Change) error { n += len(cs); return nil }); err != nil {
					return err
				}
			} else {
				batch := 100
				if strings.HasSuffix(m.name, "1000") {
					batch = 1000
				}
				path := fmt.Sprintf("/backlog-%d-%d", round, batch)
				id, err := rig.subscribe(ctx, path, from.Format(time.RFC3339Nano), batch, nil)
				if err != nil {
					return err
				}
				got := rig.sink.count(path)
				for got.Load() < int64(changes) {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					time.Sleep(5 * time.Millisecond)
				}
				n = int(got.Load())
				// Paused once measured: it would deliver the lag run's changes and the lookup
				// phases' (every store, all of them), in every phase, the baseline's too.
				if err := rig.pause(ctx, id); err != nil {
					return err
				}
			}
			m.rates = append(m.rates, float64(n)/time.Since(start).Seconds())
			stopProfile()
			m.used, m.wall = m.used.plus(cpuNow(rig.client).minus(before)), m.wall+time.Since(start).Seconds()
		}
	}
	// The cores each kept busy, and the CPU a change cost (µs): the read and the delivery
	// share the two cores, so these say which part of the delivery costs what the read does not.
	fmt.Fprintf(out, "| %d changes of a backlog, %d rounds | changes/s (median) | ÷ streamed read (median of rounds, min–max) | cores: this process (jaego and the receiver), Redis, others (PostgreSQL, kernel), stolen | µs of CPU a change |\n|---|---:|---:|---:|---:|\n", changes, rounds)
	for _, m := range modes {
		ratios := make([]float64, rounds)
		for i := range ratios {
			ratios[i] = m.rates[i] / modes[0].rates[i]
		}
		lo, hi := minMax(ratios)
		c := m.used.per(m.wall)
		fmt.Fprintf(out, "| %s | %.0f | %.2f (%.2f–%.2f) | %.2f, %.2f, %.2f, %.2f | %.1f |\n", m.name, median(m.rates), median(ratios), lo, hi,
			c.process, c.redis, c.others(), c.stolen, m.used.each(changes*rounds).machine)
		if m != modes[0] {
			measured(out, goalRow{Path: m.name + ": changes delivered/s", Baseline: "streamed feed read", Value: median(ratios), Min: lo, Max: hi, AtLeast: true, Goal: 0.8})
		}
	}
	if err := webhookLag(ctx, out, rig, rate, steady); err != nil {
		return err
	}
	return webhookLookups(ctx, out, rig, subs, dur, lookupRounds)
}

// webhookLag writes rate events a second (50 a call) for steady while one subscription
// (batch 100) delivers them, and reports the age of each change at the receiver.
func webhookLag(ctx context.Context, out io.Writer, rig *webhookRig, rate int, steady time.Duration) error {
	id, err := rig.subscribe(ctx, "/lag", "now", 100, nil)
	if err != nil {
		return err
	}
	defer func() { _ = rig.pause(context.WithoutCancel(ctx), id) }() // not in the lookup phases
	tick := time.NewTicker(time.Second * 50 / time.Duration(rate))
	defer tick.Stop()
	start := time.Now()
	end, n := start.Add(steady), 0
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		batch := make([]inventory.Event, 50)
		for j := range batch {
			batch[j] = inventory.Event{EventID: fmt.Sprintf("lag-%d-%d", i, j), Type: inventory.Receipt, Store: fmt.Sprintf("L%03d", j), SKU: fmt.Sprintf("A%d", i%20), Qty: 1}
		}
		if _, err := rig.store.Apply(ctx, batch); err != nil {
			return err
		}
		n += len(batch)
	}
	got := rig.sink.count("/lag")
	for deadline := time.Now().Add(time.Minute); got.Load() < int64(n) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	rig.sink.mu.Lock()
	lags := rig.sink.lags
	rig.sink.mu.Unlock()
	fmt.Fprintf(out, "\n| delivery lag, %d events/s asked (%.0f/s applied) for %s, batch 100 | delivered | p50 | p99 |\n|---|---:|---:|---:|\n", rate, float64(n)/steady.Seconds(), steady)
	fmt.Fprintf(out, "| applied → received | %d of %d | %s | %s |\n", got.Load(), n, ms(lags.pct(.5)), ms(lags.pct(.99)))
	if got.Load() < int64(n) {
		return fmt.Errorf("webhook lag run: %d of %d changes delivered within a minute", got.Load(), n)
	}
	return nil
}

// webhookLookups measures single-SKU lookups (32 connections) with no subscription, then
// with subs active subscriptions (each a store app: one store each) while 1,000 events a
// second are applied over their stores, then with each of them taking every store's
// changes; lookupRounds rounds of one phase each, the order rotating.
func webhookLookups(ctx context.Context, out io.Writer, rig *webhookRig, subs int, dur time.Duration, lookupRounds int) error {
	var seed []inventory.Event
	for i := range benchSKUs {
		seed = append(seed, inventory.Event{EventID: fmt.Sprintf("seed-%d", i), Type: inventory.Receipt, Store: "S0001", SKU: fmt.Sprintf("8809%09d", i), Qty: 1000})
	}
	if _, err := rig.store.Apply(ctx, seed); err != nil {
		return err
	}
	mux := http.NewServeMux()
	invhttp.New(rig.store, invhttp.Options{Feed: rig.feed}).Register(mux)
	l, err := listen(httpx.Instrument(mux, prometheus.NewRegistry(), quietLog))
	if err != nil {
		return err
	}
	defer l.Close()
	base := "http://" + l.Addr().String()
	lookup := get(func(r *mrand.Rand) string {
		return base + "/v1/stores/S0001/skus/" + fmt.Sprintf("8809%09d", r.IntN(benchSKUs))
	})
	stores := make([]string, subs)
	for i := range stores {
		stores[i] = fmt.Sprintf("A%03d", i)
	}
	var own, every []string
	ownPaths, everyPaths := map[string]int{}, map[string]int{}
	for i := range subs {
		ownPaths[fmt.Sprintf("/own-%d", i)] = 1
		everyPaths[fmt.Sprintf("/every-%d", i)] = subs
		id, err := rig.subscribe(ctx, fmt.Sprintf("/own-%d", i), "now", 100, []string{stores[i]})
		if err != nil {
			return err
		}
		own = append(own, id)
		if id, err = rig.subscribe(ctx, fmt.Sprintf("/every-%d", i), "now", 100, stores); err != nil {
			return err
		}
		every = append(every, id)
	}
	set := func(ids []string, status webhook.Status) error {
		for _, id := range ids {
			if _, err := rig.admin.Update(ctx, id, webhook.Patch{Status: &status}); err != nil {
				return err
			}
		}
		return nil
	}
	modes := []struct {
		name   string
		active []string
		paths  map[string]int
		rows   []loadResult
		conns  int
		cpu    []cpuTimes // per round, cores busy
	}{{name: "no active subscription (baseline)"}, {name: fmt.Sprintf("%d subscriptions, one store each (%d deliveries/s)", subs, 1000), active: own, paths: ownPaths},
		{name: fmt.Sprintf("%d subscriptions, every store each (%d deliveries/s)", subs, 1000*subs), active: every, paths: everyPaths}}
	phase := dur / time.Duration(lookupRounds*len(modes))
	for round := range lookupRounds {
		for k := range modes {
			m := &modes[(round+k)%len(modes)]
			if err := set(own, webhook.Paused); err != nil {
				return err
			}
			if err := set(every, webhook.Paused); err != nil {
				return err
			}
			if err := set(m.active, webhook.Active); err != nil {
				return err
			}
			if err := rig.settle(ctx, fmt.Sprintf("mark-%d-%d-", round, k), m.paths, stores); err != nil {
				return err
			}
			if err := rig.quiesce(ctx); err != nil {
				return err
			}
			runtime.GC() // each phase on a collected heap, as the backlog rounds
			wctx, stopWrites := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { writeSteadily(wctx, rig.store, 1000, stores) })
			before, start := cpuNow(rig.client), time.Now()
			stopProfile := phaseProfile(fmt.Sprintf("lookups-%d-round%d", (round+k)%len(modes), round))
			r, err := load(ctx, lookup, 32, phase)
			stopProfile()
			used, wall := cpuNow(rig.client).minus(before), time.Since(start).Seconds()
			m.cpu = append(m.cpu, used.per(wall))
			m.conns, _ = connectedClients(ctx, rig.client)
			stopWrites()
			wg.Wait()
			if err != nil {
				return err
			}
			m.rows = append(m.rows, r)
		}
	}
	fmt.Fprintf(out, "\n| single-SKU lookups, 32 connections, 1,000 events/s applied, %d × %s a phase | req/s | p50 | p99 | ratio (median of rounds; min–max) | Redis connections | cores: jaego, Redis, others, stolen |\n|---|---:|---:|---:|---:|---:|---:|\n", lookupRounds, phase)
	a := merge(modes[0].rows)
	for i, m := range modes {
		b := merge(m.rows)
		ratios := make([]float64, lookupRounds)
		for r := range ratios {
			ratios[r] = m.rows[r].rate / modes[0].rows[r].rate
		}
		lo, hi := minMax(ratios)
		mid := median(ratios)
		var c cpuTimes
		for _, x := range m.cpu {
			c = c.plus(x)
		}
		c = c.per(float64(lookupRounds))
		fmt.Fprintf(out, "| %s | %.0f | %s | %s | %.2f (%.2f; %.2f–%.2f) | %d | %.2f, %.2f, %.2f, %.2f |\n", m.name, b.rate, ms(b.lat.pct(.5)), ms(b.lat.pct(.99)), b.rate/a.rate, mid, lo, hi, m.conns,
			c.process, c.redis, c.others(), c.stolen)
		if i == 1 {
			measured(out, goalRow{Path: fmt.Sprintf("single lookups with %d active webhook subscriptions", subs), Baseline: "none", Value: b.rate / a.rate, Min: lo, Max: hi, AtLeast: true, Goal: 0.95})
		}
	}
	return nil
}

// settle waits until the subscriptions delivering to want's paths have caught up with the
// feed: a resumed subscription first reads what passed while it was paused, on its own, and
// a phase measures them following the feed. It writes one marker change per store and waits
// until each path has received the markers of its subscription's stores (want[path]).
func (r *webhookRig) settle(ctx context.Context, prefix string, want map[string]int, stores []string) error {
	if len(want) == 0 {
		return nil
	}
	tok := []byte(`"event_id":"` + prefix)
	r.sink.mu.Lock()
	r.sink.marked = map[string]int{}
	r.sink.mu.Unlock()
	r.sink.mark.Store(&tok)
	defer r.sink.mark.Store(nil)
	var marks []inventory.Event
	for _, s := range stores {
		marks = append(marks, inventory.Event{EventID: prefix + s, Type: inventory.Receipt, Store: s, SKU: "MARK", Qty: 1})
	}
	if _, err := r.store.Apply(ctx, marks); err != nil {
		return err
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		r.sink.mu.Lock()
		short := 0
		for path, n := range want {
			if r.sink.marked[path] < n {
				short++
			}
		}
		r.sink.mu.Unlock()
		if short == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook lookups: %d of %d subscriptions did not catch up within 2 minutes", short, len(want))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeSteadily applies rate receipts a second over stores, 10 a call, until ctx ends.
func writeSteadily(ctx context.Context, store *invredis.Store, rate int, stores []string) {
	tick := time.NewTicker(time.Second * 10 / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		batch := make([]inventory.Event, 10)
		for j := range batch {
			batch[j] = inventory.Event{EventID: fmt.Sprintf("steady-%d-%d-%d", time.Now().UnixNano(), i, j), Type: inventory.Receipt,
				Store: stores[(i*10+j)%len(stores)], SKU: fmt.Sprintf("K%d", j), Qty: 1}
		}
		_, _ = store.Apply(ctx, batch)
	}
}
