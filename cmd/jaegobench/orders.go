package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
)

// benchOrders measures store orders (issue 14):
//   - baskets of 5 held per second against single reserve events per second on the same hot
//     SKUs, both one call per request from the same goroutines, in items per second;
//   - basket availability of 5 SKUs across 100 and 1,000 stores: p50, p99, and the commands
//     and round trips of one request.
func benchOrders(ctx context.Context, out io.Writer, dur time.Duration, workers int) error {
	client, _, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	// Holds are never confirmed here: the store's hold quota (--max-holds-per-store) would end the run.
	o := &ordersBench{store: invredis.New(client, invredis.Options{MaxHoldsPerStore: 1 << 30}), dur: dur}
	var seed []inventory.Event
	for st := range 1000 {
		for k := range orderSKUs {
			seed = append(seed, inventory.Event{EventID: fmt.Sprintf("seed-%d-%d", st, k), Type: inventory.Receipt,
				Store: fmt.Sprintf("S%04d", st), SKU: fmt.Sprintf("880%010d", k), Qty: 1_000_000_000})
		}
	}
	for i := 0; i < len(seed); i += 1000 {
		if _, err := o.store.Apply(ctx, seed[i:min(i+1000, len(seed))]); err != nil {
			return err
		}
	}
	if err := o.holds(ctx, out, workers); err != nil {
		return err
	}
	return o.availability(ctx, out)
}

const orderSKUs = 50 // SKUs of each store

type ordersBench struct {
	store *invredis.Store
	dur   time.Duration
	seq   atomic.Int64
}

// run calls step from workers goroutines for the bench's duration and answers the items/s
// (step says how many items each call did) and the first error.
func (o *ordersBench) run(ctx context.Context, workers int, step func(n int64) (int, error)) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, o.dur)
	defer cancel()
	var items atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				n, err := step(o.seq.Add(1))
				if err != nil {
					if ctx.Err() == nil {
						once.Do(func() { first = err })
					}
					return
				}
				items.Add(int64(n))
			}
		})
	}
	wg.Wait()
	return float64(items.Load()) / time.Since(start).Seconds(), first
}

// holds compares items/s of single reserve events (the baseline) with baskets of 5 held
// whole, phases alternating, twice.
func (o *ordersBench) holds(ctx context.Context, out io.Writer, workers int) error {
	single := func(n int64) (int, error) {
		res, err := o.store.Apply(ctx, []inventory.Event{{EventID: fmt.Sprintf("rv-%d", n), Type: inventory.Reserve,
			Store: "S0000", SKU: fmt.Sprintf("880%010d", n%orderSKUs), Qty: 1}})
		if err == nil && res[0].Status != inventory.Applied {
			err = fmt.Errorf("reserve: %s %v", res[0].Status, res[0].Err)
		}
		return 1, err
	}
	basket := func(n int64) (int, error) {
		items := make([]inventory.Item, 5)
		for i := range items {
			items[i] = inventory.Item{SKU: fmt.Sprintf("880%010d", (n*5+int64(i))%orderSKUs), Qty: 1}
		}
		_, _, err := o.store.Hold(ctx, inventory.HoldRequest{ID: fmt.Sprintf("b-%d", n), Store: "S0000", Items: items})
		return 5, err
	}
	var singles, baskets []float64
	for range 2 {
		s, err := o.run(ctx, workers, single)
		if err != nil {
			return err
		}
		b, err := o.run(ctx, workers, basket)
		if err != nil {
			return err
		}
		singles, baskets = append(singles, s), append(baskets, b)
	}
	s, b := median(singles), median(baskets)
	fmt.Fprintf(out, "| %d SKUs of one store, %d goroutines, 2 × %s a way | items/s | ratio |\n|---|---:|---:|\n", orderSKUs, workers, o.dur)
	fmt.Fprintf(out, "| single reserve events, one per call (baseline) | %.0f | 1.00 |\n", s)
	fmt.Fprintf(out, "| baskets of 5 held whole (POST /v1/reservations' store call) | %.0f | %.2f |\n\n", b, b/s)
	return nil
}

// availability measures a 5-SKU basket's availability across 100 and 1,000 stores.
func (o *ordersBench) availability(ctx context.Context, out io.Writer) error {
	fmt.Fprintf(out, "| availability of a 5-SKU basket, 4 goroutines, %s | requests/s | p50 | p99 | HMGETs a request | round trips a request |\n|---|---:|---:|---:|---:|---:|\n", o.dur)
	items := []inventory.Item{{SKU: "8800000000001", Qty: 2}, {SKU: "8800000000002", Qty: 1}, {SKU: "8800000000003", Qty: 1},
		{SKU: "8800000000004", Qty: 3}, {SKU: "8800000000005", Qty: 1}}
	for _, n := range []int{100, 1000} {
		stores := make([]string, n)
		for i := range stores {
			stores[i] = fmt.Sprintf("S%04d", i)
		}
		var mu sync.Mutex
		var lat latencies
		rate, err := o.run(ctx, 4, func(int64) (int, error) {
			t0 := time.Now()
			got, err := o.store.Availability(ctx, items, stores)
			if err == nil && (len(got) != n || !got[0].Complete) {
				err = fmt.Errorf("availability: %d stores, first %+v", len(got), got[0])
			}
			mu.Lock()
			lat = append(lat, time.Since(t0))
			mu.Unlock()
			return 1, err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| %d stores | %.0f | %s | %s | %d | 1 |\n", n, rate, ms(lat.pct(.5)), ms(lat.pct(.99)), n)
	}
	return nil
}
