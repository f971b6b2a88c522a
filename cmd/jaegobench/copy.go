package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/breaker"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	invprom "github.com/jaego/jaego/internal/inventory/prom"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

// privatePostgres creates a throwaway database on the PostgreSQL of the tests
// ($JAEGO_TEST_POSTGRES_URL or 127.0.0.1:5432), migrated, and answers its URL too; stop
// drops it.
func privatePostgres(ctx context.Context) (*sqldb.DB, string, func(), error) {
	admin := testenv.PostgresAdminURL()
	adb, err := sql.Open("pgx", admin)
	if err != nil {
		return nil, "", nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "jaego_bench_" + hex.EncodeToString(b[:])
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adb.Close()
		return nil, "", nil, fmt.Errorf("no PostgreSQL at %s (run scripts/test.sh once, or set JAEGO_TEST_POSTGRES_URL): %w", admin, err)
	}
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	d, err := sqldb.Open(ctx, u.String())
	if err == nil {
		_, err = d.Migrate(ctx, nil)
	}
	stop := func() {
		if d != nil {
			d.Close()
		}
		_, _ = adb.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		adb.Close()
	}
	if err != nil {
		stop()
		return nil, "", nil, err
	}
	return d, u.String(), stop, nil
}

var quietLog = slog.New(slog.DiscardHandler)

// benchCopy measures the durable copy (design §8) against baselines of the same run:
//   - the projector's sustained rate on a backlog of n changes ÷ the batched apply rate that
//     wrote them (goal ≥ 1: the copy keeps up with the fastest writer);
//   - the copy's lag (now − its as-of) while events arrive at a steady rate;
//   - single lookups answered from the copy (fallback) ÷ from Redis (primary), p50/p99;
//   - Redis SIGKILLed under load: time to the first 503 write, the first fallback read and
//     the open breaker; Redis back (AOF): time until the breaker is closed.
func benchCopy(ctx context.Context, out io.Writer, n, rate int, steady, dur time.Duration) error {
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := testenv.StartRedis(dir, "appendonly yes", "appendfsync everysec")
	if err != nil {
		return err
	}
	defer srv.Stop()
	client, err := newClient(srv.Addr)
	if err != nil {
		return err
	}
	defer client.Close()
	sdb, pgURL, stopPG, err := privatePostgres(ctx)
	if err != nil {
		return err
	}
	defer stopPG()
	store := invredis.New(client, invredis.Options{RequireEpoch: true})
	if err := store.MarkEpoch(ctx, true); err != nil {
		return err
	}
	cp := invdb.New(sdb)
	pctx, stopProjector := context.WithCancel(ctx)
	done, err := projectBacklog(pctx, out, client, store, sdb, n)
	if err == nil {
		err = copyLag(ctx, out, store, cp, rate, steady)
	}
	if err == nil {
		err = copyLookups(ctx, out, store, cp, pgURL, dur)
	}
	stopProjector()
	<-done
	if err != nil {
		return err
	}
	return redisOutage(ctx, out, srv, store, cp)
}

// projectBacklog gives the copy its position, applies n events batched (the baseline), then
// runs the projector (until ctx ends: done is closed then) and reports its rate once it
// has copied them.
func projectBacklog(ctx context.Context, out io.Writer, client rueidis.Client, store *invredis.Store, sdb *sqldb.DB, n int) (done chan struct{}, err error) {
	cp := invdb.New(sdb)
	done = make(chan struct{})
	feed := invredis.NewFeed(store, invredis.FeedOptions{})
	pos, err := feed.Position(ctx)
	if err == nil {
		_, err = cp.Claim(ctx, 1)
	}
	if err == nil {
		err = cp.Commit(ctx, 1, inventory.Projection{Cursor: pos})
	}
	applyPerSec := 0.0
	if err == nil {
		applyPerSec, err = applyRate(ctx, store, n, 256, 4)
	}
	if err != nil {
		close(done)
		return done, err
	}
	p := inventory.NewProjector(inventory.ProjectorOptions{Feed: feed, Snapshots: store, Copy: cp, Logger: quietLog,
		Locker: lock.New(client, lock.Options{Logger: quietLog}), Observer: invprom.NewProjector(prometheus.NewRegistry())})
	start := time.Now()
	go func() { p.Run(ctx); close(done) }()
	for {
		pp, err := cp.Position(ctx)
		if err != nil {
			return done, err
		}
		if pp.Changes >= int64(n) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	projectPerSec := float64(n) / time.Since(start).Seconds()
	var ledgerBytes int64
	if err := sdb.QueryRowContext(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
		WHERE inhparent = 'stock_ledger'::regclass`).Scan(&ledgerBytes); err != nil {
		return done, err
	}
	fmt.Fprintf(out, "| durable copy (%d changes) | per second | ratio |\n|---|---:|---:|\n", n)
	fmt.Fprintf(out, "| batched apply into Redis (baseline: MaxBatch 64, 256 events per Apply, 4 goroutines) | %.0f | 1.00 |\n", applyPerSec)
	fmt.Fprintf(out, "| projector: feed → PostgreSQL (rows, ledger, cursor per commit of 5,000) | %.0f | %.2f |\n", projectPerSec, projectPerSec/applyPerSec)
	fmt.Fprintf(out, "| PostgreSQL bytes per change of the ledger (partitions and indexes) | %.1f | |\n\n", float64(ledgerBytes)/float64(n))
	return done, nil
}

// copyLag samples the copy's lag (now − its as-of) every 50 ms while events arrive at rate
// a second for d, the projector running.
func copyLag(ctx context.Context, out io.Writer, store *invredis.Store, cp *invdb.Copy, rate int, d time.Duration) error {
	var lags latencies
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case now := <-t.C:
				if pp, err := cp.Position(sctx); err == nil && !pp.AsOf.IsZero() {
					lags = append(lags, max(0, now.Sub(pp.AsOf)))
				}
			}
		}
	}()
	steadyN, err := paced(ctx, store, rate, d)
	stopSampling()
	<-sampled
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| copy lag at %d events/s for %s (%d events; %d samples of now − as-of, 50 ms apart) | p50 | p99 | max |\n|---|---:|---:|---:|\n",
		rate, d, steadyN, len(lags))
	fmt.Fprintf(out, "| | %s | %s | %s |\n\n", ms(lags.pct(0.5)), ms(lags.pct(0.99)), ms(lags.pct(1)))
	return nil
}

// copyLookups compares single lookups from Redis (primary) and from the copy (fallback),
// the same keys, through the breaker, with the ceiling of PostgreSQL itself beside them:
// pgbench running the same indexed read, prepared, on as many connections as jaego's pool.
// Three rounds, the order rotating.
func copyLookups(ctx context.Context, out io.Writer, store *invredis.Store, cp *invdb.Copy, pgURL string, dur time.Duration) error {
	b := breaker.New(breaker.Options{Logger: quietLog})
	guarded := breaker.NewStore(store, cp, b, nil)
	var prim, fb, pgb []float64
	var primLat, fbLat latencies
	phases := []func() error{
		func() error {
			r, l := lookups(ctx, guarded, dur/3)
			prim, primLat = append(prim, r), append(primLat, l...)
			return nil
		},
		func() error {
			b.Force()
			r, l := lookups(ctx, guarded, dur/3)
			fb, fbLat = append(fb, r), append(fbLat, l...)
			return b.Auto()
		},
		func() error { r, err := pgbenchLookups(ctx, pgURL, dur/3); pgb = append(pgb, r); return err },
	}
	for round := range 3 {
		for i := range phases {
			if err := phases[(i+round)%len(phases)](); err != nil {
				return err
			}
		}
	}
	var ratios, ceiling []float64
	for i := range prim {
		ratios, ceiling = append(ratios, fb[i]/prim[i]), append(ceiling, fb[i]/pgb[i])
	}
	primRate, fbRate, pgRate := mean(prim), mean(fb), mean(pgb)
	lo, hi := minMax(ratios)
	clo, chi := minMax(ceiling)
	fmt.Fprintf(out, "| single lookups, 32 goroutines, 3 rounds × %s | lookups/s | ratio (min–max) | p50 | p99 |\n|---|---:|---:|---:|---:|\n", (dur / 3).Round(time.Millisecond))
	fmt.Fprintf(out, "| primary: Redis through the breaker (baseline) | %.0f | 1.00 | %s | %s |\n", primRate, ms(primLat.pct(0.5)), ms(primLat.pct(0.99)))
	fmt.Fprintf(out, "| fallback: the copy in PostgreSQL (breaker forced open) | %.0f | %.2f (%.2f–%.2f) | %s | %s |\n", fbRate, median(ratios), lo, hi, ms(fbLat.pct(0.5)), ms(fbLat.pct(0.99)))
	fmt.Fprintf(out, "| PostgreSQL's ceiling: pgbench, the same read, prepared, %d connections | %.0f | %.2f | | |\n", sqldb.PostgresConns, pgRate, pgRate/primRate)
	fmt.Fprintf(out, "| fallback ÷ pgbench | | %.2f (%.2f–%.2f) | | |\n\n", median(ceiling), clo, chi)
	measured(out, goalRow{Path: "fallback lookup", Baseline: "primary through the breaker", Value: median(ratios), Min: lo, Max: hi, AtLeast: true, Goal: 0.5})
	measured(out, goalRow{Path: "fallback lookup p99", Value: float64(fbLat.pct(0.99).Microseconds()) / 1000, Unit: "ms", Goal: 5})
	return nil
}

// pgbenchLookups runs pgbench for d with the copy's lookup of the keys lookups reads (as
// a prepared statement, sqldb.PostgresConns clients) and answers its transactions/s.
func pgbenchLookups(ctx context.Context, pgURL string, d time.Duration) (float64, error) {
	script, err := os.CreateTemp("", "jaegobench-*.sql")
	if err != nil {
		return 0, err
	}
	defer os.Remove(script.Name())
	_, err = script.WriteString(`\set s random(0, 1999)
\set k random(0, 499)
SELECT on_hand, reserved, safety, version, updated_at_ms FROM stock_copy WHERE store = 'S' || lpad(:s::text, 4, '0') AND sku = '880' || lpad(:k::text, 6, '0');
`)
	script.Close()
	if err != nil {
		return 0, err
	}
	out, err := exec.CommandContext(ctx, "pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(sqldb.PostgresConns), "-j", "2",
		"-T", strconv.Itoa(max(1, int(d.Seconds()))), "-f", script.Name(), pgURL).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench (apt-get install -y postgresql-client): %v\n%s", err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no rate:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// paced applies receipts at rate per second for d, one event per Apply, and returns how
// many.
func paced(ctx context.Context, store *invredis.Store, rate int, d time.Duration) (int, error) {
	start := time.Now()
	n := 0
	var wg sync.WaitGroup
	var failed atomic.Value
	for time.Since(start) < d {
		due := start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		i := n
		wg.Go(func() {
			e := inventory.Event{EventID: "steady-" + strconv.Itoa(i), Type: inventory.Receipt,
				Store: fmt.Sprintf("S%04d", (i*7919)%2000), SKU: fmt.Sprintf("880%06d", (i*104729)%500), Qty: 1}
			if _, err := store.Apply(ctx, []inventory.Event{e}); err != nil {
				failed.Store(err)
			}
		})
		n++
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return n, err
	}
	return n, nil
}

// lookups reads single records of the applyRate keys from 32 goroutines for d.
func lookups(ctx context.Context, s inventory.StockStore, d time.Duration) (float64, latencies) {
	var total atomic.Int64
	var mu sync.Mutex
	var all latencies
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range 32 {
		wg.Go(func() {
			var mine latencies
			for i := w; time.Now().Before(deadline); i += 32 {
				t := time.Now()
				if _, err := s.Get(ctx, fmt.Sprintf("S%04d", (i*7919)%2000), fmt.Sprintf("880%06d", (i*104729)%500)); err == nil {
					total.Add(1)
					if i%16 == 0 {
						mine = append(mine, time.Since(t))
					}
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return float64(total.Load()) / d.Seconds(), all
}

// redisOutage kills Redis under read and write load through a breaker with the default
// rules (but 2 s open), and times what the shop sees.
func redisOutage(ctx context.Context, out io.Writer, srv *testenv.RedisServer, store *invredis.Store, cp *invdb.Copy) error {
	b := breaker.New(breaker.Options{OpenFor: 2 * time.Second, Logger: quietLog})
	o := &outage{s: breaker.NewStore(store, cp, b, nil), b: b}
	lctx, stop := context.WithCancel(ctx)
	wait := o.load(lctx)
	time.Sleep(time.Second) // load before the kill
	o.killed.Store(time.Now().UnixNano())
	srv.Stop()
	for o.opened.Load() == 0 || o.first503.Load() == 0 || o.firstFallback.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Second)
	back := time.Now()
	if err := srv.Restart(); err != nil {
		stop()
		wait()
		return err
	}
	restarted := time.Now()
	for b.Status().State != breaker.Closed {
		time.Sleep(time.Millisecond)
	}
	closed := time.Now()
	stop()
	wait()
	k := o.killed.Load()
	d := func(at int64) string { return ms(time.Duration(at - k)) }
	fmt.Fprintf(out, "| Redis SIGKILLed under 8,000 reads/s and 200 writes/s (breaker defaults, open 2 s) | after the kill |\n|---|---:|\n")
	fmt.Fprintf(out, "| first write answered 503 | %s |\n| first read answered from the copy | %s |\n| breaker open | %s |\n", d(o.first503.Load()), d(o.firstFallback.Load()), d(o.opened.Load()))
	fmt.Fprintf(out, "| Redis restarted (with its AOF) | after the restart |\n| redis-server ready | %s |\n| breaker closed (2 s open, then trial calls) | %s |\n",
		ms(restarted.Sub(back)), ms(closed.Sub(restarted)))
	return nil
}

// outage is the load of redisOutage and when it first saw each sign of the kill (unix ns).
type outage struct {
	s                                       *breaker.Store
	b                                       *breaker.Breaker
	killed, first503, firstFallback, opened atomic.Int64
}

// load runs 8 readers (about 8,000 reads/s) and a writer (200 writes/s) until ctx ends;
// the function it returns waits for them.
func (o *outage) load(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	since := func(at *atomic.Int64) {
		if k := o.killed.Load(); k > 0 {
			at.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	for w := range 8 {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += 8 {
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				st, err := o.s.Get(rctx, fmt.Sprintf("S%04d", (i*7919)%2000), fmt.Sprintf("880%06d", (i*104729)%500))
				cancel()
				if err == nil && st.Source == inventory.SourceFallback {
					since(&o.firstFallback)
				}
				if o.b.Status().State != breaker.Closed {
					since(&o.opened)
				}
				time.Sleep(time.Millisecond) // pacing
			}
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			_, err := o.s.Apply(ctx, []inventory.Event{{EventID: "outage-" + strconv.Itoa(i), Type: inventory.Receipt, Store: "S0001", SKU: "880000001", Qty: 1}})
			if err != nil {
				since(&o.first503)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return wg.Wait
}
