package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
)

// benchTail measures what live-tail subscribers cost the shop: single-SKU lookups (32
// connections) with none, then with n SSE subscribers listening while rate events a second
// are applied (so that the hub delivers to every one; the subscribers read in this process,
// on the same two cores), phases alternating, twice; and the Redis connections in each case.
func benchTail(ctx context.Context, out io.Writer, n, rate int, dur time.Duration) error {
	client, _, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	store := invredis.New(client, invredis.Options{})
	base, closeServer, err := tailServer(ctx, store, n)
	if err != nil {
		return err
	}
	defer closeServer()
	lookup := get(func(r *rand.Rand) string {
		return base + "/v1/stores/S0001/skus/" + fmt.Sprintf("8809%09d", r.IntN(benchSKUs))
	})
	clients := func() (int, error) { return connectedClients(ctx, client) }
	var without, with []loadResult
	var connsWithout, connsWith int
	for range 2 {
		r, err := load(ctx, lookup, 32, dur/2)
		if err != nil {
			return err
		}
		without = append(without, r)
		if connsWithout, err = clients(); err != nil {
			return err
		}
		subCtx, closeSubs := context.WithCancel(ctx)
		done := subscribeAndWrite(subCtx, store, base, n, rate)
		r, err = load(ctx, lookup, 32, dur/2)
		if err == nil {
			with = append(with, r)
			connsWith, err = clients()
		}
		closeSubs()
		done()
		if err != nil {
			return err
		}
	}
	a, b := merge(without), merge(with)
	fmt.Fprintf(out, "| single-SKU lookup, 32 connections, 2 × %s a phase | req/s | p50 | p99 | ratio | Redis connections |\n|---|---:|---:|---:|---:|---:|\n", dur/2)
	fmt.Fprintf(out, "| no live-tail subscriber (baseline) | %.0f | %s | %s | 1.00 | %d |\n", a.rate, ms(a.lat.pct(.5)), ms(a.lat.pct(.99)), connsWithout)
	fmt.Fprintf(out, "| %d SSE subscribers, %d events/s delivered to each | %.0f | %s | %s | %.2f | %d |\n", n, rate, b.rate, ms(b.lat.pct(.5)), ms(b.lat.pct(.99)), b.rate/a.rate, connsWith)
	return nil
}

// connectedClients is the Redis server's connected_clients.
func connectedClients(ctx context.Context, client rueidis.Client) (int, error) {
	info, err := client.Do(ctx, client.B().Info().Section("clients").Build()).ToString()
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`connected_clients:(\d+)`).FindStringSubmatch(info)
	return strconv.Atoi(m[1])
}

// subscribeAndWrite opens n live-tail subscribers on base (returning once all are
// connected) and applies rate events a second, 10 at a time, until ctx ends; the function
// it returns waits for all of them to end.
func subscribeAndWrite(ctx context.Context, store *invredis.Store, base string, n, rate int) (wait func()) {
	var wg, ready sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	hc := &http.Client{Transport: tr}
	for range n {
		ready.Add(1)
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/changes/stream", nil)
			resp, err := hc.Do(req)
			// A stream refused with 503 (max streams: the last round's subscribers are still
			// counted until the hub notices they left, within its 5 s keep-alive) is asked
			// for again: a subscriber counts only once it is admitted.
			for err == nil && resp.StatusCode == http.StatusServiceUnavailable && ctx.Err() == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				time.Sleep(50 * time.Millisecond)
				resp, err = hc.Do(req)
			}
			ready.Done()
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
			}
		})
	}
	ready.Wait()
	wg.Go(func() {
		if rate == 0 {
			<-ctx.Done()
			return
		}
		tick := time.NewTicker(time.Second * 10 / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			<-tick.C
			batch := make([]inventory.Event, 10)
			for j := range batch {
				batch[j] = inventory.Event{EventID: fmt.Sprintf("tail-%d-%d-%d", time.Now().UnixNano(), i, j), Type: inventory.Receipt, Store: "S0002", SKU: "A", Qty: 1}
			}
			_, _ = store.Apply(ctx, batch)
		}
	})
	return func() {
		wg.Wait()
		tr.CloseIdleConnections()
	}
}

// tailServer serves the inventory API with a live-tail hub for n subscribers over store,
// seeded with benchSKUs records at S0001; it returns the base URL and what closes it.
func tailServer(ctx context.Context, store *invredis.Store, n int) (string, func(), error) {
	feed := invredis.NewFeed(store, invredis.FeedOptions{})
	watcher := invredis.NewWatcher(feed)
	hub := inventory.NewHub(feed, inventory.HubOptions{MaxStreams: n + 10, Changed: watcher.Changed})
	hubCtx, stopHub := context.WithCancel(ctx)
	go hub.Run(hubCtx)
	go watcher.Run(hubCtx)
	var seed []inventory.Event
	for i := range benchSKUs {
		seed = append(seed, inventory.Event{EventID: fmt.Sprintf("seed-%d", i), Type: inventory.Receipt, Store: "S0001", SKU: fmt.Sprintf("8809%09d", i), Qty: 1000})
	}
	if _, err := store.Apply(ctx, seed); err != nil {
		stopHub()
		return "", nil, err
	}
	mux := http.NewServeMux()
	invhttp.New(store, invhttp.Options{Feed: feed, Tail: hub}).Register(mux)
	l, err := listen(httpx.Instrument(mux, prometheus.NewRegistry(), quietLog))
	if err != nil {
		stopHub()
		return "", nil, err
	}
	return "http://" + l.Addr().String(), func() { l.Close(); stopHub() }, nil
}
