package inventory

import (
	"context"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Change is one applied stock event as the change feed tells it (design §4): what happened
// and the record's counters right after, so a re-indexer can overwrite rather than add.
type Change struct {
	ID       string    `json:"id"`
	Store    string    `json:"store"`
	SKU      string    `json:"sku"`
	Type     EventType `json:"type"`
	Delta    int64     `json:"delta"` // the change of on_hand (0 for reserve, release, set_safety)
	OnHand   int64     `json:"on_hand"`
	Reserved int64     `json:"reserved"`
	Safety   int64     `json:"safety"`
	Version  int64     `json:"version"`
	EventID  string    `json:"event_id"`
	At       time.Time `json:"at"`
	// Origin is the Kafka record the event came from, nil for other sources (internal: the
	// durable copy's ledger keeps it for restores).
	Origin *Origin `json:"-"`
}

// ApplyTo brings a snapshot record up to date with the change: a change older than or as
// old as the record (by version) is ignored, so snapshot + changes gives the live state
// whatever the overlap.
func (c Change) ApplyTo(s Stock) Stock {
	if c.Version <= s.Version {
		return s
	}
	s.Store, s.SKU = c.Store, c.SKU
	s.OnHand, s.Reserved, s.Safety, s.Version, s.UpdatedAt = c.OnHand, c.Reserved, c.Safety, c.Version, c.At
	return s.WithAvailable()
}

// ChangePage is one page of the change feed.
type ChangePage struct {
	Changes []Change
	// Next resumes right after the last change; "" when the range is complete and read.
	Next string
}

// EstatePage is one page of the whole-estate snapshot.
type EstatePage struct {
	Items []Stock
	Next  string // "" after the last page
}

// ChangeFeed reads the changes applied in a time window (design §4).
//
// Contract: changes come in an order in which every store × SKU's changes are in apply
// order; a cursor resumes exactly after the last change returned, with no gap and no
// repeat; Next is "" only once the range end is past and everything in it was returned.
// A malformed cursor is ErrBadCursor; a range older than the retention is ErrExpired.
type ChangeFeed interface {
	Changes(ctx context.Context, from, to time.Time, cursor string, limit int) (ChangePage, error)
	// StreamChanges hands every change of the range available now to emit, in batches,
	// and returns the cursor to resume from ("" when the range is complete).
	StreamChanges(ctx context.Context, from, to time.Time, cursor string, emit func([]Change) error) (string, error)
	// Position is an open-ended cursor at the current end of the feed.
	Position(ctx context.Context) (string, error)
	// Wait returns when changes after cursor may have arrived, or after timeout.
	Wait(ctx context.Context, cursor string, timeout time.Duration) error
}

// Snapshotter reads whole stores, for re-indexers that start from a snapshot.
type Snapshotter interface {
	StoreStock(ctx context.Context, store string) ([]Stock, error)
	Estate(ctx context.Context, token string) (EstatePage, error)
}

// Errors of a change feed, matched with errors.Is.
var (
	ErrBadCursor = &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor",
		Detail: "malformed cursor: pass next_cursor back unchanged"}
	ErrExpired = &jaego.Error{Code: jaego.CodeExpired, Field: "from",
		Detail: "the range starts before the change-feed retention: those changes are gone; take a snapshot instead"}
)

// OpenEnd is where an open range that starts at t ends (design §4: with from and no to,
// the range is open): a hundred years on. A cursor of such a range keeps returning the
// changes applied after it, forever, and is the only kind a live tail follows.
func OpenEnd(t time.Time) time.Time { return t.AddDate(100, 0, 0) }
