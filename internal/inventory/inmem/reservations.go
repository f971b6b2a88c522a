package inmem

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Store orders in memory (design §12), on the reference rules: each step under the store's
// one lock, each item's change in the log as the Redis script writes it. It is the second
// implementation of inventory.Reservations, held to the same suite
// (inventorytest.Reservations).

var _ inventory.Reservations = (*Store)(nil)

// Hold implements inventory.Reservations.
func (s *Store) Hold(ctx context.Context, req inventory.HoldRequest) (inventory.Reservation, bool, error) {
	if err := req.Validate(); err != nil {
		return inventory.Reservation{}, false, err
	}
	items := inventory.SortedBasket(req.Items)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if r := s.rsv[req.ID]; r != nil {
		s.expireIfDue(r, now)
		switch {
		case r.Store != req.Store:
			return *r, false, jaego.Errorf(jaego.CodeReservationConflict, "reservation %s is a basket at store %s", req.ID, r.Store)
		case !slices.Equal(r.Items, items):
			return *r, false, jaego.Errorf(jaego.CodeReservationConflict, "reservation %s holds another basket", req.ID)
		}
		return *r, true, nil
	}
	held := 0
	for _, r := range s.rsv {
		if r.Store == req.Store && r.Status == inventory.Held {
			held++
		}
	}
	if held >= s.opts.MaxHoldsPerStore {
		return inventory.Reservation{}, false, jaego.Errorf(jaego.CodeTooManyHolds,
			"store %s holds %d reservations, as many as a store may (--max-holds-per-store); confirm or cancel some first", req.Store, held)
	}
	short := &inventory.ShortError{}
	for _, it := range req.Items { // shorts in the order asked, like the script
		st := s.stock[inventory.Key{Store: req.Store, SKU: it.SKU}]
		if a := inventory.AvailableOf(st.OnHand, st.Reserved, st.Safety); a < it.Qty {
			short.Short = append(short.Short, inventory.Short{SKU: it.SKU, Qty: it.Qty, Available: a})
		}
	}
	if len(short.Short) > 0 {
		return inventory.Reservation{}, false, short
	}
	for _, it := range req.Items {
		k := inventory.Key{Store: req.Store, SKU: it.SKU}
		cur := s.stock[k]
		next := cur
		next.Reserved += it.Qty
		s.write(k, cur, next, inventory.Reserve, "rsv-"+req.ID+"-hold")
	}
	ms := func(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }
	r := &inventory.Reservation{ID: req.ID, Store: req.Store, Items: items, Status: inventory.Held,
		ExpiresAt: ms(now.Add(req.Hold)), CreatedAt: ms(now), UpdatedAt: ms(now)}
	s.rsv[req.ID] = r
	s.rsvSeq = append(s.rsvSeq, req.ID)
	s.grown()
	return *r, false, nil
}

// Reservation implements inventory.Reservations.
func (s *Store) Reservation(ctx context.Context, id string) (inventory.Reservation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.lookup(id)
	if err != nil {
		return inventory.Reservation{}, err
	}
	return *r, nil
}

// lookup finds reservation id; the caller holds s.mu.
func (s *Store) lookup(id string) (*inventory.Reservation, error) {
	if err := inventory.CheckReservationID(id); err != nil {
		return nil, err
	}
	r := s.rsv[id]
	if r == nil {
		return nil, &jaego.Error{Code: jaego.CodeNotFound, Detail: "no reservation " + id}
	}
	return r, nil
}

// Confirm implements inventory.Reservations.
func (s *Store) Confirm(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.end(id, inventory.Confirmed)
}

// Cancel implements inventory.Reservations.
func (s *Store) Cancel(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.end(id, inventory.Cancelled)
}

// ExpireDue implements inventory.Expirer: up to limit held reservations past their time
// expire, in creation order.
func (s *Store) ExpireDue(ctx context.Context, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range s.rsvSeq {
		if n == limit {
			break
		}
		if s.expireIfDue(s.rsv[id], s.opts.Now()) {
			n++
		}
	}
	return n, nil
}

// end confirms or cancels id: a reservation past its time expires first and is not held
// any more; a cancelled one cancelled again answers as it is.
func (s *Store) end(id string, to inventory.ReservationStatus) (inventory.Reservation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.lookup(id)
	if err != nil {
		return inventory.Reservation{}, err
	}
	s.expireIfDue(r, s.opts.Now())
	switch {
	case to == inventory.Cancelled && r.Status == inventory.Cancelled:
		return *r, nil
	case r.Status != inventory.Held:
		return *r, jaego.Errorf(jaego.CodeNotHeld, "reservation %s is %s, not held", id, r.Status)
	}
	s.finish(r, to)
	return *r, nil
}

// expireIfDue expires r when it is held past its time.
func (s *Store) expireIfDue(r *inventory.Reservation, now time.Time) bool {
	if r.Status != inventory.Held || now.Before(r.ExpiresAt) {
		return false
	}
	s.finish(r, inventory.Expired)
	return true
}

// finish ends a held reservation: each item released (or, confirmed, fulfilled) with its
// change in the log.
func (s *Store) finish(r *inventory.Reservation, to inventory.ReservationStatus) {
	typ, suffix := inventory.Release, "cancel"
	switch to {
	case inventory.Confirmed:
		typ, suffix = inventory.Fulfill, "confirm"
	case inventory.Expired:
		suffix = "expire"
	}
	for _, it := range r.Items {
		k := inventory.Key{Store: r.Store, SKU: it.SKU}
		cur := s.stock[k]
		next := cur
		next.Reserved = max(0, cur.Reserved-it.Qty) // a release event may have freed some of it already
		if typ == inventory.Fulfill {
			next.OnHand -= it.Qty
		}
		s.write(k, cur, next, typ, "rsv-"+r.ID+"-"+suffix)
	}
	r.Status, r.UpdatedAt = to, s.opts.Now().Truncate(time.Millisecond).UTC()
	s.grown()
}

// Availability implements inventory.Reservations.
func (s *Store) Availability(ctx context.Context, items []inventory.Item, stores []string) ([]inventory.StoreAvailability, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]inventory.StoreAvailability, len(stores))
	for i, st := range stores {
		a := inventory.StoreAvailability{Store: st, Short: []inventory.Short{}}
		for _, it := range items {
			rec := s.stock[inventory.Key{Store: st, SKU: it.SKU}]
			if av := inventory.AvailableOf(rec.OnHand, rec.Reserved, rec.Safety); av < it.Qty {
				a.Short = append(a.Short, inventory.Short{SKU: it.SKU, Qty: it.Qty, Available: av})
			}
		}
		a.Complete = len(a.Short) == 0
		out[i] = a
	}
	inventory.CompleteFirst(out)
	return out, nil
}

// List implements inventory.Reservations: the cursor is how many reservations of the whole
// store's list were looked at.
func (s *Store) List(ctx context.Context, store string, status inventory.ReservationStatus, cursor string, limit int) ([]inventory.Reservation, string, error) {
	if err := jaego.CheckStore(store); err != nil {
		return nil, "", err
	}
	if err := inventory.CheckStatus(status); err != nil {
		return nil, "", err
	}
	from := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			return nil, "", &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor", Detail: "malformed cursor"}
		}
		from = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []inventory.Reservation
	for i := from; i < len(s.rsvSeq); i++ {
		r := s.rsv[s.rsvSeq[i]]
		if r.Store != store || status != "" && r.Status != status {
			continue
		}
		out = append(out, *r)
		if len(out) == limit {
			if i+1 < len(s.rsvSeq) {
				return out, fmt.Sprint(i + 1), nil
			}
			break
		}
	}
	return out, "", nil
}
