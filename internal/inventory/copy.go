package inventory

import (
	"context"
	"time"
)

// StockReader reads stock records: what a fallback must answer.
type StockReader interface {
	Get(ctx context.Context, store, sku string) (Stock, error)
	GetMany(ctx context.Context, keys []Key) ([]Lookup, error)
}

// CopyPosition is what the durable copy holds: the feed cursor after its last change, the
// fencing token of the projector that wrote it, the time up to which it holds every change
// (zero before its first catch-up), and how many changes it projected.
type CopyPosition struct {
	Cursor  string
	Token   int64
	AsOf    time.Time
	Changes int64
}

// Projection is one batch for the durable copy: records of a snapshot and changes of the
// feed (each applied only where its version is higher), and the feed position after them.
type Projection struct {
	Records []Stock
	Changes []Change
	// Cursor is the feed position after Changes; "" keeps the copy's position (a snapshot
	// in progress).
	Cursor string
	AsOf   time.Time
}

// CopyStore is the durable copy of design §8 (inventory/db).
//
// Contract: Commit writes a projection and its cursor in one transaction, and refuses (with
// no change) a token below the highest claimed; records never go back to a lower version.
type CopyStore interface {
	StockReader
	Position(ctx context.Context) (CopyPosition, error)
	// Claim raises the copy's token to token and returns the position to resume from.
	Claim(ctx context.Context, token int64) (CopyPosition, error)
	Commit(ctx context.Context, token int64, p Projection) error
	// Prune drops the ledger before the day of before; it says how much went.
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// HistoryReader reads the ledger of one store × SKU (design §8's history route).
type HistoryReader interface {
	History(ctx context.Context, store, sku string, from, to time.Time, cursor string, limit int) (ChangePage, error)
}

// Locker serialises work across instances: the distributed lock of design §7.
type Locker interface {
	// Hold blocks until it holds name (lease 0: until released) and returns the fencing
	// token of this holding and the function that releases it.
	Hold(ctx context.Context, name string, lease time.Duration) (token int64, release func(context.Context) error, err error)
}

// BreakerStatus is what operators see of the Redis breaker (design §8).
type BreakerStatus struct {
	State       string    `json:"state"` // closed, open, half_open, forced_open
	Since       time.Time `json:"since"`
	FailureRate float64   `json:"failure_rate"` // over the closed-state window, 0..1
	SlowRate    float64   `json:"slow_rate"`
	WindowCalls int       `json:"window_calls"`
}
