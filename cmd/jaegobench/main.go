// Command jaegobench measures jaego against a baseline taken in the same run, on private
// servers it starts itself, and prints markdown for docs/benchmarks.md.
//
//	go run ./cmd/jaegobench store   # events/s: one event per script call vs batched, vs redis-benchmark -P 32
//	go run ./cmd/jaegobench http    # single-SKU lookup vs a bare HGET handler; 1,000-SKU store lookup p50/p99
//	go run ./cmd/jaegobench pipeline # POS events end to end vs redis-benchmark; lag and latency at 5k/s; relay by linger
//	go run ./cmd/jaegobench feed     # change feed: a POS day read by the raw XRANGE ceiling, windows, paged
//	go run ./cmd/jaegobench lock    # hot SKU: lock + read-modify-write vs the Lua apply step; lock latency
//	go run ./cmd/jaegobench promo   # gift promotions: Redis only vs pointer + local cache vs client-side pointer
//	go run ./cmd/jaegobench scale   # 10M rows: jaego load vs redis-benchmark HSET, bytes per row and event, lookups at 10M vs 10k, G = 16/64/256
//	go run ./cmd/jaegobench orders  # baskets of 5 held vs single reserve events (items/s); availability across 100 and 1,000 stores
//	go run ./cmd/jaegobench tail    # lookups with 1,000 live-tail subscribers vs none; Redis connections
//	go run ./cmd/jaegobench sourcing # a 5-line basket over 50 stores vs availability of them; sourced holds vs direct reservations
//	go run ./cmd/jaegobench tracing  # events/s (POS pipeline) and lookups/s with tracing at 1% and 100% vs off
//	go run ./cmd/jaegobench webhooks # changes delivered/s vs the streamed feed read; delivery lag at 5k/s; lookups with 100 subscriptions vs none
//	go run ./cmd/jaegobench all      # every benchmark, then one table of every goal (path, baseline, ratio, goal, met?) and a JSON file
//	go run ./cmd/jaegobench copy    # durable copy: projector vs batched apply, lag at 5k/s, fallback vs primary reads, Redis outage
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// JAEGOBENCH_CPUPROFILE=file writes a CPU profile of the whole run (go tool pprof file).
	if path := os.Getenv("JAEGOBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "jaegobench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	err := run(ctx, os.Args[1:], os.Stdout)
	// JAEGOBENCH_MEMPROFILE=file writes what the run allocated, by where (go tool pprof
	// -sample_index=alloc_space file): what the garbage collector's share of a profile comes from.
	if path := os.Getenv("JAEGOBENCH_MEMPROFILE"); path != "" {
		if f, ferr := os.Create(path); ferr == nil {
			ferr = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
			err = cmp.Or(err, ferr)
		} else {
			err = cmp.Or(err, ferr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jaegobench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	names := strings.Join(slices.Sorted(maps.Keys(benches)), "|") + "|all"
	if len(args) == 0 {
		return fmt.Errorf("usage: jaegobench %s [flags]", names)
	}
	flags, ok := benches[args[0]]
	if !ok && args[0] != "all" {
		return fmt.Errorf("unknown benchmark %q: usage: jaegobench %s [flags]", args[0], names)
	}
	if args[0] == "all" {
		flags = allFlags
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	bench := flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	rp := &report{Writer: out, bench: args[0]}
	if err := bench(ctx, rp); err != nil {
		return err
	}
	writeSummary(out, rp.rows) // a benchmark run alone: its goals
	return nil
}

// benches are the benchmarks by name: each reads its flags and returns what runs it.
var benches = map[string]func(*flag.FlagSet) func(context.Context, io.Writer) error{
	"store":    storeFlags,
	"scale":    scaleFlags,
	"orders":   ordersFlags,
	"tail":     tailFlags,
	"http":     httpFlags,
	"pipeline": pipelineFlags,
	"feed":     feedFlags,
	"lock":     lockFlags,
	"promo":    promoFlags,
	"restore":  restoreFlags,
	"copy":     copyFlags,
	"sourcing": sourcingFlags,
	"tracing":  tracingFlags,
	"webhooks": webhooksFlags,
}

// storeFlags reads the flags of `jaegobench store`.
func storeFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	events := fs.Int("events", 200_000, "events per measurement")
	rounds := fs.Int("rounds", 3, "rounds of the baseline and every mode, the order rotating")
	return func(ctx context.Context, out io.Writer) error {
		if *rounds < 1 {
			return fmt.Errorf("-rounds must be at least 1")
		}
		return benchStore(ctx, out, *events, *rounds)
	}
}

// scaleFlags reads the flags of `jaegobench scale`.
func scaleFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	rows := fs.Int("rows", 10_000_000, "store × SKU rows of the snapshot (10,000 SKUs a store)")
	events := fs.Int("events", 1_000_000, "POS events applied to measure bytes per event")
	tx := fs.Int("transactions", 300_000, "POS transactions of the day read in the shard-group comparison")
	rounds := fs.Int("rounds", 3, "rounds of the lookup and shard-group measurements")
	groups := fs.String("groups", "16,64,256,512", "shard-group counts G compared (the first is the baseline)")
	return func(ctx context.Context, out io.Writer) error {
		var gs []int
		for _, g := range strings.Split(*groups, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(g))
			if err != nil || n < 1 {
				return fmt.Errorf("--groups: %q is not a positive integer", g)
			}
			gs = append(gs, n)
		}
		return benchScale(ctx, out, *rows, *events, *tx, *rounds, gs)
	}
}

// ordersFlags reads the flags of `jaegobench orders`.
func ordersFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	dur := fs.Duration("duration", 5*time.Second, "duration of each phase")
	workers := fs.Int("workers", 32, "goroutines holding baskets / sending reserve events")
	return func(ctx context.Context, out io.Writer) error {
		return benchOrders(ctx, out, *dur, *workers)
	}
}

// tailFlags reads the flags of `jaegobench tail`.
func tailFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	n := fs.Int("subscribers", 1000, "live-tail (SSE) subscribers")
	rate := fs.Int("rate", 100, "events a second applied (and delivered to every subscriber) during the lookups; 0: idle subscribers")
	dur := fs.Duration("duration", 10*time.Second, "duration of each load phase pair")
	return func(ctx context.Context, out io.Writer) error {
		return benchTail(ctx, out, *n, *rate, *dur)
	}
}

// httpFlags reads the flags of `jaegobench http`.
func httpFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	dur := fs.Duration("duration", 10*time.Second, "duration of each load phase")
	conns := fs.Int("conns", 32, "concurrent connections")
	return func(ctx context.Context, out io.Writer) error {
		return benchHTTP(ctx, out, *dur, *conns)
	}
}

// pipelineFlags reads the flags of `jaegobench pipeline`.
func pipelineFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	events := fs.Int("events", 200_000, "events of the throughput run")
	rate := fs.Int("rate", 5000, "events per second of the steady run")
	steady := fs.Duration("steady", 20*time.Second, "duration of the steady run")
	rounds := fs.Int("rounds", 3, "rounds of the baseline and the end-to-end run, the order rotating")
	return func(ctx context.Context, out io.Writer) error {
		if *rounds < 1 {
			return fmt.Errorf("-rounds must be at least 1")
		}
		return benchPipeline(ctx, out, *events, *rate, *steady, *rounds)
	}
}

// feedFlags reads the flags of `jaegobench feed`.
func feedFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	txns := fs.Int("transactions", 1_400_000, "POS transactions of the filled day (about 1.45 change entries each)")
	windows := fs.String("windows", "10ms,100ms,1s", "windows of the windows strategy to measure (comma list; empty: none)")
	rounds := fs.Int("rounds", 3, "rounds of every reader, each with the ceiling measured again")
	return func(ctx context.Context, out io.Writer) error {
		var ws []time.Duration
		for _, w := range strings.Split(*windows, ",") {
			if w = strings.TrimSpace(w); w != "" {
				d, err := time.ParseDuration(w)
				if err != nil {
					return fmt.Errorf("-windows: %w", err)
				}
				ws = append(ws, d)
			}
		}
		if *rounds < 1 {
			return fmt.Errorf("-rounds must be at least 1")
		}
		return benchFeed(ctx, out, *txns, *rounds, ws)
	}
}

// lockFlags reads the flags of `jaegobench lock`.
func lockFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	dur := fs.Duration("duration", 10*time.Second, "duration of each phase")
	return func(ctx context.Context, out io.Writer) error {
		return benchLock(ctx, out, *dur)
	}
}

// promoFlags reads the flags of `jaegobench promo`.
func promoFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	promotions := fs.Int("promotions", 2000, "active promotions")
	targets := fs.Int("targets", 50000, "target SKUs")
	dur := fs.Duration("duration", 10*time.Second, "duration of each mode")
	conns := fs.Int("conns", 32, "concurrent connections")
	return func(ctx context.Context, out io.Writer) error {
		return benchPromo(ctx, out, *promotions, *targets, *dur, *conns)
	}
}

// restoreFlags reads the flags of `jaegobench restore`.
func restoreFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	records := fs.Int("records", 1_000_000, "records of the copy restored")
	return func(ctx context.Context, out io.Writer) error {
		return benchRestore(ctx, out, *records)
	}
}

// copyFlags reads the flags of `jaegobench copy`.
func copyFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	events := fs.Int("events", 200_000, "changes of the projector's backlog")
	rate := fs.Int("rate", 5000, "events per second of the steady run")
	steady := fs.Duration("steady", 20*time.Second, "duration of the steady run")
	dur := fs.Duration("duration", 15*time.Second, "duration of the lookups of each kind, over 3 rounds")
	return func(ctx context.Context, out io.Writer) error {
		return benchCopy(ctx, out, *events, *rate, *steady, *dur)
	}
}

// latencies summarises a sample of durations.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func tempDir() (string, error) { return os.MkdirTemp("", "jaegobench-") }

// newClient is a client configured like jaego serve's (no client-side retries).
func newClient(addr string) (rueidis.Client, error) {
	return rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, DisableRetry: true})
}

// privateRedis starts a throwaway redis-server and a client to it; stop ends both.
func privateRedis() (rueidis.Client, *testenv.RedisServer, func(), error) {
	dir, err := os.MkdirTemp("", "jaegobench-")
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err := testenv.StartRedis(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		srv.Stop()
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	return client, srv, func() { client.Close(); srv.Stop(); os.RemoveAll(dir) }, nil
}
