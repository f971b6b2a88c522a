package inventory

import "context"

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
