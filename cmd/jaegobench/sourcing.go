package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/sourcing"
	srchttp "github.com/jaego/jaego/internal/sourcing/http"
	srcredis "github.com/jaego/jaego/internal/sourcing/redis"
)

// sourcingFlags reads the flags of `jaegobench sourcing`.
func sourcingFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	dur := fs.Duration("duration", 4*time.Second, "duration of each phase of a round")
	rounds := fs.Int("rounds", 3, "rounds; the phases' order rotates each round")
	conns := fs.Int("conns", 8, "concurrent connections")
	return func(ctx context.Context, out io.Writer) error {
		if *rounds < 1 {
			return fmt.Errorf("-rounds must be at least 1")
		}
		return benchSourcing(ctx, out, *dur, *rounds, *conns)
	}
}

// The bench's city: 200 stores within 12 km of its centre, 5 SKUs of scarce stock (the
// plans differ by store) and 5 of plenty (every hold succeeds).
const (
	benchCityLat, benchCityLon = 37.5663, 126.9779
	benchStores                = 200
)

// benchSourcing measures design §15 over HTTP, each against its baseline in the same run
// (issue 25): the p50/p99 of sourcing a 5-line basket over 50 candidates (max_stores 1, 2,
// 3) against POST /v1/availability of the same basket at the same 50 stores; and sourced
// holds per second against direct reservations of the same basket at the store the
// sourcing picks.
func benchSourcing(ctx context.Context, out io.Writer, dur time.Duration, rounds, conns int) error {
	client, _, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	store := invredis.New(client, invredis.Options{MaxHoldsPerStore: 1 << 30})
	dir := srcredis.New(client, store.Keys(), false, time.Hour)
	nearest, err := seedCity(ctx, store, dir)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	invhttp.New(store, invhttp.Options{Reservations: store}).Register(mux)
	srchttp.New(dir, sourcing.New(sourcing.Options{Directory: dir, Stock: store, Reservations: store, Sagas: dir}), srchttp.Options{}).Register(mux)
	l, err := listen(httpx.Instrument(mux, prometheus.NewRegistry(), quietLog))
	if err != nil {
		return err
	}
	defer l.Close()
	base := "http://" + l.Addr().String()
	if err := sourcingLatency(ctx, out, base, nearest, dur, rounds, conns); err != nil {
		return err
	}
	return sourcingHolds(ctx, out, base, nearest[0], dur, rounds, conns)
}

// seedCity puts the stores and their stock, and answers the ids of the 50 nearest the
// centre, nearest first.
func seedCity(ctx context.Context, store *invredis.Store, dir *srcredis.Directory) ([]string, error) {
	rng := rand.New(rand.NewPCG(25, 15))
	var stores []sourcing.Store
	var seed []inventory.Event
	for i := range benchStores {
		s := sourcing.Store{ID: fmt.Sprintf("S%04d", i), Name: "store", Lat: benchCityLat + (rng.Float64()-.5)*.2, Lon: benchCityLon + (rng.Float64()-.5)*.25,
			Capabilities: []string{sourcing.SameDay}, Status: sourcing.Open}
		stores = append(stores, s)
		for k := range 5 {
			seed = append(seed, inventory.Event{EventID: fmt.Sprintf("scarce-%d-%d", i, k), Type: inventory.Receipt, Store: s.ID, SKU: fmt.Sprintf("SCARCE-%d", k), Qty: int64(rng.IntN(6))},
				inventory.Event{EventID: fmt.Sprintf("plenty-%d-%d", i, k), Type: inventory.Receipt, Store: s.ID, SKU: fmt.Sprintf("PLENTY-%d", k), Qty: 1_000_000_000})
		}
	}
	if err := dir.PutMany(ctx, stores); err != nil {
		return nil, err
	}
	for i := 0; i < len(seed); i += 1000 {
		if _, err := store.Apply(ctx, seed[i:min(i+1000, len(seed))]); err != nil {
			return nil, err
		}
	}
	near, err := dir.Near(ctx, benchCityLat, benchCityLon, sourcing.MaxRadiusKm, sourcing.MaxCandidates)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(near))
	for i, n := range near {
		ids[i] = n.ID
	}
	return ids, nil
}

// post makes POST requests of body (drawn anew each time).
func post(url string, body func(*rand.Rand) string) func(*rand.Rand) *http.Request {
	return func(r *rand.Rand) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body(r)))
		return req
	}
}

func basketJSON(prefix string) string {
	return `[{"sku":"` + prefix + `-0","qty":2},{"sku":"` + prefix + `-1","qty":1},{"sku":"` + prefix + `-2","qty":3},{"sku":"` + prefix + `-3","qty":1},{"sku":"` + prefix + `-4","qty":2}]`
}

// sourcingLatency: the 5-line basket of scarce SKUs, sourced over the 50 candidates, and
// its availability at the same 50 stores (the baseline), phases rotating.
func sourcingLatency(ctx context.Context, out io.Writer, base string, nearest []string, dur time.Duration, rounds, conns int) error {
	stores, _ := json.Marshal(nearest)
	to := fmt.Sprintf(`{"lat":%v,"lon":%v}`, benchCityLat, benchCityLon)
	source := func(k int) func(*rand.Rand) string {
		return func(*rand.Rand) string {
			return `{"items":` + basketJSON("SCARCE") + `,"to":` + to + `,"radius_km":50,"capability":"same_day","max_stores":` + fmt.Sprint(k) + `}`
		}
	}
	phases := []struct {
		name string
		req  func(*rand.Rand) *http.Request
	}{
		{"POST /v1/availability, the same 50 stores (baseline)", post(base+"/v1/availability", func(*rand.Rand) string {
			return `{"items":` + basketJSON("SCARCE") + `,"stores":` + string(stores) + `}`
		})},
		{"POST /v1/sourcing, max_stores 1", post(base+"/v1/sourcing", source(1))},
		{"POST /v1/sourcing, max_stores 2", post(base+"/v1/sourcing", source(2))},
		{"POST /v1/sourcing, max_stores 3", post(base+"/v1/sourcing", source(3))},
	}
	runs, err := rotate(ctx, len(phases), rounds, func(i int) (loadResult, error) { return load(ctx, phases[i].req, conns, dur) })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| a 5-line basket over 50 candidate stores, %d connections, %d rounds × %s | req/s | p50 | p99 | p50 ÷ baseline | p99 ÷ baseline |\n|---|---:|---:|---:|---:|---:|\n", conns, rounds, dur)
	b := merge(runs[0])
	for i, p := range phases {
		m := merge(runs[i])
		p50, p99 := float64(m.lat.pct(.5))/float64(b.lat.pct(.5)), float64(m.lat.pct(.99))/float64(b.lat.pct(.99))
		fmt.Fprintf(out, "| %s | %.0f | %s | %s | %.2f | %.2f |\n", p.name, m.rate, ms(m.lat.pct(.5)), ms(m.lat.pct(.99)), p50, p99)
		if i > 0 {
			measured(out, goalRow{Path: strings.TrimPrefix(p.name, "POST /v1/sourcing, ") + " sourcing p50", Baseline: "POST /v1/availability, 50 stores", Value: p50, Goal: 1.5})
			measured(out, goalRow{Path: strings.TrimPrefix(p.name, "POST /v1/sourcing, ") + " sourcing p99", Baseline: "POST /v1/availability, 50 stores", Value: p99, Goal: 1.5})
		}
	}
	fmt.Fprintln(out)
	return nil
}

// sourcingHolds: holds of a 5-line basket of plenty, sourced (max_stores 1: the nearest
// store holds it) against reservations of it at that store (the baseline).
func sourcingHolds(ctx context.Context, out io.Writer, base, nearest string, dur time.Duration, rounds, conns int) error {
	var seq atomic.Int64
	to := fmt.Sprintf(`{"lat":%v,"lon":%v}`, benchCityLat, benchCityLon)
	phases := []struct {
		name string
		req  func(*rand.Rand) *http.Request
	}{
		{"POST /v1/reservations at the store sourcing picks (baseline)", post(base+"/v1/reservations", func(*rand.Rand) string {
			return `{"reservation_id":"direct-` + fmt.Sprint(seq.Add(1)) + `","store":"` + nearest + `","items":` + basketJSON("PLENTY") + `}`
		})},
		{"POST /v1/sourcing with hold, max_stores 1", post(base+"/v1/sourcing", func(*rand.Rand) string {
			return `{"items":` + basketJSON("PLENTY") + `,"to":` + to + `,"capability":"same_day","hold":{"reservation_id":"sourced-` + fmt.Sprint(seq.Add(1)) + `"}}`
		})},
	}
	runs, err := rotate(ctx, len(phases), rounds, func(i int) (loadResult, error) { return load(ctx, phases[i].req, conns, dur) })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| holds of a 5-line basket, %d connections, %d rounds × %s | holds/s (min–max of rounds) | p50 | p99 | ratio |\n|---|---:|---:|---:|---:|\n", conns, rounds, dur)
	b := merge(runs[0])
	for i, p := range phases {
		m := merge(runs[i])
		lo, hi := rateRange(runs[i])
		fmt.Fprintf(out, "| %s | %.0f (%.0f–%.0f) | %s | %s | %.2f |\n", p.name, m.rate, lo, hi, ms(m.lat.pct(.5)), ms(m.lat.pct(.99)), m.rate/b.rate)
	}
	var ratios []float64
	for r := range runs[0] {
		ratios = append(ratios, runs[1][r].rate/runs[0][r].rate)
	}
	lo, hi := minMax(ratios)
	measured(out, goalRow{Path: "sourced holds", Baseline: "direct reservations", Value: merge(runs[1]).rate / b.rate, Min: lo, Max: hi, AtLeast: true, Goal: 0.7})
	fmt.Fprintln(out)
	return nil
}

// rotate runs phases × rounds, the order rotating each round so that the machine's drift
// falls on every phase, and answers each phase's runs.
func rotate(ctx context.Context, phases, rounds int, run func(i int) (loadResult, error)) ([][]loadResult, error) {
	runs := make([][]loadResult, phases)
	for r := range rounds {
		for k := range phases {
			i := (k + r) % phases
			res, err := run(i)
			if err != nil {
				return nil, err
			}
			runs[i] = append(runs[i], res)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return runs, nil
}

func rateRange(rs []loadResult) (lo, hi float64) {
	for i, r := range rs {
		if i == 0 || r.rate < lo {
			lo = r.rate
		}
		hi = max(hi, r.rate)
	}
	return lo, hi
}
