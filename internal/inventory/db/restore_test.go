package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
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
