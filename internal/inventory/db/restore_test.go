package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/testenv"
)

// failingTarget is a real Redis target whose restore dies after some pages of records: what
// a killed `jaego restore` leaves behind.
type failingTarget struct {
	*invredis.Store
	pages int
}

var errKilled = errors.New("restore killed")

func (f *failingTarget) PutRecords(ctx context.Context, records []inventory.Stock) error {
	if f.pages--; f.pages < 0 {
		return errKilled
	}
	return f.Store.PutRecords(ctx, records)
}

// TestRestoreResumes: a restore that died half-way is run again without --force and
// finishes exactly (every record as the copy has it, versions rising on, old event ids
// duplicates); a whole Redis (epoch marks there) is refused without --force.
func TestRestoreResumes(t *testing.T) {
	ctx := context.Background()
	c := openCopy(t, "sqlite")
	client, _ := testenv.Redis(t)
	store := invredis.New(client, invredis.Options{Groups: 4, RequireEpoch: true})
	if err := store.MarkEpoch(ctx, false); err != nil {
		t.Fatal(err)
	}
	projecting(t, client, store, c)
	caughtUp(t, c, 0)
	var keys []inventory.Key
	var applied []inventory.Result
	for s := range 5 { // 2,500 records: three pages of the restore
		var events []inventory.Event
		for k := range 500 {
			keys = append(keys, inventory.Key{Store: fmt.Sprintf("F%02d", s), SKU: fmt.Sprintf("K%03d", k)})
			events = append(events, inventorytest.Ev(inventory.Receipt, fmt.Sprintf("F%02d", s), fmt.Sprintf("K%03d", k), int64(1+k%7)))
		}
		applied = append(applied, inventorytest.MustApply(t, store, events...)...)
	}
	caughtUp(t, c, int64(len(applied)))
	want, err := c.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, w := range want {
		if w.Found {
			found++
		}
	}
	if found < 2001 {
		t.Fatalf("%d records in the copy: the restore must take three pages for this test", found)
	}
	locks := lock.New(client, lock.Options{Prefix: "restore-test:lock"})
	if _, err := inventory.Restore(ctx, c, store, inventory.RestoreOptions{Locks: locks}); !errors.Is(err, inventory.ErrTargetWhole) {
		t.Fatalf("a restore into a whole Redis: %v", err)
	}
	if err := client.Do(ctx, client.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := inventory.Restore(ctx, c, &failingTarget{Store: store, pages: 1}, inventory.RestoreOptions{Locks: locks}); !errors.Is(err, errKilled) {
		t.Fatalf("the killed restore: %v", err)
	}
	if lost, err := store.Lost(ctx); err != nil || !lost {
		t.Fatalf("a half-restored Redis is lost still: %v %v", lost, err)
	}
	rep, err := inventory.Restore(ctx, c, store, inventory.RestoreOptions{Locks: locks}) // no Force
	if err != nil {
		t.Fatalf("the restore run again: %v", err)
	}
	if rep.Records != int64(found) {
		t.Fatalf("the second run restored %d records, the copy has %d", rep.Records, found)
	}
	got, err := store.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		w, g := want[i], got[i]
		if w.Found != g.Found || w.Stock.OnHand != g.Stock.OnHand || w.Stock.Reserved != g.Stock.Reserved || w.Stock.Version != g.Stock.Version {
			t.Fatalf("%v after the resumed restore: %+v, the copy has %+v", keys[i], g, w)
		}
	}
	// Old event ids are duplicates; a new event raises the version by one.
	again := MustApplyOne(t, store, applied[0].EventID, applied[0].Stock.Store)
	if again.Status != inventory.Duplicate {
		t.Fatalf("an event applied before the loss, again: %s %v", again.Status, again.Err)
	}
}

// MustApplyOne applies a receipt with event id at store, SKU K000.
func MustApplyOne(t *testing.T, s inventory.StockStore, id, store string) inventory.Result {
	t.Helper()
	e := inventorytest.Ev(inventory.Receipt, store, "K000", 1)
	e.EventID = id
	return inventorytest.MustApply(t, s, e)[0]
}

// TestRestoreBringsBackReservationsAndLoadMarks: held reservations (items, expires_at),
// ended ones, the hold quota's counts and load marks are in the copy, and a restore brings
// them back: a held one is confirmed after it, one due expires exactly once, an ended one
// answers as it was, the same hold again is "again", and the load's rows are duplicates.
func TestRestoreBringsBackReservationsAndLoadMarks(t *testing.T) {
	for name, c := range copies(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			client, _ := testenv.Redis(t)
			var ahead atomic.Int64 // how far this test's clock is ahead of the real one
			now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
			store := invredis.New(client, invredis.Options{Groups: 4, RequireEpoch: true, MaxHoldsPerStore: 2, Now: now})
			if err := store.MarkEpoch(ctx, false); err != nil {
				t.Fatal(err)
			}
			projecting(t, client, store, c)
			caughtUp(t, c, 0)
			var events []inventory.Event
			for _, s := range []string{"R1", "R2", "R3", "R4"} {
				for _, k := range []string{"K1", "K2", "K3"} {
					events = append(events, inventorytest.Ev(inventory.Receipt, s, k, 10))
				}
			}
			changes := int64(len(inventorytest.MustApply(t, store, events...)))
			hold := func(id, st string, d time.Duration, items ...inventory.Item) inventory.Reservation {
				r, _, err := store.Hold(ctx, inventory.HoldRequest{ID: id, Store: st, Items: items, Hold: d})
				if err != nil {
					t.Fatalf("hold %s: %v", id, err)
				}
				changes += int64(len(items))
				return r
			}
			held := hold("A", "R1", time.Hour, inventory.Item{SKU: "K1", Qty: 2}, inventory.Item{SKU: "K2", Qty: 1})
			hold("B", "R2", time.Hour, inventory.Item{SKU: "K1", Qty: 3})
			hold("C", "R3", time.Hour, inventory.Item{SKU: "K2", Qty: 2})
			due := hold("D", "R1", time.Minute, inventory.Item{SKU: "K3", Qty: 4})
			if _, err := store.Confirm(ctx, "B"); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Cancel(ctx, "C"); err != nil {
				t.Fatal(err)
			}
			changes += 2
			rows := []inventory.LoadRow{{Line: 1, Store: "R2", SKU: "K2", OnHand: 7}, {Line: 2, Store: "R4", SKU: "K1", OnHand: 9},
				{Line: 3, Store: "R2", SKU: "K3", OnHand: 10}} // line 3 is unchanged
			if _, err := store.Load(ctx, "L1", rows); err != nil {
				t.Fatal(err)
			}
			changes += 2
			caughtUp(t, c, changes)
			keys := []inventory.Key{{Store: "R1", SKU: "K1"}, {Store: "R1", SKU: "K3"}, {Store: "R2", SKU: "K1"}, {Store: "R4", SKU: "K1"}}
			before, err := store.GetMany(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			if err := client.Do(ctx, client.B().Flushall().Build()).Error(); err != nil {
				t.Fatal(err)
			}
			locks := lock.New(client, lock.Options{Prefix: "restore-test:lock"})
			rep, err := inventory.Restore(ctx, c, store, inventory.RestoreOptions{Locks: locks, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Reservations != 4 || rep.Held != 2 || rep.LoadMarks == 0 {
				t.Fatalf("restored %+v: want 4 reservations, 2 held, the load's marks", rep)
			}
			after, err := store.GetMany(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			for i := range keys {
				if b, a := before[i].Stock, after[i].Stock; b.OnHand != a.OnHand || b.Reserved != a.Reserved || b.Version != a.Version {
					t.Fatalf("%v: %+v before the loss, %+v after the restore", keys[i], b, a)
				}
			}
			for id, want := range map[string]inventory.ReservationStatus{"A": inventory.Held, "B": inventory.Confirmed,
				"C": inventory.Cancelled, "D": inventory.Held} {
				r, err := store.Reservation(ctx, id)
				if err != nil || r.Status != want {
					t.Fatalf("reservation %s after the restore: %+v %v, want %s", id, r, err, want)
				}
			}
			r, again, err := store.Hold(ctx, inventory.HoldRequest{ID: "A", Store: "R1", Items: held.Items, Hold: time.Hour})
			if err != nil || !again || !r.ExpiresAt.Equal(held.ExpiresAt) || len(r.Items) != 2 || r.Items[0] != held.Items[0] {
				t.Fatalf("hold A again after the restore: %+v again=%v %v; was %+v", r, again, err, held)
			}
			if _, _, err := store.Hold(ctx, inventory.HoldRequest{ID: "E", Store: "R1", Items: held.Items, Hold: time.Hour}); jaego.CodeOf(err) != jaego.CodeTooManyHolds {
				t.Fatalf("a third hold at R1 (2 held, quota 2): %v", err)
			}
			if _, _, err := store.Hold(ctx, inventory.HoldRequest{ID: "B", Store: "R4", Items: held.Items, Hold: time.Hour}); jaego.CodeOf(err) != jaego.CodeReservationConflict {
				t.Fatalf("id B at another store after the restore: %v", err)
			}
			// D is due: the sweep expires it once, whatever runs after.
			ahead.Store(int64(time.Until(due.ExpiresAt) + time.Second))
			for range 3 {
				if _, err := store.ExpireDue(ctx, 100); err != nil {
					t.Fatal(err)
				}
			}
			if r, err := store.Reservation(ctx, "D"); err != nil || r.Status != inventory.Expired {
				t.Fatalf("D after the sweeps: %+v %v", r, err)
			}
			if st, err := store.Get(ctx, "R1", "K3"); err != nil || st.Reserved != 0 || st.Version != after[1].Stock.Version+1 {
				t.Fatalf("R1/K3 after D expired: %+v %v (it was %+v)", st, err, after[1].Stock)
			}
			if _, err := store.Confirm(ctx, "A"); err != nil {
				t.Fatalf("confirming A after the restore: %v", err)
			}
			res, err := store.Load(ctx, "L1", rows)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res[:2] {
				if r.Status != inventory.Duplicate {
					t.Fatalf("load row %d again after the restore: %s", rows[i].Line, r.Status)
				}
			}
		})
	}
}

// hookTarget is a real Redis target that runs during once, before its first page of
// records: what happens beside a restore while it reads the copy.
type hookTarget struct {
	*invredis.Store
	during func()
}

func (h *hookTarget) PutRecords(ctx context.Context, records []inventory.Stock) error {
	if h.during != nil {
		h.during()
		h.during = nil
	}
	return h.Store.PutRecords(ctx, records)
}

// TestRestoreFencesTheProjector: a restore reads the copy in many queries while jaego
// serve's projector may still run. A projector that commits a page it read before the loss
// (a hold and its confirm) half-way through the reading, and one that takes the lock anew
// while the restore runs, are both refused: the restored Redis is the copy as it was when
// the restore began, never a reservation confirmed whose stock was not taken (the TestChaos
// failure of 2026-12-04). After the restore, the next projector to take the lock goes on.
func TestRestoreFencesTheProjector(t *testing.T) {
	for name, c := range copies(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			client, _ := testenv.Redis(t)
			store := invredis.New(client, invredis.Options{Groups: 4, RequireEpoch: true})
			const token = 7 // the running projector's
			if _, err := c.Claim(ctx, token); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if err := c.Commit(ctx, token, inventory.Projection{Records: []inventory.Stock{{Store: "R1", SKU: "K1", OnHand: 10, Version: 1, UpdatedAt: now}},
				Cursor: "before", AsOf: now}); err != nil {
				t.Fatal(err)
			}
			// The page the projector read before the loss: X held and confirmed.
			at := now.Add(-72 * time.Hour) // in the ledger's window, out of the feed's retention
			id := func(seq int) string {
				return fmt.Sprintf("%d-%d/0/%s", at.UnixMilli(), seq, at.UTC().Format("20060102"))
			}
			page := inventory.Projection{Cursor: "after", AsOf: now, Changes: []inventory.Change{
				{ID: id(0), Store: "R1", SKU: "K1", Type: inventory.Reserve, OnHand: 10, Reserved: 1, Version: 2, EventID: "rsv-X-hold", At: at,
					Note: &inventory.Note{Reservation: "X", Status: inventory.Held, Qty: 1, ExpiresAt: now.Add(time.Hour)}},
				{ID: id(1), Store: "R1", SKU: "K1", Type: inventory.Fulfill, Delta: -1, OnHand: 9, Reserved: 0, Version: 3, EventID: "rsv-X-confirm", At: at,
					Note: &inventory.Note{Reservation: "X", Status: inventory.Confirmed}},
			}}
			locks := lock.New(client, lock.Options{Prefix: "fence-test:lock"})
			var late, renewed error
			target := &hookTarget{Store: store, during: func() {
				late = c.Commit(ctx, token, page)
				fresh, release, err := locks.Hold(ctx, inventory.ProjectorLock, time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				_, renewed = c.Claim(ctx, fresh)
				_ = release(ctx)
			}}
			if _, err := inventory.Restore(ctx, c, target, inventory.RestoreOptions{Locks: locks}); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(late, invdb.ErrStaleToken) {
				t.Fatalf("the running projector's commit during the restore: %v, want ErrStaleToken", late)
			}
			if !errors.Is(renewed, invdb.ErrStaleToken) {
				t.Fatalf("a projector that took the lock during the restore claimed the copy: %v, want ErrStaleToken", renewed)
			}
			st, err := store.Get(ctx, "R1", "K1")
			if err != nil || st.OnHand != 10 || st.Reserved != 0 || st.Version != 1 {
				t.Fatalf("R1/K1 after the restore: %+v %v, want the copy's 10 on hand at version 1", st, err)
			}
			if r, err := store.Reservation(ctx, "X"); err == nil {
				t.Fatalf("reservation X restored (%+v) from a commit refused during the restore", r)
			}
			next, release, err := locks.Hold(ctx, inventory.ProjectorLock, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer release(ctx)
			if _, err := c.Claim(ctx, next); err != nil {
				t.Fatalf("the projector after the restore (token %d): %v", next, err)
			}
			if err := c.Commit(ctx, next, page); err != nil {
				t.Fatalf("its first commit: %v", err)
			}
		})
	}
}
