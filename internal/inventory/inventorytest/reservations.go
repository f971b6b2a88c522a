package inventorytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// ReservationsOptions is what a reservation store of the suite is made with.
type ReservationsOptions struct {
	Now              func() time.Time // the clock of holds and expiries; the suite moves it
	MaxHoldsPerStore int              // 0: the implementation's default
}

// NewReservations returns an empty reservation store private to the test, and the stock
// store it holds baskets in.
type NewReservations func(t *testing.T, o ReservationsOptions) (inventory.Reservations, inventory.StockStore)

// Clock is a stopped clock a test moves by hand.
type Clock struct{ ms atomic.Int64 }

// NewClock starts a Clock at now.
func NewClock() *Clock {
	c := &Clock{}
	c.ms.Store(time.Now().UnixMilli())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// Reservations is the shared suite of inventory.Reservations (design §12): every
// implementation (Redis standalone, Cluster and embedded; in memory) passes it.
func Reservations(t *testing.T, newRes NewReservations) {
	t.Run("IDAcrossStores", func(t *testing.T) { t.Parallel(); testReservationIDs(t, newRes) })
	t.Run("Quota", func(t *testing.T) { t.Parallel(); testHoldQuota(t, newRes) })
	t.Run("ExpiryOnTheClock", func(t *testing.T) { t.Parallel(); testReservationExpiry(t, newRes) })
	t.Run("List", func(t *testing.T) { t.Parallel(); testReservationList(t, newRes) })
}

func stockAt(t *testing.T, s inventory.StockStore, store, sku string) inventory.Stock {
	t.Helper()
	st, err := s.Get(context.Background(), store, sku)
	if err != nil {
		t.Fatalf("%s/%s: %v", store, sku, err)
	}
	return st
}

// testReservationIDs: a reservation id is unique across the deployment. Eight concurrent
// holds of one id at eight stores make one reservation, never two; a hold that was short
// leaves the id free for another store; the same basket in another order is the same basket.
func testReservationIDs(t *testing.T, newRes NewReservations) {
	ctx := context.Background()
	r, s := newRes(t, ReservationsOptions{})
	stores := []string{"S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"}
	for _, st := range stores {
		MustApply(t, s, Ev(inventory.Receipt, st, "A", 10000), Ev(inventory.Receipt, st, "B", 10000))
	}
	for round := range 35 {
		id := fmt.Sprintf("order-%d", round)
		var held atomic.Int64
		var winner atomic.Value
		var wg sync.WaitGroup
		for _, st := range stores {
			wg.Go(func() {
				_, again, err := r.Hold(ctx, inventory.HoldRequest{ID: id, Store: st, Items: []inventory.Item{{SKU: "A", Qty: 1}}})
				switch {
				case err == nil && !again:
					held.Add(1)
					winner.Store(st)
				case err == nil:
					t.Errorf("%s at %s: again on a new id", id, st)
				case jaego.CodeOf(err) != jaego.CodeReservationConflict:
					t.Errorf("%s at %s: %v", id, st, err)
				}
			})
		}
		wg.Wait()
		if held.Load() != 1 {
			t.Fatalf("%s: held %d times", id, held.Load())
		}
		got, err := r.Reservation(ctx, id)
		if err != nil || got.Store != winner.Load() || got.Status != inventory.Held {
			t.Fatalf("%s: %+v %v, want held at %v", id, got, err, winner.Load())
		}
	}
	var reserved int64
	for _, st := range stores {
		reserved += stockAt(t, s, st, "A").Reserved
	}
	if reserved != 35 {
		t.Fatalf("%d reserved across the stores, want 35 (one per id)", reserved)
	}
	if _, _, err := r.Hold(ctx, inventory.HoldRequest{ID: "moved", Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 1 << 20}}}); jaego.CodeOf(err) != jaego.CodeInsufficientStock {
		t.Fatalf("short hold: %v", err)
	}
	basket := []inventory.Item{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 1}}
	if got, again, err := r.Hold(ctx, inventory.HoldRequest{ID: "moved", Store: "S2", Items: basket}); err != nil || again || got.Store != "S2" {
		t.Fatalf("hold at S2 after a short one at S1: %+v %v %v", got, again, err)
	}
	reversed := []inventory.Item{basket[1], basket[0]}
	if got, again, err := r.Hold(ctx, inventory.HoldRequest{ID: "moved", Store: "S2", Items: reversed}); err != nil || !again || got.Status != inventory.Held {
		t.Fatalf("the same basket in another order: %+v %v %v", got, again, err)
	}
	if _, _, err := r.Hold(ctx, inventory.HoldRequest{ID: "moved", Store: "S1", Items: basket}); jaego.CodeOf(err) != jaego.CodeReservationConflict {
		t.Fatalf("the held id at another store: %v", err)
	}
}

// testHoldQuota: a store holds at most MaxHoldsPerStore reservations; the next is
// too_many_holds and holds nothing; an ended one frees its place; other stores are not
// counted against it.
func testHoldQuota(t *testing.T, newRes NewReservations) {
	ctx := context.Background()
	r, s := newRes(t, ReservationsOptions{MaxHoldsPerStore: 3})
	MustApply(t, s, Ev(inventory.Receipt, "Q1", "A", 100), Ev(inventory.Receipt, "Q2", "A", 100))
	hold := func(id, store string) error {
		_, _, err := r.Hold(ctx, inventory.HoldRequest{ID: id, Store: store, Items: []inventory.Item{{SKU: "A", Qty: 1}}})
		return err
	}
	for i := range 3 {
		if err := hold(fmt.Sprintf("q-%d", i), "Q1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := hold("q-3", "Q1"); jaego.CodeOf(err) != jaego.CodeTooManyHolds {
		t.Fatalf("fourth hold: %v", err)
	}
	if a := stockAt(t, s, "Q1", "A"); a.Reserved != 3 {
		t.Fatalf("reserved %d after a refused hold, want 3", a.Reserved)
	}
	if err := hold("q-other", "Q2"); err != nil {
		t.Fatalf("another store: %v", err)
	}
	if _, err := r.Confirm(ctx, "q-0"); err != nil {
		t.Fatal(err)
	}
	if err := hold("q-3", "Q1"); err != nil {
		t.Fatalf("after a confirm freed a place: %v", err)
	}
}

// testReservationExpiry: on a stopped clock nothing expires early; past its time a held
// reservation is not held any more (a confirm finds it expired, its items released once),
// and a cancel of it answers not held too.
func testReservationExpiry(t *testing.T, newRes NewReservations) {
	ctx := context.Background()
	clk := NewClock()
	r, s := newRes(t, ReservationsOptions{Now: clk.Now})
	MustApply(t, s, Ev(inventory.Receipt, "X1", "A", 10))
	got, _, err := r.Hold(ctx, inventory.HoldRequest{ID: "x-1", Store: "X1", Items: []inventory.Item{{SKU: "A", Qty: 4}}, Hold: time.Minute})
	if err != nil || !got.ExpiresAt.Equal(clk.Now().Add(time.Minute).Truncate(time.Millisecond)) {
		t.Fatalf("hold: %+v %v", got, err)
	}
	clk.Advance(59 * time.Second)
	if got, err := r.Reservation(ctx, "x-1"); err != nil || got.Status != inventory.Held {
		t.Fatalf("a second before its time: %+v %v", got, err)
	}
	clk.Advance(2 * time.Second)
	got, err = r.Confirm(ctx, "x-1")
	if jaego.CodeOf(err) != jaego.CodeNotHeld || got.Status != inventory.Expired {
		t.Fatalf("confirm past its time: %+v %v", got, err)
	}
	if _, err := r.Cancel(ctx, "x-1"); jaego.CodeOf(err) != jaego.CodeNotHeld {
		t.Fatalf("cancel of an expired one: %v", err)
	}
	if a := stockAt(t, s, "X1", "A"); a.Reserved != 0 || a.OnHand != 10 || a.Version != 3 {
		t.Fatalf("after the expiry: %+v (one hold, one release)", a)
	}
}

// testReservationList: a store's reservations in pages, oldest first, filtered by status;
// other stores' are not in it; a malformed cursor is invalid_cursor.
func testReservationList(t *testing.T, newRes NewReservations) {
	ctx := context.Background()
	clk := NewClock()
	r, s := newRes(t, ReservationsOptions{Now: clk.Now})
	MustApply(t, s, Ev(inventory.Receipt, "L1", "A", 100), Ev(inventory.Receipt, "L2", "A", 100))
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("list-%d", i)
		if _, _, err := r.Hold(ctx, inventory.HoldRequest{ID: id, Store: "L1", Items: []inventory.Item{{SKU: "A", Qty: 1}}}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			clk.Advance(time.Millisecond) // some share a millisecond, some do not
		}
		want = append(want, id)
	}
	if _, _, err := r.Hold(ctx, inventory.HoldRequest{ID: "elsewhere", Store: "L2", Items: []inventory.Item{{SKU: "A", Qty: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Confirm(ctx, "list-2"); err != nil {
		t.Fatal(err)
	}
	page := func(status inventory.ReservationStatus, limit int) []string {
		var ids []string
		cursor := ""
		for range 20 {
			list, next, err := r.List(ctx, "L1", status, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range list {
				if status != "" && got.Status != status || got.Store != "L1" {
					t.Fatalf("listed %+v", got)
				}
				ids = append(ids, got.ID)
			}
			if cursor = next; cursor == "" {
				return ids
			}
		}
		t.Fatalf("the list did not end")
		return nil
	}
	if all := page("", 2); fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("every reservation of L1: %v, want %v", all, want)
	}
	if held := page(inventory.Held, 3); len(held) != 6 || slices.Contains(held, "list-2") {
		t.Fatalf("held at L1: %v", held)
	}
	if got := page(inventory.Confirmed, 1); fmt.Sprint(got) != "[list-2]" {
		t.Fatalf("confirmed at L1: %v", got)
	}
	if _, _, err := r.List(ctx, "L1", "", "nonsense", 2); jaego.CodeOf(err) != jaego.CodeInvalidCursor {
		t.Fatalf("malformed cursor: %v", err)
	}
	var e *jaego.Error
	if _, _, err := r.List(ctx, "L1", "gone", "", 2); !errors.As(err, &e) || e.Code != jaego.CodeInvalid {
		t.Fatalf("unknown status: %v", err)
	}
}
