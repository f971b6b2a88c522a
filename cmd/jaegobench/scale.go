package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	snapload "github.com/jaego/jaego/internal/inventory/load"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
)

// benchScale measures jaego at the size of the retailer it is built for (issue 15):
//
//   - a snapshot of rows store × SKU rows (10,000 SKUs a store) loaded with jaego load's code,
//     rows/s against redis-benchmark -P 32 HSET rows/s in the same run (the ceiling of
//     writing a row at all);
//   - Redis bytes per stock row (used_memory after the load, less the change streams it
//     wrote, over rows), per load row with its change, and per POS event (mark + change);
//   - single-SKU and 1,000-SKU lookups at that size against the same at 10,000 rows, in
//     interleaved rounds (the machine drifts), p50 and p99;
//   - for each G of groups: events/s through the apply path and the busy hour of a POS day
//     read from the feed, against G = the first of groups.
const scaleSKUs = 10_000 // SKUs a store in the scale benchmark

func benchScale(ctx context.Context, out io.Writer, rows, events, feedTx, rounds int, groups []int) error {
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bigCSV, smallCSV := filepath.Join(dir, "big.csv"), filepath.Join(dir, "small.csv")
	if err := writeSnapshot(bigCSV, rows, scaleSKUs); err != nil {
		return err
	}
	if err := writeSnapshot(smallCSV, 10_000, scaleSKUs); err != nil {
		return err
	}

	big, bigSrv, stopBig, err := privateRedis()
	if err != nil {
		return err
	}
	defer stopBig()
	small, _, stopSmall, err := privateRedis()
	if err != nil {
		return err
	}
	defer stopSmall()

	ceiling, err := redisBenchmarkHSET(ctx, bigSrv.Addr, 2_000_000)
	if err != nil {
		return err
	}
	if err := big.Do(ctx, big.B().Flushall().Build()).Error(); err != nil {
		return err
	}
	bigStore := invredis.New(big, invredis.Options{})
	smallStore := invredis.New(small, invredis.Options{})
	if err := loadAndWeigh(ctx, out, big, bigStore, smallStore, bigCSV, smallCSV, rows, events, ceiling); err != nil {
		return err
	}
	if err := sizeLookups(ctx, out, smallStore, bigStore, rows, rounds); err != nil {
		return err
	}
	if err := httpLookups(ctx, out, [2]*invredis.Store{smallStore, bigStore}, [2]int{10_000, rows}, scaleSKUs, rounds); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return benchGroups(ctx, out, groups, feedTx, rounds)
}

// loadAndWeigh loads both snapshots (the big one timed against ceiling, redis-benchmark's
// HSET rows/s) and reports Redis bytes per row, per loaded row with its change, and per POS
// event.
func loadAndWeigh(ctx context.Context, out io.Writer, big rueidis.Client, bigStore, smallStore *invredis.Store, bigCSV, smallCSV string, rows, events int, ceiling float64) error {
	base, err := usedMemory(ctx, big)
	if err != nil {
		return err
	}
	took, err := loadFile(ctx, bigStore, bigCSV)
	if err != nil {
		return err
	}
	if _, err := loadFile(ctx, smallStore, smallCSV); err != nil {
		return err
	}
	loaded, err := usedMemory(ctx, big)
	if err != nil {
		return err
	}
	if err := dropStreams(ctx, big, bigStore); err != nil {
		return err
	}
	stock, err := usedMemory(ctx, big)
	if err != nil {
		return err
	}
	rate := float64(rows) / took.Seconds()
	fmt.Fprintf(out, "| %d rows (%d stores × %d SKUs), G = 16 | value | ratio to baseline |\n|---|---:|---:|\n", rows, rows/scaleSKUs, scaleSKUs)
	fmt.Fprintf(out, "| redis-benchmark -P 32 -c 50 HSET, rows/s (baseline) | %.0f | 1.00 |\n", ceiling)
	fmt.Fprintf(out, "| jaego load, rows/s (checked, one set change per row) | %.0f | %.2f |\n", rate, rate/ceiling)
	fmt.Fprintf(out, "| jaego load, whole file | %s | |\n", took.Round(time.Second))
	fmt.Fprintf(out, "| Redis bytes per stock row (the store hashes) | %.1f | |\n", float64(stock-base)/float64(rows))
	fmt.Fprintf(out, "| Redis bytes per loaded row with its set change (until the stream expires) | %.1f | |\n", float64(loaded-base)/float64(rows))

	before, err := usedMemory(ctx, big)
	if err != nil {
		return err
	}
	if err := sellRandom(ctx, bigStore, rows, scaleSKUs, events, 1); err != nil {
		return err
	}
	after, err := usedMemory(ctx, big)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| Redis bytes per POS event (mark + change), %d sales | %.1f | |\n\n", events, float64(after-before)/float64(events))

	return nil
}

// sizeLookups times the same lookups at 10,000 rows and at rows, interleaved (the machine
// drifts), p50 and p99.
func sizeLookups(ctx context.Context, out io.Writer, smallStore, bigStore *invredis.Store, rows, rounds int) error {
	// Lookups: the same reads at both sizes, interleaved.
	type sizes struct{ single, bulk [2]latencies }
	var l sizes
	for range rounds {
		for i, st := range []struct {
			s    *invredis.Store
			rows int
		}{{smallStore, 10_000}, {bigStore, rows}} {
			one, many, err := timeLookups(ctx, st.s, st.rows, scaleSKUs)
			if err != nil {
				return err
			}
			l.single[i], l.bulk[i] = append(l.single[i], one...), append(l.bulk[i], many...)
		}
	}
	fmt.Fprintf(out, "| lookup, %d rounds | p50 at 10k rows | p50 at %d | ratio | p99 at 10k rows | p99 at %d | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n", rounds, rows, rows)
	for _, r := range []struct {
		name string
		l    [2]latencies
	}{{"single SKU (HGET), 16 goroutines", l.single}, {"1,000 SKUs of a store (one HMGET), 4 goroutines", l.bulk}} {
		p50s, p50b, p99s, p99b := r.l[0].pct(.5), r.l[1].pct(.5), r.l[0].pct(.99), r.l[1].pct(.99)
		fmt.Fprintf(out, "| %s | %s | %s | %.2f | %s | %s | %.2f |\n", r.name, ms(p50s), ms(p50b), float64(p50b)/float64(p50s), ms(p99s), ms(p99b), float64(p99b)/float64(p99s))
	}
	return nil
}

// writeSnapshot writes a CSV of rows store × SKU rows, skus a store, EAN-like SKUs.
func writeSnapshot(path string, rows, skus int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(15, 15))
	fmt.Fprintln(w, "store,sku,on_hand,safety")
	for i := range rows {
		fmt.Fprintf(w, "S%04d,880%010d,%d,%d\n", i/skus, i%skus, r.IntN(60), r.IntN(3))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadFile checks and loads a snapshot as jaego load does.
func loadFile(ctx context.Context, store *invredis.Store, path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	sum, err := snapload.Check(f, func(e snapload.LineError) {})
	if err != nil || sum.Bad > 0 {
		return 0, fmt.Errorf("check %s: %v, %d bad lines", path, err, sum.Bad)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	rep, err := snapload.Run(ctx, store, sum.ID, f, snapload.Options{})
	if err != nil {
		return 0, err
	}
	if rep.Applied != sum.Rows {
		return 0, fmt.Errorf("load %s: %+v of %d rows", path, rep, sum.Rows)
	}
	return time.Since(start), nil
}

var usedRE = regexp.MustCompile(`(?m)^used_memory:(\d+)`)

func usedMemory(ctx context.Context, c rueidis.Client) (int64, error) {
	info, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return 0, err
	}
	m := usedRE.FindStringSubmatch(info)
	if m == nil {
		return 0, fmt.Errorf("no used_memory in INFO memory")
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// dropStreams deletes the change streams and load marks, leaving the stock hashes.
func dropStreams(ctx context.Context, c rueidis.Client, s *invredis.Store) error {
	for g := range s.Keys().Groups() {
		for _, k := range []string{s.Keys().StreamOn(g, time.Now()), s.Keys().LastChange(g)} {
			if err := c.Do(ctx, c.B().Del().Key(k).Build()).Error(); err != nil {
				return err
			}
		}
	}
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match("jg:load:*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return err
		}
		for _, k := range e.Elements {
			if err := c.Do(ctx, c.B().Del().Key(k).Build()).Error(); err != nil {
				return err
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}

// sellRandom applies n sales with new ids on random rows: 256 events an Apply, 4 goroutines.
func sellRandom(ctx context.Context, s *invredis.Store, rows, skus, n int, seed uint64) error {
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	per := n / 4
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for done := 0; done < per; done += 256 {
				batch := make([]inventory.Event, min(256, per-done))
				for i := range batch {
					row := r.IntN(rows)
					store := fmt.Sprintf("S%04d", row/skus)
					// An id as long as a real till's (internal/pos): pos-<store>-<day>-<txn>-<line>.
					batch[i] = inventory.Event{EventID: fmt.Sprintf("pos-%s-2026%04d-%07d-%d", store, seed, done+i, w+1), Type: inventory.Sale,
						Store: store, SKU: fmt.Sprintf("880%010d", row%skus), Qty: 1}
				}
				res, err := s.Apply(ctx, batch)
				if err == nil {
					for _, x := range res {
						if x.Status != inventory.Applied {
							err = fmt.Errorf("sale %s: %s %v", x.EventID, x.Status, x.Err)
							break
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// timeLookups times single-SKU reads (16 goroutines × 500) and 1,000-SKU store reads
// (4 goroutines × 25) of random rows among rows.
func timeLookups(ctx context.Context, s *invredis.Store, rows, skus int) (single, bulk latencies, err error) {
	var mu sync.Mutex
	var first error
	run := func(workers, each int, read func(r *rand.Rand) error, into *latencies) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), uint64(rows)))
				var mine latencies
				for range each {
					start := time.Now()
					if err := read(r); err != nil {
						mu.Lock()
						first = err
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				*into = append(*into, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	run(16, 500, func(r *rand.Rand) error {
		row := r.IntN(rows)
		_, err := s.Get(ctx, fmt.Sprintf("S%04d", row/skus), fmt.Sprintf("880%010d", row%skus))
		return err
	}, &single)
	run(4, 25, func(r *rand.Rand) error {
		store := r.IntN(rows / skus)
		keys := make([]inventory.Key, 1000)
		for i := range keys {
			keys[i] = inventory.Key{Store: fmt.Sprintf("S%04d", store), SKU: fmt.Sprintf("880%010d", r.IntN(skus))}
		}
		got, err := s.GetMany(ctx, keys)
		if err == nil && !got[0].Found {
			err = fmt.Errorf("%v not found", keys[0])
		}
		return err
	}, &bulk)
	return single, bulk, first
}

// benchGroups compares shard-group counts: apply events/s (256 events of random stores an
// Apply) and the busy hour of a filled POS day read with the paged feed, medians of rounds.
func benchGroups(ctx context.Context, out io.Writer, groups []int, transactions, rounds int) error {
	fmt.Fprintf(out, "| G | apply events/s | ratio | feed busy hour entries/s | ratio | Redis calls of the busy hour | busiest master's groups ÷ fair share, 3 / 6 / 12 masters |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	var baseApply, baseFeed float64
	for i, g := range groups {
		client, _, stop, err := privateRedis()
		if err != nil {
			return err
		}
		store := invredis.New(client, invredis.Options{Groups: g})
		var applyRates, feedRates []float64
		var calls float64
		day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
		_, perHour, err := fillDay(ctx, client, store, day, transactions)
		if err != nil {
			stop()
			return err
		}
		busy := 0
		for h := range perHour {
			if perHour[h] > perHour[busy] {
				busy = h
			}
		}
		from := day.Add(time.Duration(busy) * time.Hour)
		reader := pagesReader(ctx, store, "paged", invredis.FeedOptions{}, from, from.Add(time.Hour))
		for r := range rounds {
			start := time.Now()
			if err := sellRandom(ctx, store, 2_000_000, 10_000, 100_000, uint64(100+r)); err != nil {
				stop()
				return err
			}
			applyRates = append(applyRates, 100_000/time.Since(start).Seconds())
			start = time.Now()
			n, c, err := reader.read()
			if err != nil {
				stop()
				return err
			}
			feedRates = append(feedRates, float64(n)/time.Since(start).Seconds())
			calls = c
		}
		stop()
		a, f := median(applyRates), median(feedRates)
		if i == 0 {
			baseApply, baseFeed = a, f
		}
		fmt.Fprintf(out, "| %d | %.0f | %.2f | %.0f | %.2f | %.0f | %.2f / %.2f / %.2f |\n", g, a, a/baseApply, f, f/baseFeed, calls,
			skew(store, 3), skew(store, 6), skew(store, 12))
	}
	return nil
}

// redisBenchmarkHSET is the ceiling of writing rows: redis-benchmark pipelining HSETs of a
// packed record into store hashes (1,000 stores × 10,000 SKUs of random numbers).
func redisBenchmarkHSET(ctx context.Context, addr string, n int) (float64, error) {
	host, port, _ := strings.Cut(addr, ":")
	outb, err := exec.CommandContext(ctx, "redis-benchmark", "-h", host, "-p", port, "-n", strconv.Itoa(n), "-c", "50", "-P", "32",
		"-r", "10000", "-q", "HSET", "bench:stk:__rand_int__", "880__rand_int__", "12:0:1:1:1764000000000").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %v\n%s", err, outb)
	}
	m := rpsRE.FindAllStringSubmatch(string(outb), -1)
	if m == nil {
		return 0, fmt.Errorf("redis-benchmark printed no rate:\n%s", outb)
	}
	return strconv.ParseFloat(m[len(m)-1][1], 64)
}

// skew is how unevenly the store's shard groups fall on masters masters that split the
// 16,384 slots evenly (as redis-cli --cluster create does): the busiest master's groups
// over G/masters.
func skew(s *invredis.Store, masters int) float64 {
	per := make([]int, masters)
	for g := range s.Keys().Groups() {
		per[min(masters-1, clusterSlot(strconv.Itoa(g))*masters/16384)]++
	}
	busiest := 0
	for _, n := range per {
		busiest = max(busiest, n)
	}
	return float64(busiest) / (float64(s.Keys().Groups()) / float64(masters))
}

// clusterSlot is Redis Cluster's slot of a hash tag: CRC16-XMODEM mod 16384.
func clusterSlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// httpLookups is the same comparison through jaego's HTTP API (what the online shop sees):
// closed-loop clients for 4 s a phase, sizes alternating, rounds times.
func httpLookups(ctx context.Context, out io.Writer, stores [2]*invredis.Store, rows [2]int, skus, rounds int) error {
	var bases [2]string
	for i, s := range stores {
		mux := http.NewServeMux()
		invhttp.New(s, invhttp.Options{}).Register(mux)
		l, err := listen(httpx.Instrument(mux, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			return err
		}
		defer l.Close()
		bases[i] = "http://" + l.Addr().String()
	}
	single := func(i int) func(*rand.Rand) *http.Request {
		return get(func(r *rand.Rand) string {
			row := r.IntN(rows[i])
			return fmt.Sprintf("%s/v1/stores/S%04d/skus/880%010d", bases[i], row/skus, row%skus)
		})
	}
	bulk := func(i int) func(*rand.Rand) *http.Request {
		return get(func(r *rand.Rand) string {
			var b strings.Builder
			fmt.Fprintf(&b, "%s/v1/stores/S%04d/stock?sku=", bases[i], r.IntN(rows[i]/skus))
			for k := range 1000 {
				if k > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "880%010d", r.IntN(skus))
			}
			return b.String()
		})
	}
	var res [2][2][]loadResult // [kind][size]
	for range rounds {
		for i := range 2 {
			s, err := load(ctx, single(i), 16, 4*time.Second)
			if err != nil {
				return err
			}
			b, err := load(ctx, bulk(i), 4, 4*time.Second)
			if err != nil {
				return err
			}
			res[0][i], res[1][i] = append(res[0][i], s), append(res[1][i], b)
		}
	}
	for k, name := range []string{"HTTP GET /v1/stores/{store}/skus/{sku}, 16 connections", "HTTP GET /v1/stores/{store}/stock, 1,000 SKUs, 4 connections"} {
		s, b := merge(res[k][0]), merge(res[k][1])
		p50s, p50b, p99s, p99b := s.lat.pct(.5), b.lat.pct(.5), s.lat.pct(.99), b.lat.pct(.99)
		fmt.Fprintf(out, "| %s | %s | %s | %.2f | %s | %s | %.2f |\n", name, ms(p50s), ms(p50b), float64(p50b)/float64(p50s), ms(p99s), ms(p99b), float64(p99b)/float64(p99s))
	}
	return nil
}
