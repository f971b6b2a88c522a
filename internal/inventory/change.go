package inventory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
	// Note is what the durable copy needs beyond the record (internal, never in JSON): the
	// reservation or the load the change belongs to. nil for every other change.
	Note *Note `json:"-"`
}

// Note ties a change to a reservation step or to a row of a stock snapshot load, so the
// durable copy can keep held reservations and load marks (design §8) and a restore can
// bring them back.
type Note struct {
	// Reservation is the id of the reservation whose hold or end made the change; Status
	// is Held for a hold's change, else the end it reached.
	Reservation string
	Status      ReservationStatus
	// Qty and ExpiresAt are a hold's: the item's quantity and when the hold ends.
	Qty       int64
	ExpiresAt time.Time
	// Load and Line are a load row's: the load id and the row's line.
	Load string
	Line int64
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

// String is the note's text, as the change stream and the copy's ledger keep it (the
// scripts write the same): "h:<qty>:<expires unix ms>:<reservation id>" for a hold,
// "e:<status>:<reservation id>" for an end, "l:<line>:<load id>" for a load row, "" for nil.
func (n *Note) String() string {
	switch {
	case n == nil:
		return ""
	case n.Load != "":
		return "l:" + strconv.FormatInt(n.Line, 10) + ":" + n.Load
	case n.Status == Held:
		return "h:" + strconv.FormatInt(n.Qty, 10) + ":" + strconv.FormatInt(n.ExpiresAt.UnixMilli(), 10) + ":" + n.Reservation
	default:
		return "e:" + string(n.Status) + ":" + n.Reservation
	}
}

// ParseNote reads a note's text (String's); "" is nil.
func ParseNote(s string) (*Note, error) {
	if s == "" {
		return nil, nil
	}
	kind, rest, _ := strings.Cut(s, ":")
	a, rest, ok := strings.Cut(rest, ":")
	bad := fmt.Errorf("malformed change note %q", s)
	if !ok {
		return nil, bad
	}
	switch kind {
	case "l":
		line, err := strconv.ParseInt(a, 10, 64)
		if err != nil || rest == "" {
			return nil, bad
		}
		return &Note{Load: rest, Line: line}, nil
	case "h":
		b, id, ok := strings.Cut(rest, ":")
		qty, err1 := strconv.ParseInt(a, 10, 64)
		ms, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || id == "" {
			return nil, bad
		}
		return &Note{Reservation: id, Status: Held, Qty: qty, ExpiresAt: time.UnixMilli(ms).UTC()}, nil
	case "e":
		st := ReservationStatus(a)
		if (st != Confirmed && st != Cancelled && st != Expired) || rest == "" {
			return nil, bad
		}
		return &Note{Reservation: rest, Status: st}, nil
	}
	return nil, bad
}
