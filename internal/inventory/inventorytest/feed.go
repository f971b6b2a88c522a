package inventorytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Feed is a change feed under test with the store that writes it.
type Feed struct {
	Store inventory.StockStore
	Feed  inventory.ChangeFeed
	// Ahead moves the feed's clock forward by d, so that a range ending now is over
	// (complete) without waiting for it.
	Ahead func(d time.Duration)
}

// NewFeed returns an empty feed and store private to the test, whose clock runs with the
// wall clock until Ahead moves it.
type NewFeed func(t *testing.T) Feed

// ChangeFeed runs the shared change-feed suite (inventory.ChangeFeed's contract).
func ChangeFeed(t *testing.T, newFeed NewFeed, size ...Size) {
	scale := scaleOf(size)
	t.Run("ExactlyOnceAnyPageSize", func(t *testing.T) { t.Parallel(); testFeedExactlyOnce(t, newFeed(t), scale(2000)) })
	t.Run("OpenUntilOver", func(t *testing.T) { t.Parallel(); testFeedOpenUntilOver(t, newFeed(t)) })
	t.Run("BadCursorAndExpired", func(t *testing.T) { t.Parallel(); testFeedErrors(t, newFeed(t)) })
	t.Run("WaitWakes", func(t *testing.T) { t.Parallel(); testFeedWait(t, newFeed(t)) })
}

// ApplyRandom applies n random events (some refused) from workers goroutines to stores
// (F00, F01, …) × skus (K000, …) and returns the applied results; seed makes the draw.
func ApplyRandom(t *testing.T, s inventory.StockStore, workers, n, stores, skus int, seed uint64) []inventory.Result {
	var mu sync.Mutex
	var applied []inventory.Result
	var wg sync.WaitGroup
	types := []inventory.EventType{inventory.Sale, inventory.Receipt, inventory.Receipt, inventory.Reserve, inventory.Release, inventory.Adjust, inventory.SetSafety}
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for range n / workers {
				typ := types[rng.IntN(len(types))]
				qty := int64(1 + rng.IntN(4))
				if typ == inventory.SetSafety {
					qty = int64(rng.IntN(2))
				}
				res, err := s.Apply(context.Background(), []inventory.Event{Ev(typ, fmt.Sprintf("F%02d", rng.IntN(stores)), fmt.Sprintf("K%03d", rng.IntN(skus)), qty)})
				if err != nil {
					t.Errorf("apply: %v", err)
					return
				}
				if res[0].Status == inventory.Applied {
					mu.Lock()
					applied = append(applied, res[0])
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return applied
}

// readPages reads [from, to) in pages of limit from cursor to cursor; it returns the
// changes and the number of pages.
func readPages(t *testing.T, f inventory.ChangeFeed, from, to time.Time, limit int) ([]inventory.Change, int) {
	t.Helper()
	var all []inventory.Change
	cursor, pages := "", 0
	for {
		page, err := f.Changes(context.Background(), from, to, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Changes) > limit {
			t.Fatalf("page of %d changes, limit %d", len(page.Changes), limit)
		}
		all = append(all, page.Changes...)
		if pages++; pages > 100000 {
			t.Fatal("no end of range")
		}
		if cursor = page.Next; cursor == "" {
			return all, pages
		}
	}
}

// CheckChanges fails the test unless got holds every applied result exactly once, with the
// record after it, and every store × SKU's changes in apply order (versions 1, 2, 3, …).
func CheckChanges(t *testing.T, got []inventory.Change, applied []inventory.Result) {
	t.Helper()
	want := map[string]inventory.Stock{}
	for _, r := range applied {
		want[r.Stock.Store+"/"+r.EventID] = r.Stock
	}
	seen := map[string]bool{}
	last := map[inventory.Key]int64{}
	for _, c := range got {
		id := c.Store + "/" + c.EventID
		st, ok := want[id]
		if !ok {
			t.Fatalf("change of an unknown or refused event %s", id)
		}
		if seen[id] {
			t.Fatalf("event %s twice in the feed", id)
		}
		seen[id] = true
		if c.Version != st.Version || c.OnHand != st.OnHand || c.Reserved != st.Reserved || c.Safety != st.Safety || c.SKU != st.SKU || !c.At.Equal(st.UpdatedAt) {
			t.Fatalf("change %+v does not match the apply result %+v", c, st)
		}
		k := inventory.Key{Store: c.Store, SKU: c.SKU}
		if c.Version != last[k]+1 {
			t.Fatalf("%s/%s: version %d after %d", c.Store, c.SKU, c.Version, last[k])
		}
		last[k] = c.Version
	}
	if len(seen) != len(want) {
		t.Fatalf("%d of %d applied events in the feed", len(seen), len(want))
	}
}

// testFeedExactlyOnce: 16 writers apply 2,000 random events; once the range is over, pages
// of any size and the streamed read all return every applied change once, in the same
// order.
func testFeedExactlyOnce(t *testing.T, f Feed, perWriter int) {
	from := time.Now().Add(-time.Second)
	applied := ApplyRandom(t, f.Store, 16, perWriter, 6, 20, 7)
	to := time.Now().Add(time.Millisecond)
	f.Ahead(time.Minute) // past the range end and any settling time
	var streamed []inventory.Change
	next, err := f.Feed.StreamChanges(context.Background(), from, to, "", func(b []inventory.Change) error {
		streamed = append(streamed, b...)
		return nil
	})
	if err != nil || next != "" {
		t.Fatalf("streamed read of a complete range: next %q, %v", next, err)
	}
	CheckChanges(t, streamed, applied)
	for _, limit := range []int{1, 13, 5000} {
		got, pages := readPages(t, f.Feed, from, to, limit)
		CheckChanges(t, got, applied)
		if limit == 5000 && pages != 1 {
			t.Errorf("%d pages for a limit above the range", pages)
		}
		for i := range got {
			if got[i].ID != streamed[i].ID {
				t.Fatalf("limit %d: change %d is %s, the streamed read says %s", limit, i, got[i].ID, streamed[i].ID)
			}
		}
	}
}

// testFeedOpenUntilOver: a range that is not over always has a next cursor, which returns
// what is applied later; once over, the cursor ends.
func testFeedOpenUntilOver(t *testing.T, f Feed) {
	from := time.Now().Add(-time.Second)
	to := time.Now().Add(time.Hour)
	first := MustApply(t, f.Store, Ev(inventory.Receipt, "O1", "K1", 3))
	page, err := f.Feed.Changes(context.Background(), from, to, "", 100)
	if err != nil || page.Next == "" {
		t.Fatalf("a range not over: next %q, %v", page.Next, err)
	}
	CheckChanges(t, page.Changes, first)
	second := MustApply(t, f.Store, Ev(inventory.Sale, "O1", "K1", 1))
	page, err = f.Feed.Changes(context.Background(), time.Time{}, time.Time{}, page.Next, 100)
	if err != nil || page.Next == "" || len(page.Changes) != 1 || page.Changes[0].EventID != second[0].EventID {
		t.Fatalf("after the cursor: %+v, %v; want the later sale", page, err)
	}
	f.Ahead(2 * time.Hour)
	page, err = f.Feed.Changes(context.Background(), time.Time{}, time.Time{}, page.Next, 100)
	if err != nil || page.Next != "" || len(page.Changes) != 0 {
		t.Fatalf("once the range is over: %+v, %v; want the end", page, err)
	}
}

// testFeedErrors: a malformed cursor or one of another range is invalid_cursor; a range
// before the retention is range_expired.
func testFeedErrors(t *testing.T, f Feed) {
	ctx := context.Background()
	now := time.Now()
	for _, bad := range []string{"!!", "e30", "bm90LWEtY3Vyc29y"} {
		if _, err := f.Feed.Changes(ctx, time.Time{}, time.Time{}, bad, 10); !errors.Is(err, inventory.ErrBadCursor) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	page, err := f.Feed.Changes(ctx, now.Add(-time.Minute), now.Add(time.Minute), "", 10)
	if err != nil || page.Next == "" {
		t.Fatalf("open range: %+v %v", page, err)
	}
	if _, err := f.Feed.Changes(ctx, now.Add(-2*time.Minute), now, page.Next, 10); !errors.Is(err, inventory.ErrBadCursor) {
		t.Errorf("a cursor of another range: %v", err)
	}
	if _, err := f.Feed.Changes(ctx, now, now.Add(-time.Second), "", 10); !errors.Is(err, jaego.ErrInvalid) {
		t.Errorf("to before from: %v", err)
	}
	old := now.AddDate(-1, 0, 0)
	if _, err := f.Feed.Changes(ctx, old, old.Add(time.Hour), "", 10); !errors.Is(err, inventory.ErrExpired) {
		t.Errorf("a range a year ago: %v", err)
	}
}

// testFeedWait: Wait from the current position returns when a change is applied.
func testFeedWait(t *testing.T, f Feed) {
	ctx := context.Background()
	pos, err := f.Feed.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan error, 1)
	go func() { woke <- f.Feed.Wait(ctx, pos, time.Minute) }()
	MustApply(t, f.Store, Ev(inventory.Receipt, "W1", "K1", 1))
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return within 30 s of a change (its timeout is a minute)")
	}
	page, err := f.Feed.Changes(ctx, time.Time{}, time.Time{}, pos, 10)
	if err != nil || len(page.Changes) != 1 || page.Changes[0].Store != "W1" {
		t.Fatalf("after the position: %+v %v", page, err)
	}
}
