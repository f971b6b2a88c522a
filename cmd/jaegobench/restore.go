package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/breaker"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
)

// benchRestore measures `jaego restore` and the loss it ends (design §8), against a
// baseline of the same run:
//   - the restore of n records from the copy on PostgreSQL into an empty Redis: wall time
//     and records/s ÷ redis-benchmark's pipelined HSET rate on the same server;
//   - a FLUSHALL under 8 readers through the breaker: how long after the flush the first
//     fallback answer came, and whether any read sent after it was answered by the empty
//     Redis (a miss: the goal is none, the first request after the loss is a fallback).
func benchRestore(ctx context.Context, out io.Writer, n int) error {
	sdb, _, stopPG, err := privatePostgres(ctx)
	if err != nil {
		return err
	}
	defer stopPG()
	client, srv, stopRedis, err := privateRedis()
	if err != nil {
		return err
	}
	defer stopRedis()
	cp := invdb.New(sdb)
	if err := fillCopy(ctx, cp, n); err != nil {
		return err
	}
	var copyBytes int64
	if err := sdb.QueryRowContext(ctx, `SELECT pg_total_relation_size('stock_copy')`).Scan(&copyBytes); err != nil {
		return err
	}
	raw, err := redisBenchmarkHSET(ctx, srv.Addr, n)
	if err != nil {
		return err
	}
	if err := client.Do(ctx, client.B().Flushall().Build()).Error(); err != nil {
		return err
	}
	store := invredis.New(client, invredis.Options{RequireEpoch: true})
	start := time.Now()
	rep, err := inventory.Restore(ctx, cp, store, inventory.RestoreOptions{Locks: lock.New(client, lock.Options{})})
	if err != nil {
		return err
	}
	took := time.Since(start)
	rate := float64(rep.Records) / took.Seconds()
	fmt.Fprintf(out, "| restore of %d records (PostgreSQL copy → empty Redis) | value |\n|---|---:|\n", rep.Records)
	fmt.Fprintf(out, "| PostgreSQL bytes per record of the copy (table and index) | %.1f |\n", float64(copyBytes)/float64(n))
	fmt.Fprintf(out, "| wall time | %s |\n| records/s | %.0f |\n| redis-benchmark HSET -P 32 -c 50 (baseline), requests/s | %.0f |\n| **restore ÷ raw HSET** | **%.2f** |\n\n",
		took.Round(time.Millisecond), rate, raw, rate/raw)
	return lossToFallback(ctx, out, client, store, cp)
}

// fillCopy commits n records (2,000 stores × n/2,000 SKUs) to the copy in pages.
func fillCopy(ctx context.Context, cp *invdb.Copy, n int) error {
	if _, err := cp.Claim(ctx, 1); err != nil {
		return err
	}
	now := time.Now()
	page := make([]inventory.Stock, 0, 10_000)
	for i := range n {
		page = append(page, inventory.Stock{Store: fmt.Sprintf("S%04d", i%2000), SKU: fmt.Sprintf("880%06d", i/2000),
			OnHand: int64(1 + i%50), Version: 1, UpdatedAt: now})
		if len(page) == cap(page) || i == n-1 {
			if err := cp.Commit(ctx, 1, inventory.Projection{Records: page, Cursor: "bench", AsOf: now}); err != nil {
				return err
			}
			page = page[:0]
		}
	}
	return nil
}

// lossToFallback flushes Redis under 8 readers through the breaker (the copy its fallback)
// and reports the first fallback answer after the flush and the misses (reads sent after
// it that the empty Redis answered "not found").
func lossToFallback(ctx context.Context, out io.Writer, client rueidis.Client, store *invredis.Store, cp *invdb.Copy) error {
	s := breaker.NewStore(store, cp, breaker.New(breaker.Options{Logger: quietLog}), nil)
	var flushed, firstFallback, afterFlush, misses atomic.Int64
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; lctx.Err() == nil; i += 8 {
				sent := time.Now().UnixNano()
				st, err := s.Get(lctx, fmt.Sprintf("S%04d", i%2000), fmt.Sprintf("880%06d", (i/2000)%100))
				if f := flushed.Load(); f == 0 || sent < f {
					continue
				}
				afterFlush.Add(1)
				if err == nil && st.Source == inventory.SourceFallback {
					firstFallback.CompareAndSwap(0, time.Now().UnixNano())
				} else if lctx.Err() == nil {
					misses.Add(1)
				}
			}
		})
	}
	pause := time.NewTimer(time.Second) // reads before the loss
	<-pause.C
	err := client.Do(ctx, client.B().Flushall().Build()).Error()
	flushed.Store(time.Now().UnixNano())
	pause.Reset(2 * time.Second)
	<-pause.C
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| FLUSHALL under 8 readers through the breaker | value |\n|---|---:|\n")
	fmt.Fprintf(out, "| first fallback answer after the flush returned | %s |\n| reads sent after the flush | %d |\n| of them answered by the empty Redis (goal 0) | %d |\n",
		ms(time.Duration(firstFallback.Load()-flushed.Load())), afterFlush.Load(), misses.Load())
	return nil
}
