package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/promo"
	promohttp "github.com/jaego/jaego/internal/promo/http"
	promoredis "github.com/jaego/jaego/internal/promo/redis"
)

// benchPromo puts the same load (product pages and order-sheet evaluations over random
// target SKUs) on the promotion API backed three ways: Redis only (the version's List read
// and decoded on every request: the baseline), pointer + local cache (the original
// design), and the pointer in the RESP3 client-side cache. It reports requests/s and Redis
// bytes out (INFO total_net_output_bytes) per request, as ratios to the baseline, then
// measures how late a tracking client sees a pointer another client moved.
func benchPromo(ctx context.Context, out io.Writer, promotions, targets int, dur time.Duration, conns int) error {
	_, srv, stop, err := privateRedis()
	if err != nil {
		return err
	}
	defer stop()
	// A client per mode: the tracking one must not have DisableCache.
	plain, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		return err
	}
	defer plain.Close()
	tracking, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}})
	if err != nil {
		return err
	}
	defer tracking.Close()

	ps, skus := benchPromotions(promotions, targets)
	if _, err := promoredis.New(plain, promoredis.Options{Logger: quietLog}).Publish(ctx, 1, promo.Meta{Day: "bench"}, ps); err != nil {
		return err
	}
	listBytes, _ := plain.Do(ctx, plain.B().Arbitrary("MEMORY", "USAGE").Keys("jg:promo:{p}:v1:promotions").Args("SAMPLES", "0").Build()).AsInt64()

	modes := []struct {
		name   string
		client rueidis.Client
		opts   promoredis.Options
	}{
		{"Redis only: pointer + List read and decoded per request (baseline)", plain, promoredis.Options{NoLocal: true}},
		{"pointer per request + local cache by version (original design)", plain, promoredis.Options{}},
		{"pointer in client-side cache (RESP3 tracking) + local cache", tracking, promoredis.Options{PointerTTL: time.Minute}},
	}
	fmt.Fprintf(out, "%d active promotions over %d target SKUs (the version's List: %.1f MiB in Redis); %d connections, %s per mode; 80%% product pages, 20%% order sheets of 1-5 items\n\n",
		len(ps), len(skus), float64(listBytes)/(1<<20), conns, dur)
	fmt.Fprintf(out, "| read path | req/s | p50 | p99 | Redis bytes out / req | TPS ratio | bytes-out change |\n|---|---:|---:|---:|---:|---:|---:|\n")
	var baseRate, baseBytes float64
	for i, m := range modes {
		res, perReq, err := promoMode(ctx, plain, m.client, m.opts, skus, conns, dur)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if i == 0 {
			baseRate, baseBytes = res.rate, perReq
		}
		fmt.Fprintf(out, "| %s | %.0f | %s | %s | %.0f | %.2f× | %+.4f%% |\n", m.name, res.rate, ms(res.lat.pct(.5)), ms(res.lat.pct(.99)),
			perReq, res.rate/baseRate, 100*(perReq-baseBytes)/baseBytes)
	}
	fmt.Fprintln(out)
	return invalidationDelay(ctx, out, plain, tracking)
}

// promoMode serves the promotion API on a cache with opts over client, warms it up for a
// second, loads it for dur and answers the result and the Redis bytes out per request
// (counted on plain).
func promoMode(ctx context.Context, plain, client rueidis.Client, opts promoredis.Options, skus []string, conns int, dur time.Duration) (loadResult, float64, error) {
	opts.Logger = quietLog
	mux := http.NewServeMux()
	promohttp.New(nil, promoredis.New(client, opts), nil, promohttp.Options{Logger: quietLog}).Register(mux)
	l, err := listen(httpx.Instrument(mux, prometheus.NewRegistry(), quietLog))
	if err != nil {
		return loadResult{}, 0, err
	}
	defer l.Close()
	base := "http://" + l.Addr().String()
	// Warm up: the first load of the version, connections, the pointer in the cache.
	if _, err := load(ctx, promoRequests(base, skus), conns, time.Second); err != nil {
		return loadResult{}, 0, err
	}
	before, err := netOut(ctx, plain)
	if err != nil {
		return loadResult{}, 0, err
	}
	res, err := load(ctx, promoRequests(base, skus), conns, dur)
	if err != nil {
		return loadResult{}, 0, err
	}
	after, err := netOut(ctx, plain)
	return res, float64(after-before) / float64(res.n), err
}

// benchPromotions makes n promotions over t target SKUs: each SKU is a target of one
// promotion, and one promotion in 50 also targets a shared best-seller, so product pages
// see one to several promotions.
func benchPromotions(n, t int) ([]promo.Promotion, []string) {
	skus := make([]string, t)
	for i := range skus {
		skus[i] = fmt.Sprintf("88%011d", i)
	}
	now := time.Now().UTC()
	ps := make([]promo.Promotion, n)
	for i := range ps {
		var tg []string
		for j := i; j < t; j += n {
			tg = append(tg, skus[j])
		}
		if i%50 == 0 {
			tg = append(tg, skus[0])
		}
		s := promo.Spec{Name: fmt.Sprintf("Promotion %d: buy 2, get a gift", i), StartsAt: now.Add(-time.Hour), EndsAt: now.Add(24 * time.Hour),
			Priority: i % 10, Channels: []string{promo.ChannelOnline, promo.ChannelStore}, Targets: tg,
			Condition: promo.Condition{MinQty: int64(1 + i%3), MinAmount: int64(i%4) * 10000},
			Gifts:     []promo.Gift{{SKU: fmt.Sprintf("GIFT-%d", i), Qty: 1}}, MaxPerOrder: int64(i % 3)}
		s.Normalize()
		ps[i] = promo.Promotion{ID: fmt.Sprintf("p%05d", i), Status: promo.Active, Spec: s, CreatedAt: now, UpdatedAt: now}
	}
	return ps, skus
}

// promoRequests draws product pages (80%) and order sheets of 1-5 items (20%).
func promoRequests(base string, skus []string) func(*rand.Rand) *http.Request {
	return func(r *rand.Rand) *http.Request {
		if r.IntN(5) > 0 {
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/products/"+skus[r.IntN(len(skus))]+"/gifts?channel=online", nil)
			return req
		}
		var b strings.Builder
		b.WriteString(`{"channel":"online","items":[`)
		for i := range 1 + r.IntN(5) {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"sku":%q,"qty":%d,"price":%d}`, skus[r.IntN(len(skus))], 1+r.IntN(3), 1000*(1+r.IntN(30)))
		}
		b.WriteString("]}")
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/gifts/evaluate", bytes.NewReader([]byte(b.String())))
		return req
	}
}

// netOut is the server's total_net_output_bytes.
func netOut(ctx context.Context, c rueidis.Client) (int64, error) {
	info, err := c.Do(ctx, c.B().Info().Section("stats").Build()).ToString()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no total_net_output_bytes in INFO stats")
}

// invalidationDelay moves the pointer with one client and measures when a tracking
// client's cached read first shows it; it also counts how often the tracking client's
// first read after the SET returned was still stale, which is what "a stop is visible
// from the next request on" needs to be zero.
func invalidationDelay(ctx context.Context, out io.Writer, writer, tracking rueidis.Client) error {
	const rounds = 2000
	key := "jg:promo:{p}:version"
	read := func() (int64, error) {
		return tracking.DoCache(ctx, tracking.B().Get().Key(key).Cache(), time.Minute).AsInt64()
	}
	var delays latencies
	stale := 0
	for i := range rounds {
		if _, err := read(); err != nil { // cached from here on
			return err
		}
		want := int64(1_000_000 + i)
		if err := writer.Do(ctx, writer.B().Set().Key(key).Value(strconv.FormatInt(want, 10)).Build()).Error(); err != nil {
			return err
		}
		t0 := time.Now()
		for first := true; ; first = false {
			v, err := read()
			if err != nil {
				return err
			}
			if v == want {
				break
			}
			if first {
				stale++
			}
		}
		delays = append(delays, time.Since(t0))
	}
	fmt.Fprintf(out, "| pointer moved by another client, %d times | value |\n|---|---:|\n", rounds)
	fmt.Fprintf(out, "| first tracking read after the SET returned still stale | %d of %d (%.1f%%) |\n", stale, rounds, 100*float64(stale)/rounds)
	fmt.Fprintf(out, "| invalidation delay p50 / p99 / max | %s / %s / %s |\n", ms(delays.pct(.5)), ms(delays.pct(.99)), ms(delays.pct(1)))
	return nil
}
