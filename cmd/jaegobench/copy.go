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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
// ($JAEGO_TEST_POSTGRES_URL or 127.0.0.1:5432), migrated; stop drops it.
func privatePostgres(ctx context.Context) (*sqldb.DB, func(), error) {
	admin := testenv.PostgresAdminURL()
	adb, err := sql.Open("pgx", admin)
	if err != nil {
		return nil, nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "jaego_bench_" + hex.EncodeToString(b[:])
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adb.Close()
		return nil, nil, fmt.Errorf("no PostgreSQL at %s (run scripts/test.sh once, or set JAEGO_TEST_POSTGRES_URL): %w", admin, err)
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
		return nil, nil, err
	}
	return d, stop, nil
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
	sdb, stopPG, err := privatePostgres(ctx)
	if err != nil {
		return err
	}
	defer stopPG()
	store := invredis.New(client, invredis.Options{RequireEpoch: true})
	if err := store.MarkEpoch(ctx, true); err != nil {
		return err
	}
	feed := invredis.NewFeed(store, invredis.FeedOptions{})
	cp := invdb.New(sdb)
	locks := lock.New(client, lock.Options{Logger: quietLog})

	// 1. Backlog: the copy takes its position, n events are applied batched, then the
	// projector copies them.
	pos, err := feed.Position(ctx)
	if err != nil {
		return err
	}
	if _, err := cp.Claim(ctx, 1); err != nil {
		return err
	}
	if err := cp.Commit(ctx, 1, inventory.Projection{Cursor: pos}); err != nil {
		return err
	}
	applyPerSec, err := applyRate(ctx, store, n, 256, 4)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	p := inventory.NewProjector(inventory.ProjectorOptions{Feed: feed, Snapshots: store, Copy: cp, Locker: locks, Logger: quietLog, Observer: invprom.NewProjector(reg)})
	pctx, stopProjector := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { p.Run(pctx); close(done) }()
	for {
		pp, err := cp.Position(ctx)
		if err != nil {
			stopProjector()
			return err
		}
		if pp.Changes >= int64(n) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	projectPerSec := float64(n) / time.Since(start).Seconds()
	fmt.Fprintf(out, "| durable copy (%d changes) | per second | ratio |\n|---|---:|---:|\n", n)
	fmt.Fprintf(out, "| batched apply into Redis (baseline: MaxBatch 64, 256 events per Apply, 4 goroutines) | %.0f | 1.00 |\n", applyPerSec)
	fmt.Fprintf(out, "| projector: feed → PostgreSQL (rows, ledger, cursor per commit of 5,000) | %.0f | %.2f |\n\n", projectPerSec, projectPerSec/applyPerSec)

	// 2. Lag at a steady rate, with the projector running.
	var lags latencies
	var lagMu sync.Mutex
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
					lagMu.Lock()
					lags = append(lags, max(0, now.Sub(pp.AsOf)))
					lagMu.Unlock()
				}
			}
		}
	}()
	steadyN, err := paced(ctx, store, rate, steady)
	stopSampling()
	<-sampled
	if err != nil {
		stopProjector()
		return err
	}
	fmt.Fprintf(out, "| copy lag at %d events/s for %s (%d events; %d samples of now − as-of, 50 ms apart) | p50 | p99 | max |\n|---|---:|---:|---:|\n",
		rate, steady, steadyN, len(lags))
	fmt.Fprintf(out, "| | %s | %s | %s |\n\n", ms(lags.pct(0.5)), ms(lags.pct(0.99)), ms(lags.pct(1)))

	// 3. Lookups: primary (Redis) vs fallback (the copy), the same keys.
	b := breaker.New(breaker.Options{Logger: quietLog})
	guarded := breaker.NewStore(store, cp, b, nil)
	primRate, primLat := lookups(ctx, guarded, dur)
	b.Force()
	fbRate, fbLat := lookups(ctx, guarded, dur)
	b.Auto()
	fmt.Fprintf(out, "| single lookups, 32 goroutines, %s each | lookups/s | ratio | p50 | p99 |\n|---|---:|---:|---:|---:|\n", dur)
	fmt.Fprintf(out, "| primary: Redis through the breaker (baseline) | %.0f | 1.00 | %s | %s |\n", primRate, ms(primLat.pct(0.5)), ms(primLat.pct(0.99)))
	fmt.Fprintf(out, "| fallback: the copy in PostgreSQL (breaker forced open) | %.0f | %.2f | %s | %s |\n\n", fbRate, fbRate/primRate, ms(fbLat.pct(0.5)), ms(fbLat.pct(0.99)))

	// 4. Redis dies under load, then comes back.
	stopProjector()
	<-done
	return redisOutage(ctx, out, srv, store, cp)
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
	s := breaker.NewStore(store, cp, b, nil)
	var killed atomic.Int64 // unix ns
	var first503, firstFallback, opened, closed atomic.Int64
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	since := func(at *atomic.Int64) {
		if k := killed.Load(); k > 0 {
			at.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	for w := range 8 {
		wg.Go(func() {
			for i := w; lctx.Err() == nil; i += 8 {
				rctx, cancel := context.WithTimeout(lctx, time.Second)
				st, err := s.Get(rctx, fmt.Sprintf("S%04d", (i*7919)%2000), fmt.Sprintf("880%06d", (i*104729)%500))
				cancel()
				if err == nil && st.Source == inventory.SourceFallback {
					since(&firstFallback)
				}
				if b.Status().State != breaker.Closed {
					since(&opened)
				}
				time.Sleep(time.Millisecond) // pacing: about 8,000 reads/s
			}
		})
	}
	wg.Go(func() {
		for i := 0; lctx.Err() == nil; i++ {
			_, err := s.Apply(lctx, []inventory.Event{{EventID: "outage-" + strconv.Itoa(i), Type: inventory.Receipt, Store: "S0001", SKU: "880000001", Qty: 1}})
			if err != nil {
				since(&first503)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(time.Second) // load before the kill
	killed.Store(time.Now().UnixNano())
	srv.Stop()
	for opened.Load() == 0 || first503.Load() == 0 || firstFallback.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Second)
	back := time.Now()
	if err := srv.Restart(); err != nil {
		stop()
		wg.Wait()
		return err
	}
	restarted := time.Now()
	for b.Status().State != breaker.Closed {
		time.Sleep(time.Millisecond)
	}
	closed.Store(time.Now().UnixNano())
	stop()
	wg.Wait()
	k := killed.Load()
	d := func(at int64) string { return ms(time.Duration(at - k)) }
	fmt.Fprintf(out, "| Redis SIGKILLed under 8,000 reads/s and 200 writes/s (breaker defaults, open 2 s) | after the kill |\n|---|---:|\n")
	fmt.Fprintf(out, "| first write answered 503 | %s |\n| first read answered from the copy | %s |\n| breaker open | %s |\n", d(first503.Load()), d(firstFallback.Load()), d(opened.Load()))
	fmt.Fprintf(out, "| Redis restarted (with its AOF) | after the restart |\n| redis-server ready | %s |\n| breaker closed (2 s open, then trial calls) | %s |\n",
		ms(restarted.Sub(back)), ms(time.Duration(closed.Load()-restarted.UnixNano())))
	return nil
}
