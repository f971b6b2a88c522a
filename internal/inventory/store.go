package inventory

import (
	"context"

	"github.com/jaego/jaego/internal/jaego"
)

// Status is the outcome of one event.
type Status string

// The outcomes of applying an event.
const (
	// Applied: the change, the version bump, the idempotency mark and the change record
	// were written together.
	Applied Status = "applied"
	// Duplicate: an event with this id was applied before; nothing changed.
	Duplicate Status = "duplicate"
	// Rejected: the event was refused by the state it met (or was invalid); nothing changed.
	Rejected Status = "rejected"
)

// Result is what applying one event did. Stock is the record after the event (for a
// duplicate or a refusal: the record as it is now).
type Result struct {
	EventID string
	Status  Status
	Err     error
	Stock   Stock
}

// Key names one store × SKU.
type Key struct {
	Store string
	SKU   string
}

// StockStore keeps the live stock and applies events to it. Every implementation passes
// the shared suite in inventorytest.
//
// Contract:
//   - Apply validates each event (invalid ones get Status Rejected and an ErrInvalid and are
//     never written), then applies it atomically: the refusal check, the change, the
//     version bump by exactly one, the idempotency mark and the change record happen
//     together or not at all, under any concurrency.
//   - An event whose id was already applied answers Duplicate and changes nothing. Only
//     applied events are remembered: a refused event may be retried with the same id.
//   - Events in one call are applied in slice order per store × SKU; results come back in
//     the order of events.
//   - Get returns ErrNotFound for a pair that never received an event. GetMany returns one
//     entry per key, in order, with ok=false for unknown pairs.
//   - An error return (rather than a per-event result) means the store could not be reached:
//     no event of the call may be assumed applied or not applied, and retrying is safe.
type StockStore interface {
	Apply(ctx context.Context, events []Event) ([]Result, error)
	Get(ctx context.Context, store, sku string) (Stock, error)
	GetMany(ctx context.Context, keys []Key) ([]Lookup, error)
	Ping(ctx context.Context) error
}

// Lookup is one answer of a bulk read.
type Lookup struct {
	Stock Stock
	Found bool
}

// Unchanged is the outcome of a snapshot row (LoadRow) that found its record already
// holding its numbers: nothing but the load's mark was written.
const Unchanged Status = "unchanged"

// LoadRow is one row of a stock snapshot (jaego load, design §1): a stock count of store ×
// SKU, and its safety stock when the snapshot gives one. Line is its line in the file.
type LoadRow struct {
	Line   int64
	Store  string
	SKU    string
	OnHand int64
	Safety *int64
}

// Validate checks a row: its identifiers as an event's, on_hand and safety >= 0.
func (r LoadRow) Validate() error {
	if err := jaego.CheckStore(r.Store); err != nil {
		return err
	}
	if err := jaego.CheckSKU(r.SKU); err != nil {
		return err
	}
	if r.OnHand < -MaxQty || r.OnHand > MaxQty { // the bound events keep on_hand within
		return jaego.Invalidf("on_hand", "on_hand must be within ±%d, got %d", MaxQty, r.OnHand)
	}
	if r.Safety != nil && (*r.Safety < 0 || *r.Safety > MaxQty) {
		return jaego.Invalidf("safety", "safety must be 0..%d, got %d", MaxQty, *r.Safety)
	}
	return nil
}

// Loader applies the rows of a stock snapshot: each row sets on_hand (and the safety stock
// when given) as of the moment it is applied, last writer wins, and is written to the
// change feed as a set change with event id "<load id>-<line>" — unless the record already
// holds those numbers (Unchanged: no change, no version bump). A row already applied by the
// same load id is a Duplicate, so running a load again changes nothing. The rows of a call
// must rise in line order, and calls of one load id must not overlap.
type Loader interface {
	Load(ctx context.Context, loadID string, rows []LoadRow) ([]Result, error)
}
