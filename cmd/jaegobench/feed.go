package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/pos"
)

// benchFeed fills yesterday's change streams (16 shard groups) with a POS day of change
// entries and reads the whole day and the busiest hour with: a raw paged XRANGE loop (the
// ceiling: no merge, no cursor), the windows strategy at the given windows, and the paged
// strategy, as pages and streamed; then streams the whole day as NDJSON through the HTTP
// handler and samples the heap. The readers run in rounds, each round measuring the ceiling
// again, and the report gives medians: the machine's pace drifts by a third between runs.
func benchFeed(ctx context.Context, out io.Writer, transactions, rounds int, windows []time.Duration) error {
	client, _, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	const groups = 16
	store := invredis.New(client, invredis.Options{Groups: groups})
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	n, perHour, err := fillDay(ctx, client, store, day, transactions)
	if err != nil {
		return err
	}
	busy := 0
	for h := range perHour {
		if perHour[h] > perHour[busy] {
			busy = h
		}
	}
	fmt.Fprintf(out, "%d change entries on %s in %d shard groups; busiest hour %02d:00 with %d; %d rounds, medians\n\n", n, day.Format("2006-01-02"), groups, busy, perHour[busy], rounds)
	ranges := []struct {
		name     string
		from, to time.Time
	}{
		{"whole day", day, day.Add(24 * time.Hour)},
		{fmt.Sprintf("busy hour %02d-%02dh", busy, busy+1), day.Add(time.Duration(busy) * time.Hour), day.Add(time.Duration(busy+1) * time.Hour)},
	}
	fmt.Fprintf(out, "| range | reader | entries | entries/s | ratio to ceiling (min–max) | Redis calls | calls ratio | Redis CPU | jaego CPU | stolen |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range ranges {
		readers, notRun := rangeReaders(ctx, client, store, groups, windows, r.from, r.to)
		if err := readRounds(client, readers, rounds); err != nil {
			return err
		}
		for _, rd := range readers {
			slices.Sort(rd.ratios)
			fmt.Fprintf(out, "| %s | %s | %d | %.0f | %.2f (%.2f–%.2f) | %.0f | %.1f | %.2f | %.2f | %.2f |\n", r.name, rd.name, rd.entries, median(rd.rates),
				median(rd.ratios), rd.ratios[0], rd.ratios[len(rd.ratios)-1], rd.calls, rd.calls/readers[0].calls, median(rd.redisBusy), median(rd.goCPU), median(rd.stolen))
			if goal, ok := feedGoals[rd.name]; ok {
				measured(out, goalRow{Path: "change feed, " + r.name + ", " + rd.name, Baseline: "raw XRANGE COUNT loop", Value: median(rd.ratios),
					Min: rd.ratios[0], Max: rd.ratios[len(rd.ratios)-1], AtLeast: true, Goal: goal})
			}
		}
		for _, sk := range notRun {
			fmt.Fprintf(out, "| %s | %s | — | not run | — | ≥ %d | ≥ %.0f | | | |\n", r.name, sk.name, sk.calls, float64(sk.calls)/readers[0].calls)
		}
	}
	return ndjsonMemory(ctx, out, store, ranges[0].from, ranges[0].to)
}

// feedGoals are the readers' goals against the ceiling (issue 27).
var feedGoals = map[string]float64{"paged, pages of 10000": 0.9, "paged, streamed (NDJSON)": 0.95}

// skippedReader is a reader too slow to run: the Redis calls it would make.
type skippedReader struct {
	name  string
	calls int64
}

// rangeReaders are the readers of [from, to): the raw XRANGE ceiling first, the windows
// strategy at each window (those past 20M calls skipped), the paged reader and the stream.
func rangeReaders(ctx context.Context, client rueidis.Client, store *invredis.Store, groups int, windows []time.Duration, from, to time.Time) ([]*feedReader, []skippedReader) {
	readers := []*feedReader{{name: "raw XRANGE COUNT 10000 loop (ceiling)", read: func() (int, float64, error) {
		calls, entries, err := rawXrange(ctx, client, store, groups, from, to)
		return entries, float64(calls), err
	}}}
	var notRun []skippedReader
	for _, w := range windows {
		// The windows strategy issues one XRANGE per window per stream, whatever the window
		// holds (the groups × the days of the range ± 10 min of clock skew).
		days := int(to.Add(10*time.Minute).Sub(from.Add(-10*time.Minute).Truncate(24*time.Hour)).Hours()/24) + 1
		name := "windows " + w.String() + " (original design, entries counted only)"
		if calls := int64(to.Sub(from)/w) * int64(groups*days); calls > 20_000_000 {
			notRun = append(notRun, skippedReader{name, calls})
			continue
		}
		readers = append(readers, windowsReader(ctx, client, store, name, w, from, to))
	}
	return append(readers,
		pagesReader(ctx, store, "paged, pages of 10000, each read afresh", invredis.FeedOptions{Continuations: -1}, from, to),
		pagesReader(ctx, store, "paged, pages of 10000", invredis.FeedOptions{}, from, to),
		streamReader(ctx, store, "paged, streamed (NDJSON)", from, to)), notRun
}

// readRounds runs every reader rounds times, in an order rotated by one each round (so no
// reader always follows the same one), each starting on a collected heap, and records each
// one's rate and ratio to that round's ceiling (readers[0]); every reader must read as many
// entries as the ceiling.
func readRounds(client rueidis.Client, readers []*feedReader, rounds int) error {
	for round := range rounds {
		rates := make([]float64, len(readers))
		for k := range readers {
			i := (round + k) % len(readers)
			rd := readers[i]
			runtime.GC()
			cpu := cpuNow(client)
			start := time.Now()
			entries, calls, err := rd.read()
			if err != nil {
				return fmt.Errorf("%s: %w", rd.name, err)
			}
			wall := time.Since(start).Seconds()
			used := cpuNow(client).minus(cpu)
			rates[i] = float64(entries) / wall
			rd.entries, rd.calls = entries, calls
			rd.redisBusy = append(rd.redisBusy, used.redis/wall)
			rd.goCPU = append(rd.goCPU, used.process/wall)
			rd.stolen = append(rd.stolen, used.stolen/wall)
		}
		for _, rd := range readers[1:] {
			if rd.entries != readers[0].entries {
				return fmt.Errorf("%s read %d entries, the ceiling %d", rd.name, rd.entries, readers[0].entries)
			}
		}
		for i, rd := range readers {
			rd.rates = append(rd.rates, rates[i])
			rd.ratios = append(rd.ratios, rates[i]/rates[0])
		}
	}
	return nil
}

// feedReader is one reader of a feed benchmark and what its rounds measured.
type feedReader struct {
	name          string
	read          func() (entries int, calls float64, err error)
	entries       int
	calls         float64
	rates, ratios []float64
	// What the two cores did while it read: Redis's CPU and this process's, per wall second.
	// stolen is what the hypervisor took for other guests: the machine's noise.
	redisBusy, goCPU, stolen []float64
}

// pagesReader reads the range with Feed.Read, pages of 10,000, cursor to cursor.
func pagesReader(ctx context.Context, store *invredis.Store, name string, opts invredis.FeedOptions, from, to time.Time) *feedReader {
	return &feedReader{name: name, read: func() (int, float64, error) {
		reg := prometheus.NewRegistry()
		opts.Registerer = reg
		feed := invredis.NewFeed(store, opts)
		got := 0
		for cur := invredis.NewCursor(from, to); cur != nil; {
			page, err := feed.Read(ctx, cur, 10000)
			if err != nil {
				return 0, 0, err
			}
			got += len(page.Changes)
			cur = page.Next
		}
		return got, metricSum(reg, "jaego_changes_redis_calls_total"), nil
	}}
}

// streamReader reads the range with Feed.Stream, the read behind NDJSON.
func streamReader(ctx context.Context, store *invredis.Store, name string, from, to time.Time) *feedReader {
	return &feedReader{name: name, read: func() (int, float64, error) {
		reg := prometheus.NewRegistry()
		feed := invredis.NewFeed(store, invredis.FeedOptions{Registerer: reg})
		got := 0
		_, err := feed.Stream(ctx, invredis.NewCursor(from, to), func(b []inventory.Change) error { got += len(b); return nil })
		return got, metricSum(reg, "jaego_changes_redis_calls_total"), err
	}}
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// fillDay writes change entries shaped like a POS day straight into the day streams (the
// apply script stamps entries with the current time; a read benchmark needs a past day).
func fillDay(ctx context.Context, client rueidis.Client, store *invredis.Store, day time.Time, transactions int) (int, [24]int, error) {
	var perHour [24]int
	n := 0
	var cmds rueidis.Commands
	flush := func() error {
		for _, r := range client.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		cmds = cmds[:0]
		return nil
	}
	lastID := map[int][2]int64{}
	for tx := range pos.Day(pos.DayOptions{Transactions: transactions, Date: day, Seed: 21}) {
		for _, e := range tx.Events() {
			g := store.Keys().Group(e.Store)
			ms := tx.At.UnixMilli()
			last := lastID[g]
			seq := int64(0)
			if ms <= last[0] {
				ms, seq = last[0], last[1]+1
			}
			lastID[g] = [2]int64{ms, seq}
			id := strconv.FormatInt(ms, 10) + "-" + strconv.FormatInt(seq, 10)
			fv := client.B().Xadd().Key(store.Keys().StreamOn(g, day)).Id(id).FieldValue()
			fields := invredis.EncodeChange(inventory.Change{Store: e.Store, SKU: e.SKU, Type: e.Type, Delta: -e.Qty,
				OnHand: 10, Version: int64(n + 1), EventID: e.EventID, At: time.UnixMilli(ms)})
			for i := 0; i < len(fields); i += 2 {
				fv = fv.FieldValue(fields[i], fields[i+1])
			}
			cmds = append(cmds, fv.Build())
			perHour[time.UnixMilli(ms).UTC().Hour()]++
			n++
			if len(cmds) == 5000 {
				if err := flush(); err != nil {
					return 0, perHour, err
				}
			}
		}
	}
	return n, perHour, flush()
}

// rawXrange reads every group's stream of the range with XRANGE … COUNT 10000, groups in
// parallel, and counts the entries of each reply as rueidis parsed it: the fastest a reader
// can go (it does not even decode the entries, which rueidis's AsXRange would do into a map
// each).
func rawXrange(ctx context.Context, client rueidis.Client, store *invredis.Store, groups int, from, to time.Time) (int64, int, error) {
	var calls, entries atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for g := 0; g < groups; g++ {
		wg.Go(func() {
			key := store.Keys().StreamOn(g, from)
			lo, hi := strconv.FormatInt(from.UnixMilli(), 10), strconv.FormatInt(to.UnixMilli()-1, 10)
			for {
				calls.Add(1)
				page, err := client.Do(ctx, client.B().Xrange().Key(key).Start(lo).End(hi).Count(10000).Build()).ToArray()
				if err == nil && len(page) > 0 {
					var last []rueidis.RedisMessage
					if last, err = page[len(page)-1].ToArray(); err == nil {
						lo, err = last[0].ToString()
						lo = "(" + lo
					}
				}
				if err != nil && !rueidis.IsRedisNil(err) {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				entries.Add(int64(len(page)))
				if len(page) < 10000 {
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	return calls.Load(), int(entries.Load()), nil
}

// ndjsonMemory streams the range through GET /v1/changes with Accept: application/x-ndjson
// and samples the heap while it runs.
func ndjsonMemory(ctx context.Context, out io.Writer, store *invredis.Store, from, to time.Time) error {
	feed := invredis.NewFeed(store, invredis.FeedOptions{})
	mux := http.NewServeMux()
	invhttp.New(store, invhttp.Options{Feed: feed, Snapshots: store}).Register(mux)
	srv := httptest.NewServer(httpx.Instrument(mux, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/changes?from=%d&to=%d", srv.URL, from.UnixMilli(), to.UnixMilli()), nil)
	req.Header.Set("Accept", "application/x-ndjson")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		close(done)
		return err
	}
	nbytes, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(done)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n| NDJSON stream of the whole day | value |\n|---|---:|\n")
	fmt.Fprintf(out, "| bytes streamed | %.1f MiB |\n| seconds | %.2f |\n| heap in use before | %.1f MiB |\n| peak heap in use while streaming (server and client in one process) | %.1f MiB |\n",
		float64(nbytes)/(1<<20), time.Since(start).Seconds(), float64(baseHeap)/(1<<20), float64(peak.Load())/(1<<20))
	return nil
}

// windowsReader is the original design's read, kept here as a baseline only (production
// reads pages, see docs/architecture.md): the range in fixed windows, 8 windows at a time in
// one pipeline, each window of each (group, day) stream read with XRANGE … COUNT 2000 until
// whole. It counts the entries without decoding or merging them, so it is measured a little
// faster than it would serve.
func windowsReader(ctx context.Context, client rueidis.Client, store *invredis.Store, name string, window time.Duration, from, to time.Time) *feedReader {
	const parallel, count = 8, 2000
	var keys []string
	for d := from.Add(-10 * time.Minute).UTC().Truncate(24 * time.Hour); !d.After(to.Add(10 * time.Minute)); d = d.Add(24 * time.Hour) {
		for g := range store.Keys().Groups() {
			keys = append(keys, store.Keys().StreamOn(g, d))
		}
	}
	type part struct{ key, start, end string }
	return &feedReader{name: name, read: func() (int, float64, error) {
		entries, calls := 0, 0
		w := window.Milliseconds()
		for ws := from.UnixMilli(); ws < to.UnixMilli(); ws += parallel * w {
			var pending []part
			for lo := ws; lo < min(ws+parallel*w, to.UnixMilli()); lo += w {
				hi := strconv.FormatInt(min(lo+w, to.UnixMilli())-1, 10)
				for _, k := range keys {
					pending = append(pending, part{k, strconv.FormatInt(lo, 10), hi})
				}
			}
			for len(pending) > 0 {
				cmds := make(rueidis.Commands, len(pending))
				for i, p := range pending {
					cmds[i] = client.B().Xrange().Key(p.key).Start(p.start).End(p.end).Count(count).Build()
				}
				calls += len(cmds)
				var more []part
				for i, res := range client.DoMulti(ctx, cmds...) {
					page, err := res.ToArray()
					if err != nil && !rueidis.IsRedisNil(err) {
						return 0, 0, err
					}
					entries += len(page)
					if len(page) == count {
						last, _ := page[len(page)-1].ToArray()
						id, _ := last[0].ToString()
						more = append(more, part{pending[i].key, "(" + id, pending[i].end})
					}
				}
				pending = more
			}
		}
		return entries, float64(calls), nil
	}}
}
