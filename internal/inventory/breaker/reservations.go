package breaker

import (
	"context"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// Reservations are the store orders of the request paths behind the breaker, like every
// other Redis call: while it is open (or lost) a hold, confirm or cancel is refused at once
// (503, nothing written) instead of waiting on a hung Redis, and their failures count.
// Reservation reads have no fallback: the copy keeps no reservations yet.
type Reservations struct {
	primary inventory.Reservations
	b       *Breaker
}

var _ inventory.Reservations = (*Reservations)(nil)

// NewReservations guards primary with b.
func NewReservations(primary inventory.Reservations, b *Breaker) *Reservations {
	return &Reservations{primary: primary, b: b}
}

// call runs f through the reservations' breaker.
func call[T any](r *Reservations, f func() (T, error)) (T, error) { return Call(r.b, f) }

// Call runs f, a call to Redis, through b: refused at once while b is open or lost (or too
// many calls are in flight), counted otherwise; an answer that says Redis lost its data
// puts b in its lost state.
func Call[T any](b *Breaker, f func() (T, error)) (T, error) {
	var zero T
	if err := b.Enter(); err != nil {
		return zero, err
	}
	defer b.Leave()
	if err := b.Allow(); err != nil {
		return zero, err
	}
	start := time.Now()
	v, err := f()
	b.Record(err, time.Since(start))
	lostIf(b, err)
	return v, err
}

// Hold implements inventory.Reservations.
func (r *Reservations) Hold(ctx context.Context, req inventory.HoldRequest) (inventory.Reservation, bool, error) {
	type held struct {
		r     inventory.Reservation
		again bool
	}
	h, err := call(r, func() (held, error) {
		res, again, err := r.primary.Hold(ctx, req)
		return held{res, again}, err
	})
	return h.r, h.again, err
}

// Reservation implements inventory.Reservations.
func (r *Reservations) Reservation(ctx context.Context, id string) (inventory.Reservation, error) {
	return call(r, func() (inventory.Reservation, error) { return r.primary.Reservation(ctx, id) })
}

// Confirm implements inventory.Reservations.
func (r *Reservations) Confirm(ctx context.Context, id string) (inventory.Reservation, error) {
	return call(r, func() (inventory.Reservation, error) { return r.primary.Confirm(ctx, id) })
}

// Cancel implements inventory.Reservations.
func (r *Reservations) Cancel(ctx context.Context, id string) (inventory.Reservation, error) {
	return call(r, func() (inventory.Reservation, error) { return r.primary.Cancel(ctx, id) })
}

// Availability implements inventory.Reservations.
func (r *Reservations) Availability(ctx context.Context, items []inventory.Item, stores []string) ([]inventory.StoreAvailability, error) {
	return call(r, func() ([]inventory.StoreAvailability, error) { return r.primary.Availability(ctx, items, stores) })
}

// List implements inventory.Reservations.
func (r *Reservations) List(ctx context.Context, store string, status inventory.ReservationStatus, cursor string, limit int) ([]inventory.Reservation, string, error) {
	type page struct {
		list []inventory.Reservation
		next string
	}
	p, err := call(r, func() (page, error) {
		l, n, err := r.primary.List(ctx, store, status, cursor, limit)
		return page{l, n}, err
	})
	return p.list, p.next, err
}
