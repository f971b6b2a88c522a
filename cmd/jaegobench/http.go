package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/auth"
	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
)

const benchSKUs = 1000

// benchHTTP compares jaego's single-SKU lookup (validation, instrumentation, problem
// handling, JSON of the full record) with a bare net/http handler doing one HGET on the same
// rueidis client, under the same closed-loop load, alternating phases to spread machine
// noise over both; then measures the 1,000-SKU per-store lookup.
func benchHTTP(ctx context.Context, out io.Writer, dur time.Duration, conns int) error {
	client, _, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	store := invredis.New(client, invredis.Options{})
	skus, err := seedSKUs(ctx, store)
	if err != nil {
		return err
	}
	jaego, bare, secured, token, err := lookupServers(client, store)
	if err != nil {
		return err
	}
	defer jaego.Close()
	defer bare.Close()
	defer secured.Close()
	single := func(base string) func(*rand.Rand) *http.Request {
		return get(func(r *rand.Rand) string { return base + "/v1/stores/S0001/skus/" + skus[r.IntN(benchSKUs)] })
	}
	keyed := func(base string) func(*rand.Rand) *http.Request {
		next := single(base)
		return func(r *rand.Rand) *http.Request {
			req := next(r)
			req.Header.Set("Authorization", "Bearer "+token)
			return req
		}
	}
	var jaegoRuns, bareRuns, authRuns []loadResult
	phases := []struct {
		req  func(*rand.Rand) *http.Request
		runs *[]loadResult
	}{
		{single("http://" + bare.Addr().String()), &bareRuns},
		// The header is sent to jaego without keys too: the load generator shares the cores,
		// so both phases must cost it the same.
		{keyed("http://" + jaego.Addr().String()), &jaegoRuns},
		{keyed("http://" + secured.Addr().String()), &authRuns},
	}
	// Four rounds, the order rotating, so that drift of the machine falls on every phase.
	for round := range 4 {
		for i := range phases {
			p := phases[(i+round)%len(phases)]
			before := cpuNow(client)
			res, err := load(ctx, p.req, conns, dur/4)
			if err != nil {
				return err
			}
			res.cpu = cpuNow(client).minus(before)
			*p.runs = append(*p.runs, res)
		}
	}
	bareAll, jaegoAll, authAll := merge(bareRuns), merge(jaegoRuns), merge(authRuns)
	fmt.Fprintf(out, "| single-SKU lookup, %d connections, %s | req/s | p50 | p99 | ratio to baseline |\n|---|---:|---:|---:|---:|\n", conns, dur)
	fmt.Fprintf(out, "| bare net/http + one HGET (baseline) | %.0f | %s | %s | 1.00 |\n", bareAll.rate, ms(bareAll.lat.pct(.5)), ms(bareAll.lat.pct(.99)))
	fmt.Fprintf(out, "| jaego GET /v1/stores/{store}/skus/{sku} | %.0f | %s | %s | %.2f |\n", jaegoAll.rate, ms(jaegoAll.lat.pct(.5)), ms(jaegoAll.lat.pct(.99)), jaegoAll.rate/bareAll.rate)
	fmt.Fprintf(out, "| the same with an API key (20 keys on file) | %.0f | %s | %s | %.2f (%.3f of jaego without keys) |\n\n", authAll.rate, ms(authAll.lat.pct(.5)), ms(authAll.lat.pct(.99)), authAll.rate/bareAll.rate, authAll.rate/jaegoAll.rate)
	// What a request costs the machine: the ratio is the inverse of these sums when the
	// cores are the limit, so they say how far the path is from its goal in µs.
	fmt.Fprintf(out, "| CPU a request (µs) | this process (load generator and server) | Redis | others | stolen | all |\n|---|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		r    loadResult
	}{{"bare net/http + one HGET", bareAll}, {"jaego", jaegoAll}, {"jaego with an API key", authAll}} {
		c := row.r.cpu.each(row.r.n)
		fmt.Fprintf(out, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", row.name, c.process, c.redis, c.others(), c.stolen, c.machine)
	}
	fmt.Fprintln(out)

	var keyedRatios []float64
	for i := range authRuns {
		keyedRatios = append(keyedRatios, authRuns[i].rate/bareRuns[i].rate)
	}
	lo, hi := minMax(keyedRatios)
	measured(out, goalRow{Path: "single lookup over HTTP, with an API key", Baseline: "bare net/http + one HGET", Value: authAll.rate / bareAll.rate, Min: lo, Max: hi, AtLeast: true, Goal: 0.95})
	return bulkLookup(ctx, out, "http://"+jaego.Addr().String(), skus, dur)
}

// seedSKUs stocks benchSKUs SKUs at store S0001 and returns them.
func seedSKUs(ctx context.Context, store *invredis.Store) ([]string, error) {
	var seed []inventory.Event
	skus := make([]string, benchSKUs)
	for i := range skus {
		skus[i] = fmt.Sprintf("8809%09d", i)
		seed = append(seed, inventory.Event{EventID: "seed-" + skus[i], Type: inventory.Receipt, Store: "S0001", SKU: skus[i], Qty: int64(i + 1)})
	}
	_, err := store.Apply(ctx, seed)
	return skus, err
}

// bulkLookup measures the per-store lookup of every SKU, 4 connections.
func bulkLookup(ctx context.Context, out io.Writer, base string, skus []string, dur time.Duration) error {
	all := base + "/v1/stores/S0001/stock?sku=" + strings.Join(skus, ",")
	bulk, err := load(ctx, get(func(*rand.Rand) string { return all }), 4, dur)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| per-store lookup of %d SKUs, 4 connections, %s | req/s | SKUs/s | p50 | p99 |\n|---|---:|---:|---:|---:|\n", len(skus), dur)
	fmt.Fprintf(out, "| jaego GET /v1/stores/{store}/stock | %.0f | %.0f | %s | %s |\n", bulk.rate, bulk.rate*float64(len(skus)), ms(bulk.lat.pct(.5)), ms(bulk.lat.pct(.99)))
	measured(out, goalRow{Path: "1,000-SKU store lookup p99", Value: float64(bulk.lat.pct(.99).Microseconds()) / 1000, Unit: "ms", Goal: 10})
	return nil
}

// lookupServers listens with jaego's inventory API, the bare handler (the baseline), and
// the API behind access control (a keys file of 20 keys, token the last one's).
func lookupServers(client rueidis.Client, store *invredis.Store) (jaego, bare, secured net.Listener, token string, err error) {
	mux := http.NewServeMux()
	invhttp.New(store, invhttp.Options{}).Register(mux)
	if jaego, err = listen(httpx.Instrument(mux, prometheus.NewRegistry(), quietLog)); err != nil {
		return
	}
	if bare, err = listen(bareHandler(client, store)); err != nil {
		jaego.Close()
		return
	}
	guard, token, err := benchGuard(20)
	if err == nil {
		authMux := http.NewServeMux()
		invhttp.New(store, invhttp.Options{}).Register(authMux)
		secured, err = listen(httpx.Instrument(authMux, prometheus.NewRegistry(), quietLog, httpx.Options{Authorize: guard.Authorize}))
	}
	if err != nil {
		jaego.Close()
		bare.Close()
	}
	return jaego, bare, secured, token, err
}

// bareHandler is the least a lookup can do: one HGET, the packed record written out.
func bareHandler(client rueidis.Client, store *invredis.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/") // /v1/stores/{store}/skus/{sku}
		v, err := client.Do(r.Context(), client.B().Hget().Key(store.Keys().Stock(parts[3])).Field(parts[5]).Build()).ToString()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"record":"`+v+`"}`)
	})
}

func listen(h http.Handler) (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = (&http.Server{Handler: h}).Serve(l) }()
	return l, nil
}

type loadResult struct {
	n    int
	dur  time.Duration
	rate float64
	lat  latencies
	cpu  cpuTimes // used while it ran, where the benchmark reads it
}

func merge(rs []loadResult) loadResult {
	var m loadResult
	for _, r := range rs {
		m.n += r.n
		m.dur += r.dur
		m.lat = append(m.lat, r.lat...)
		m.cpu = m.cpu.plus(r.cpu)
	}
	m.rate = float64(m.n) / m.dur.Seconds()
	return m
}

// get makes GET requests of the URLs url draws.
func get(url func(*rand.Rand) string) func(*rand.Rand) *http.Request {
	return func(r *rand.Rand) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, url(r), nil)
		return req
	}
}

// load runs conns closed-loop clients sending the requests req draws for dur, and fails
// on any answer but a 2xx.
func load(ctx context.Context, req func(*rand.Rand) *http.Request, conns int, dur time.Duration) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var mu sync.Mutex
	var res loadResult
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < conns; c++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			var lat latencies
			for ctx.Err() == nil {
				t0 := time.Now()
				resp, err := hc.Do(req(rng))
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					mu.Lock()
					firstErr = fmt.Errorf("status %d", resp.StatusCode)
					mu.Unlock()
					break
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.n, res.dur = len(res.lat), time.Since(start)
	res.rate = float64(res.n) / res.dur.Seconds()
	return res, firstErr
}

// benchGuard is a guard over a keys file of n keys, and the token of the last.
func benchGuard(n int) (*auth.Guard, string, error) {
	dir, err := tempDir()
	if err != nil {
		return nil, "", err
	}
	var lines []string
	var token string
	for i := range n {
		t, line, err := auth.NewKey(fmt.Sprintf("k%d", i), []auth.Scope{auth.Read})
		if err != nil {
			return nil, "", err
		}
		token, lines = t, append(lines, line)
	}
	path := filepath.Join(dir, "keys")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, "", err
	}
	g, err := auth.NewGuard(path) // read now: the file can go
	os.RemoveAll(dir)
	return g, token, err
}
