package inventory

import (
	"fmt"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// EventType names what happened to the stock (design §2).
type EventType string

// The eleven stock event types.
const (
	Sale       EventType = "sale"        // on_hand −= qty
	SaleCancel EventType = "sale_cancel" // on_hand += qty
	Receipt    EventType = "receipt"     // on_hand += qty (logistics in)
	Return     EventType = "return"      // on_hand += qty (customer return)
	Disposal   EventType = "disposal"    // on_hand −= qty (damaged, expired)
	Adjust     EventType = "adjust"      // on_hand += qty, signed (back-office correction)
	Set        EventType = "set"         // on_hand = qty (stock count), optional CAS
	SetSafety  EventType = "set_safety"  // safety = qty
	Reserve    EventType = "reserve"     // reserved += qty, refused when available < qty
	Release    EventType = "release"     // reserved −= qty, refused when reserved < qty
	Fulfill    EventType = "fulfill"     // reserved −= qty and on_hand −= qty, refused when reserved < qty
)

// EventTypes lists every event type, in the order of the design table.
var EventTypes = []EventType{Sale, SaleCancel, Receipt, Return, Disposal, Adjust, Set, SetSafety, Reserve, Release, Fulfill}

// MaxQty bounds |qty| and |on_hand| so that counters stay exact in every store (Lua numbers
// are doubles), and so that every state the stores can reach can be loaded again (jaego
// load takes on_hand within ±MaxQty): an event that would take on_hand beyond it is refused
// (stock_out_of_range). The apply script holds the same number.
const MaxQty = 1_000_000_000

// Event is one change to one store × SKU, the same JSON on Kafka and over HTTP.
type Event struct {
	EventID         string    `json:"event_id"`
	Type            EventType `json:"type"`
	Store           string    `json:"store"`
	SKU             string    `json:"sku"`
	Qty             int64     `json:"qty"`
	ExpectedVersion *int64    `json:"expected_version,omitempty"`
	OccurredAt      time.Time `json:"occurred_at,omitzero"`
	Source          string    `json:"source,omitempty"`
	// Origin is where the event was read from Kafka (the consumer sets it; never in JSON):
	// the change records it, so that after a loss of Redis the consumer group can resume
	// from the last offset the durable copy holds.
	Origin *Origin `json:"-"`
}

// Origin is a Kafka record's place: its partition and offset.
type Origin struct {
	Partition int32
	Offset    int64
}

// Validate checks every field of e against design §2. A valid event may still be refused
// by the state it meets (see Apply); an invalid one must never reach a store.
func (e Event) Validate() error {
	if !jaego.ValidEventID(e.EventID) {
		return jaego.Invalidf("event_id", "event_id must be 1-128 printable ASCII characters")
	}
	if err := jaego.CheckStore(e.Store); err != nil {
		return err
	}
	if err := jaego.CheckSKU(e.SKU); err != nil {
		return err
	}
	if len(e.Source) > 64 {
		return jaego.Invalidf("source", "source must be at most 64 characters")
	}
	if e.ExpectedVersion != nil && e.Type != Set {
		return jaego.Invalidf("expected_version", "expected_version is only allowed on set events")
	}
	if e.ExpectedVersion != nil && *e.ExpectedVersion < 0 {
		return jaego.Invalidf("expected_version", "expected_version must be >= 0")
	}
	if e.Qty > MaxQty || e.Qty < -MaxQty {
		return jaego.Invalidf("qty", "qty must be within ±%d", MaxQty)
	}
	switch e.Type {
	case Sale, SaleCancel, Receipt, Return, Disposal, Reserve, Release, Fulfill:
		if e.Qty <= 0 {
			return jaego.Invalidf("qty", "qty of a %s event must be > 0, got %d", e.Type, e.Qty)
		}
	case Adjust:
		if e.Qty == 0 {
			return jaego.Invalidf("qty", "qty of an adjust event must be non-zero")
		}
	case Set, SetSafety:
		if e.Qty < 0 {
			return jaego.Invalidf("qty", "qty of a %s event must be >= 0, got %d", e.Type, e.Qty)
		}
	case "":
		return jaego.Invalidf("type", "type is required")
	default:
		return jaego.Invalidf("type", "unknown event type %q", e.Type)
	}
	return nil
}

// Apply is the reference model of one event: the state after e meets s, or the refusal.
// It does not touch Version, UpdatedAt or idempotency; stores implement the same rules
// atomically and are tested against this function.
func Apply(s Stock, e Event) (Stock, error) {
	q := e.Qty
	switch e.Type {
	case Sale, Disposal:
		s.OnHand -= q
	case SaleCancel, Receipt, Return, Adjust:
		s.OnHand += q
	case Set:
		if e.ExpectedVersion != nil && *e.ExpectedVersion != s.Version {
			return s, &jaego.Error{Code: jaego.CodeVersionConflict, Field: "expected_version",
				Detail: fmt.Sprintf("expected version %d, stock is at version %d", *e.ExpectedVersion, s.Version)}
		}
		s.OnHand = q
	case SetSafety:
		s.Safety = q
	case Reserve:
		if avail := AvailableOf(s.OnHand, s.Reserved, s.Safety); avail < q {
			return s, &jaego.Error{Code: jaego.CodeInsufficientStock, Field: "qty",
				Detail: fmt.Sprintf("cannot reserve %d: %d available", q, avail)}
		}
		s.Reserved += q
	case Release, Fulfill:
		if s.Reserved < q {
			return s, &jaego.Error{Code: jaego.CodeInsufficientReserved, Field: "qty",
				Detail: fmt.Sprintf("cannot %s %d: %d reserved", e.Type, q, s.Reserved)}
		}
		s.Reserved -= q
		if e.Type == Fulfill {
			s.OnHand -= q
		}
	default:
		return s, jaego.Invalidf("type", "unknown event type %q", e.Type)
	}
	if s.OnHand > MaxQty || s.OnHand < -MaxQty { // the bound jaego load takes too: any state can be reloaded
		return s, &jaego.Error{Code: jaego.CodeOutOfRange, Field: "qty",
			Detail: fmt.Sprintf("on_hand would be %d, beyond ±%d", s.OnHand, MaxQty)}
	}
	return s.WithAvailable(), nil
}
