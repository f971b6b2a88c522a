// Package http serves the inventory API of design §3 over net/http: stock lookups and
// stock events, with errors as RFC 9457 problem details carrying a stable code.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
)

// Limits of one request.
const (
	MaxLookup = 1000 // SKUs or stores in one bulk lookup
	MaxBatch  = 1000 // events in one POST /v1/events
)

// Options configures the API.
type Options struct {
	// Feed serves the change feed, and with Snapshots the snapshots; without them those
	// routes are not registered. Tail serves the live tail (a hub on Feed).
	Feed      inventory.ChangeFeed
	Tail      *inventory.Hub
	Snapshots inventory.Snapshotter
	// History serves the ledger of the durable copy; Breaker and Copy the breaker admin
	// routes (design §8). Without them those routes are not registered.
	History inventory.HistoryReader
	Breaker Breaker
	// Reservations serves the store orders (design §12); without it those routes are not
	// registered.
	Reservations inventory.Reservations
	Copy         CopyPosition
	// Timeout bounds the store work of one request; default 2s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Breaker is the Redis breaker as operators see and steer it (inventory/breaker).
type Breaker interface {
	Status() inventory.BreakerStatus
	Force()      // open until Auto
	Auto() error // back to its rules; refused during a loss
}

// CopyPosition says what the durable copy holds (inventory/db).
type CopyPosition interface {
	Position(ctx context.Context) (inventory.CopyPosition, error)
}

// API is the inventory HTTP API.
type API struct {
	store        inventory.StockStore
	feed         inventory.ChangeFeed
	tail         *inventory.Hub
	snapshots    inventory.Snapshotter
	history      inventory.HistoryReader
	breaker      Breaker
	reservations inventory.Reservations
	copy         CopyPosition
	timeout      time.Duration
	log          *slog.Logger
}

// New returns the API over store.
func New(store inventory.StockStore, opts Options) *API {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{store: store, feed: opts.Feed, tail: opts.Tail, snapshots: opts.Snapshots, history: opts.History, breaker: opts.Breaker,
		reservations: opts.Reservations, copy: opts.Copy, timeout: opts.Timeout, log: opts.Logger}
}

// Register adds every inventory route to mux. This is the one list of them. Every answer
// that is not a stream is bounded by the request timeout (httpx.Within), whatever the store
// client does; the streams bound their own start.
func (a *API) Register(mux httpx.Mux) {
	bounded := boundedMux{mux: mux, d: a.timeout + 50*time.Millisecond}
	bounded.Handle("GET /v1/stores/{store}/skus/{sku}", a.getStock())
	bounded.Handle("GET /v1/stores/{store}/stock", a.storeStock())
	bounded.Handle("GET /v1/skus/{sku}/stock", a.skuStock())
	bounded.Handle("POST /v1/events", a.postEvents())
	if a.feed != nil {
		mux.Handle("GET /v1/changes", a.changes()) // its pages are bounded inside: NDJSON streams
	}
	if a.tail != nil {
		mux.Handle("GET /v1/changes/stream", a.changeStream())
	}
	if a.feed != nil && a.snapshots != nil {
		bounded.Handle("GET /v1/stores/{store}/snapshot", a.storeSnapshot())
		bounded.Handle("GET /v1/snapshot", a.estateSnapshot())
	}
	if a.history != nil {
		bounded.Handle("GET /v1/stores/{store}/skus/{sku}/history", a.stockHistory())
	}
	if a.reservations != nil {
		a.registerReservations(bounded)
	}
	if a.breaker != nil {
		mux.Handle("GET /v1/admin/breaker", a.breakerStatus())
		mux.Handle("POST /v1/admin/breaker", a.setBreaker())
	}
}

// boundedMux registers handlers that answer within d (httpx.Within).
type boundedMux struct {
	mux httpx.Mux
	d   time.Duration
}

func (b boundedMux) Handle(pattern string, h http.Handler) {
	b.mux.Handle(pattern, httpx.Within(b.d, h))
}

func (a *API) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.timeout)
}
