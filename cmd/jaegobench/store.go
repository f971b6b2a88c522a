package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
)

// benchStore measures events applied per second through the Redis store.
//
// Baseline: redis-benchmark sending EVALSHA of the very same apply script with -P 32 (32
// commands pipelined per connection, 50 connections), one receipt per call on a random SKU —
// the ceiling of the script on this Redis without any Go in the way. Then the store:
//   - single: 64 goroutines each call Apply with one event (rueidis auto-pipelines them);
//   - pipelined: Apply with 256 events over many stores, each event its own script call
//     (MaxBatch 1), calls pipelined;
//   - batched: the same 256-event Applys with MaxBatch 64: one script call per shard group.
func benchStore(ctx context.Context, out io.Writer, n, rounds int) error {
	client, srv, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	type mode struct {
		name     string
		maxBatch int
		perCall  int
		workers  int
	}
	modes := []mode{
		{"store, 1 event per Apply, 64 goroutines", 1, 1, 64},
		{"store, 256 events per Apply, 1 script call per event (MaxBatch 1), 4 goroutines", 1, 256, 4},
		// As the Kafka consumer applies (one poll's chunk at a time): what the store gives
		// the pipeline, without the broker and the decoding.
		{"store, 1,000 events per Apply, batched (MaxBatch 64), 1 goroutine", 64, 1000, 1},
		{"store, 256 events per Apply, batched by shard group (MaxBatch 64), 4 goroutines", 64, 256, 4},
	}
	// Every round measures the baseline and every mode again, the order rotating, so that
	// the machine's drift falls on all; the goal's ratio is the median of the rounds'.
	base := make([]float64, rounds)
	rates := make([][]float64, len(modes))
	// What each phase cost the machine, per event: Redis (INFO cpu), this process, the rest
	// (redis-benchmark in the baseline), summed over rounds.
	used := make([]cpuTimes, len(modes)+1)
	for round := range rounds {
		phases := len(modes) + 1
		for i := range phases {
			p := (i + round) % phases
			if err := client.Do(ctx, client.B().Flushall().Build()).Error(); err != nil {
				return err
			}
			before := cpuNow(client)
			if p == len(modes) {
				if base[round], err = redisBenchmarkScript(ctx, client, srv.Addr, n); err != nil {
					return err
				}
			} else {
				m := modes[p]
				rate, err := applyRate(ctx, invredis.New(client, invredis.Options{MaxBatch: m.maxBatch}), n, m.perCall, m.workers)
				if err != nil {
					return err
				}
				rates[p] = append(rates[p], rate)
			}
			used[p] = used[p].plus(cpuNow(client).minus(before))
		}
	}
	fmt.Fprintf(out, "| apply path (%d events each, %d rounds) | events/s (mean) | ratio to baseline, median of rounds (min–max) |\n|---|---:|---:|\n", n, rounds)
	fmt.Fprintf(out, "| redis-benchmark EVALSHA -P 32 -c 50 (baseline) | %.0f | 1.00 |\n", mean(base))
	var ratios []float64
	for mi, m := range modes {
		ratios = ratios[:0]
		for r := range rounds {
			ratios = append(ratios, rates[mi][r]/base[r])
		}
		lo, hi := minMax(ratios)
		med := median(ratios)
		fmt.Fprintf(out, "| %s | %.0f | %.2f (%.2f–%.2f) |\n", m.name, mean(rates[mi]), med, lo, hi)
		if mi == len(modes)-1 {
			measured(out, goalRow{Path: "event apply, batched by group", Baseline: "redis-benchmark EVALSHA -P 32", Value: med, Min: lo, Max: hi, AtLeast: true, Goal: 1.5})
		}
	}
	// Redis runs scripts on one thread: where it is the limit, the rate is the inverse of
	// its µs an event, and the ratio of two phases the ratio of those.
	fmt.Fprintf(out, "\n| CPU an event (µs, %d rounds) | Redis | of it in EVALSHA | this process | others (redis-benchmark, kernel) | stolen |\n|---|---:|---:|---:|---:|---:|\n", rounds)
	names := []string{"redis-benchmark EVALSHA -P 32 -c 50 (baseline)"}
	for _, m := range modes {
		names = append(names, m.name)
	}
	for i, name := range names {
		writeScriptCost(out, name, used[(i+len(modes))%(len(modes)+1)].each(n*rounds))
	}
	return nil
}

// applyRate applies n receipts on 2,000 stores × 500 SKUs and returns events/s.
func applyRate(ctx context.Context, store *invredis.Store, n, perCall, workers int) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			batch := make([]inventory.Event, 0, perCall)
			for {
				from := next.Add(int64(perCall)) - int64(perCall)
				if from >= int64(n) {
					return
				}
				batch = batch[:0]
				for i := from; i < min(from+int64(perCall), int64(n)); i++ {
					batch = append(batch, inventory.Event{
						EventID: "b-" + strconv.FormatInt(i, 10), Type: inventory.Receipt,
						Store: fmt.Sprintf("S%04d", (i*7919)%2000), SKU: fmt.Sprintf("880%06d", (i*104729)%500), Qty: 1,
					})
				}
				res, err := store.Apply(ctx, batch)
				if err == nil {
					for _, r := range res {
						if r.Status != inventory.Applied {
							err = fmt.Errorf("event %s: %s %v", r.EventID, r.Status, r.Err)
							break
						}
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), firstErr
}

var rpsRE = regexp.MustCompile(`([0-9.]+) requests per second`)

// redisBenchmarkScript loads the store's apply script and runs redis-benchmark on it.
// __rand_int__ makes every call a new SKU and a new event id (-r 100M: repeats, which would
// be cheaper duplicates, are about 0.1% of calls).
func redisBenchmarkScript(ctx context.Context, client rueidis.Client, addr string, n int) (float64, error) {
	script := invredis.ApplyScript()
	sum := sha1.Sum([]byte(script))
	sha := hex.EncodeToString(sum[:])
	if got, err := client.Do(ctx, client.B().ScriptLoad().Script(script).Build()).ToString(); err != nil || got != sha {
		return 0, fmt.Errorf("script load: %v %s", err, got)
	}
	host, port, _ := strings.Cut(addr, ":")
	day := time.Now().UTC().Format("20060102")
	args := []string{"-h", host, "-p", port, "-n", strconv.Itoa(n), "-c", "50", "-P", "32", "-r", "100000000", "-q",
		"EVALSHA", sha, "9",
		"jg:chg:{3}:" + day, "jg:stores:{3}", "jg:chgid:{3}", "jg:epoch:{3}", "jg:stk:{3}:S0001",
		"jg:idem:{3}:1:0", "jg:idem:{3}:0:0", "jg:idem:{3}:-1:0", "jg:idem:{3}:2:0",
		strconv.FormatInt(time.Now().Add(14*24*time.Hour).UnixMilli(), 10), "172800", "0", "4",
		"rb-__rand_int__", "receipt", "1", "", "S0001", "__rand_int__", "", "", "rb-__rand_int__"}
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %v\n%s", err, outb)
	}
	m := rpsRE.FindAllStringSubmatch(string(outb), -1)
	if m == nil {
		return 0, fmt.Errorf("redis-benchmark printed no rate:\n%s", outb)
	}
	// Make sure the baseline really applied events (a script error would be fast and empty).
	if entries, err := client.Do(ctx, client.B().Xlen().Key("jg:chg:{3}:"+day).Build()).AsInt64(); err != nil || entries < int64(n)*9/10 {
		return 0, fmt.Errorf("redis-benchmark applied only %d of %d events (%v):\n%s", entries, n, err, outb)
	}
	return strconv.ParseFloat(m[len(m)-1][1], 64)
}
