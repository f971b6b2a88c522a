package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
)

// benchLock compares, on one hot SKU with 64 concurrent writers for dur each, the original
// design's update path (tryLock → read → write → unlock) with the Lua apply step, counting
// lost updates exactly for both; then lock acquire/release latency uncontended and under
// contention.
func benchLock(ctx context.Context, out io.Writer, dur time.Duration) error {
	client, _, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	const writers = 64
	locker := lock.New(client, lock.Options{Logger: quietLog})
	store := invredis.New(client, invredis.Options{})

	// The original path: a lock around a plain read-modify-write of the stock hash.
	key := "hot:S0001:8809461234567"
	lockedRate, lockedN, lockedFinal, err := hammer(ctx, writers, dur, func(ctx context.Context, _ int64) error {
		k, err := locker.TryLock(ctx, "stock:S0001:8809461234567", 10*time.Second, 5*time.Second)
		if err != nil {
			return err
		}
		v, err := client.Do(ctx, client.B().Hget().Key(key).Field("on_hand").Build()).AsInt64()
		if err != nil && !rueidis.IsRedisNil(err) {
			return err
		}
		if err := client.Do(ctx, client.B().Hset().Key(key).FieldValue().FieldValue("on_hand", strconv.FormatInt(v+1, 10)).Build()).Error(); err != nil {
			return err
		}
		return k.Unlock(ctx)
	}, func() (int64, error) {
		return client.Do(ctx, client.B().Hget().Key(key).Field("on_hand").Build()).AsInt64()
	})
	if err != nil {
		return err
	}
	luaRate, luaN, luaFinal, err := hammer(ctx, writers, dur, func(ctx context.Context, i int64) error {
		res, err := store.Apply(ctx, []inventory.Event{{EventID: "hot-" + strconv.FormatInt(i, 10), Type: inventory.Receipt,
			Store: "S0001", SKU: "8809461234567", Qty: 1}})
		if err == nil && res[0].Status != inventory.Applied {
			err = fmt.Errorf("%s: %v", res[0].Status, res[0].Err)
		}
		return err
	}, func() (int64, error) {
		st, err := store.Get(ctx, "S0001", "8809461234567")
		return st.OnHand, err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| hot SKU, %d writers, %s each | updates/s | updates | lost updates | ratio |\n|---|---:|---:|---:|---:|\n", writers, dur)
	fmt.Fprintf(out, "| tryLock → HGET → HSET → unlock (original design, baseline) | %.0f | %d | %d | 1.00 |\n", lockedRate, lockedN, lockedN-lockedFinal)
	fmt.Fprintf(out, "| Lua apply step (one EVALSHA per event) | %.0f | %d | %d | %.1f |\n\n", luaRate, luaN, luaN-luaFinal, luaRate/lockedRate)

	return lockLatencies(ctx, out, locker, writers, dur)
}

// lockLatencies reports acquire and release latency, uncontended and with writers
// goroutines on one lock.
func lockLatencies(ctx context.Context, out io.Writer, locker *lock.Locker, writers int, dur time.Duration) error {
	fmt.Fprintf(out, "| lock latency | acquire p50 | acquire p99 | release p50 | release p99 |\n|---|---:|---:|---:|---:|\n")
	for _, c := range []struct {
		name    string
		workers int
	}{{"uncontended (1 goroutine)", 1}, {fmt.Sprintf("contended (%d goroutines, one lock)", writers), writers}} {
		acq, rel, err := lockLatency(ctx, locker, c.workers, dur)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", c.name, ms(acq.pct(.5)), ms(acq.pct(.99)), ms(rel.pct(.5)), ms(rel.pct(.99)))
	}
	return nil
}

// hammer runs op from workers goroutines for dur and reports rate, count and the final value.
func hammer(ctx context.Context, workers int, dur time.Duration, op func(context.Context, int64) error, final func() (int64, error)) (float64, int64, int64, error) {
	var n, seq atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := op(ctx, seq.Add(1)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	rate := float64(n.Load()) / time.Since(start).Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, 0, err
	}
	f, err := final()
	return rate, n.Load(), f, err
}

func lockLatency(ctx context.Context, locker *lock.Locker, workers int, dur time.Duration) (latencies, latencies, error) {
	var mu sync.Mutex
	var acq, rel latencies
	var firstErr error
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	name := fmt.Sprintf("latency-%d", workers)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			var a, r latencies
			for time.Now().Before(deadline) {
				t0 := time.Now()
				k, err := locker.TryLock(ctx, name, 30*time.Second, 10*time.Second)
				t1 := time.Now()
				if err == nil {
					err = k.Unlock(ctx)
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				a, r = append(a, t1.Sub(t0)), append(r, time.Since(t1))
			}
			mu.Lock()
			acq, rel = append(acq, a...), append(rel, r...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return acq, rel, firstErr
}
