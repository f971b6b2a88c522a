package inventory_test

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
)

// SweepExpiries (every 200 ms, as jaego serve runs it) expires each reservation within one
// period of its time and not before, in a synctest bubble: two hours of holds checked in
// milliseconds.
func TestSweepExpiries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := inmem.New(inmem.Options{})
		inventorytest.MustApply(t, store, inventorytest.Ev(inventory.Receipt, "S1", "A", 10))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		holds := map[string]time.Duration{"short": time.Minute, "default": inventory.DefaultHold, "long": 2 * time.Hour}
		for id, d := range holds {
			if _, _, err := store.Hold(ctx, inventory.HoldRequest{ID: id, Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 1}}, Hold: d}); err != nil {
				t.Fatal(err)
			}
		}
		var sweeps atomic.Int64
		go inventory.SweepExpiries(ctx, store, 200*time.Millisecond, func(context.Context) error { sweeps.Add(1); return nil }, slog.New(slog.DiscardHandler))
		start := time.Now()
		for _, step := range []struct {
			at      time.Duration
			expired []string
		}{{time.Minute - time.Millisecond, nil}, {time.Minute + 200*time.Millisecond, []string{"short"}},
			{15*time.Minute - time.Millisecond, []string{"short"}}, {15*time.Minute + 200*time.Millisecond, []string{"short", "default"}},
			{2*time.Hour + 200*time.Millisecond, []string{"short", "default", "long"}}} {
			time.Sleep(step.at - time.Since(start))
			synctest.Wait()
			for id := range holds {
				r, err := store.Reservation(ctx, id)
				if want := slices.Contains(step.expired, id); err != nil || (r.Status == inventory.Expired) != want {
					t.Fatalf("at %s, %s is %s (%v); expired ones should be %v", step.at, id, r.Status, err, step.expired)
				}
			}
		}
		if st, err := store.Get(ctx, "S1", "A"); err != nil || st.Reserved != 0 {
			t.Fatalf("S1/A after every hold expired: %+v %v", st, err)
		}
		if n := sweeps.Load(); n != int64((2*time.Hour+200*time.Millisecond)/(200*time.Millisecond)) {
			t.Fatalf("%d sweeps in 2 h 0.2 s, want one every 200 ms", n)
		}
		cancel()
	})
}
