package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Store orders (design §12): a basket held at one store, all of it or nothing, until it is
// confirmed (fulfilled), cancelled (released) or expires (released by itself).

// ReservationStatus is where a reservation is in its life: held, then exactly one of the
// three ends.
type ReservationStatus string

// The statuses of a reservation.
const (
	Held      ReservationStatus = "held"
	Confirmed ReservationStatus = "confirmed"
	Cancelled ReservationStatus = "cancelled"
	Expired   ReservationStatus = "expired"
)

// Limits of a reservation.
const (
	MaxBasket   = 100              // items of one reservation or availability request
	DefaultHold = 15 * time.Minute // hold when the request names none
	MaxHold     = 24 * time.Hour
)

// Item is one line of a basket.
type Item struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

// Reservation is a basket held at a store.
type Reservation struct {
	ID        string            `json:"reservation_id"`
	Store     string            `json:"store"`
	Items     []Item            `json:"items"`
	Status    ReservationStatus `json:"status"`
	ExpiresAt time.Time         `json:"expires_at"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// HoldRequest asks to hold Items at Store for Hold, under the caller's ID.
type HoldRequest struct {
	ID    string
	Store string
	Items []Item
	Hold  time.Duration
}

var reservationIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)

// CheckReservationID checks a reservation id: 1–100 of A–Z a–z 0–9 _ . : -, so that it
// fits a URL path and the event ids of its changes (rsv-<id>-hold, …).
func CheckReservationID(id string) error {
	if !reservationIDRE.MatchString(id) {
		return jaego.Invalidf("reservation_id", "reservation_id must match %s", reservationIDRE)
	}
	return nil
}

// CheckBasket checks 1–MaxBasket items: valid SKUs, each once, qty 1..MaxQty.
func CheckBasket(items []Item) error {
	if len(items) == 0 || len(items) > MaxBasket {
		return jaego.Invalidf("items", "give 1 to %d items, got %d", MaxBasket, len(items))
	}
	seen := map[string]bool{}
	for i, it := range items {
		if err := jaego.CheckSKU(it.SKU); err != nil {
			return err
		}
		if seen[it.SKU] {
			return jaego.Invalidf("items", "items[%d]: sku %s is given twice; give each sku once with its whole qty", i, it.SKU)
		}
		seen[it.SKU] = true
		if it.Qty < 1 || it.Qty > MaxQty {
			return jaego.Invalidf("items", "items[%d]: qty must be 1..%d, got %d", i, MaxQty, it.Qty)
		}
	}
	return nil
}

// SortedBasket is items ordered by SKU: the one form of a basket, so that the same basket
// in another item order is the same basket.
func SortedBasket(items []Item) []Item {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.SKU, b.SKU) })
	return out
}

// CheckHold checks a hold that was given: 1s..MaxHold (0s is not "the default").
func CheckHold(d time.Duration) error {
	if d < time.Second || d > MaxHold {
		return jaego.Invalidf("hold", "hold must be 1s..%s, got %s", MaxHold, d)
	}
	return nil
}

// Validate checks a hold request; a zero Hold (none given) becomes DefaultHold.
func (h *HoldRequest) Validate() error {
	if err := CheckReservationID(h.ID); err != nil {
		return err
	}
	if err := jaego.CheckStore(h.Store); err != nil {
		return err
	}
	if h.Hold == 0 {
		h.Hold = DefaultHold
	}
	if err := CheckHold(h.Hold); err != nil {
		return err
	}
	return CheckBasket(h.Items)
}

// Short is an item a store cannot supply: what was asked and what is available.
type Short struct {
	SKU       string `json:"sku"`
	Qty       int64  `json:"qty"`
	Available int64  `json:"available"`
}

// ShortError is a hold refused for lack of stock (insufficient_stock), with every item
// that was short. Nothing was held.
type ShortError struct{ Short []Short }

func (e *ShortError) Error() string {
	parts := make([]string, len(e.Short))
	for i, s := range e.Short {
		parts[i] = fmt.Sprintf("%s: %d asked, %d available", s.SKU, s.Qty, s.Available)
	}
	return "the store cannot hold the whole basket (" + strings.Join(parts, "; ") + "); nothing was held"
}

// Unwrap makes a ShortError an insufficient_stock error.
func (e *ShortError) Unwrap() error {
	return &jaego.Error{Code: jaego.CodeInsufficientStock, Detail: e.Error()}
}

// CompleteFirst orders an availability answer (design §12): the stores that can supply the
// whole basket first, then the others, each in the order given (the caller's, by distance).
func CompleteFirst(stores []StoreAvailability) {
	slices.SortStableFunc(stores, func(x, y StoreAvailability) int {
		switch {
		case x.Complete == y.Complete:
			return 0
		case x.Complete:
			return -1
		}
		return 1
	})
}

// StoreAvailability says whether a store can supply a whole basket, and what it lacks.
type StoreAvailability struct {
	Store    string  `json:"store"`
	Complete bool    `json:"complete"`
	Short    []Short `json:"short"`
}

// Reservations holds baskets (design §12). Holding, confirming, cancelling and expiring are
// each one atomic step at the reservation's store, and each item's change is in the change
// feed as reserve, fulfill or release with the reservation id in its event id.
type Reservations interface {
	// Hold holds the whole basket or nothing (a *ShortError). The same id again answers
	// the reservation it made (again true), whatever its status; with another store or
	// basket it is a reservation_conflict.
	Hold(ctx context.Context, req HoldRequest) (r Reservation, again bool, err error)
	Reservation(ctx context.Context, id string) (Reservation, error)
	// Confirm fulfills every item of a held reservation; reservation_not_held otherwise.
	Confirm(ctx context.Context, id string) (Reservation, error)
	// Cancel releases every item of a held reservation; a cancelled one answers as it is;
	// a confirmed or expired one is reservation_not_held.
	Cancel(ctx context.Context, id string) (Reservation, error)
	// Availability says, for each store in order, whether it can supply the whole basket.
	Availability(ctx context.Context, items []Item, stores []string) ([]StoreAvailability, error)
	// List pages through a store's reservations, oldest first, those of status only when
	// status is not empty: up to limit, and the cursor of the next page ("" at the end).
	List(ctx context.Context, store string, status ReservationStatus, cursor string, limit int) ([]Reservation, string, error)
}

// CheckStatus checks a status filter ("" is every status).
func CheckStatus(s ReservationStatus) error {
	switch s {
	case "", Held, Confirmed, Cancelled, Expired:
		return nil
	}
	return jaego.Invalidf("status", "status must be held, confirmed, cancelled or expired, got %q", s)
}

// Expirer is a reservation store's sweep: ExpireDue expires up to limit held reservations
// past their time (each exactly once, however many sweep at once) and says how many.
type Expirer interface {
	ExpireDue(ctx context.Context, limit int) (int, error)
}

// sweepRound is how many reservations one ExpireDue call of a sweep expires at most.
const sweepRound = 500

// SweepExpiries expires due reservations every period until ctx ends: each sweep calls
// ExpireDue in rounds of 500 until a round expires fewer, then after (metrics, say).
// Failures are logged at most every 10 s; the next period retries.
func SweepExpiries(ctx context.Context, e Expirer, every time.Duration, after func(context.Context) error, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for {
			n, err := e.ExpireDue(ctx, sweepRound)
			if err == nil && n < sweepRound && after != nil {
				err = after(ctx)
			}
			if err != nil && ctx.Err() == nil && time.Since(lastLog) > 10*time.Second {
				log.Warn("reservation expiry sweep failed; retrying", "err", err)
				lastLog = time.Now()
			}
			if err != nil || n < sweepRound {
				break
			}
		}
	}
}
