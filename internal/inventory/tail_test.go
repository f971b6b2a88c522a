package inventory_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/testenv"
)

func TestHubCap(t *testing.T) {
	store := inmem.New(inmem.Options{})
	hub := inventorytest.RunHub(t, store, inventory.HubOptions{MaxStreams: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, d1 := inventorytest.Follow(t, ctx, hub, "", 1, nil)
	_, d2 := inventorytest.Follow(t, ctx, hub, "", 1, nil)
	err := hub.Follow(ctx, "", func() { t.Error("a third subscriber was admitted") }, func(inventory.TailBatch) error { return nil })
	if !errors.Is(err, inventory.ErrTooManyStreams) {
		t.Fatalf("third subscriber: %v", err)
	}
	cancel()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	testenv.Recv(t, wait, d1, "the first subscriber's end")
	testenv.Recv(t, wait, d2, "the second subscriber's end")
	if err := hub.Follow(context.Background(), "not a cursor", func() {}, func(inventory.TailBatch) error { return nil }); err == nil {
		t.Errorf("a malformed cursor was followed")
	}
}

// A cursor the feed no longer holds is refused before the stream starts (the request's
// error, so a 410 over HTTP), not after.
func TestHubRefusesExpiredCursorBeforeStart(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store := inmem.New(inmem.Options{Retention: time.Hour, Now: clock})
	hub := inventorytest.RunHub(t, store, inventory.HubOptions{})
	page, err := store.Changes(context.Background(), now.Add(-30*time.Minute), now.AddDate(100, 0, 0), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	err = hub.Follow(context.Background(), page.Next, func() { t.Error("an expired cursor's stream started") },
		func(inventory.TailBatch) error { return nil })
	if !errors.Is(err, inventory.ErrExpired) {
		t.Fatalf("expired cursor: %v", err)
	}
}

// One key cannot take every slot: beyond MaxPerKey its streams are refused, while another
// key and anonymous callers still get theirs.
func TestHubCapPerKey(t *testing.T) {
	store := inmem.New(inmem.Options{})
	hub := inventorytest.RunHub(t, store, inventory.HubOptions{MaxStreams: 8, MaxPerKey: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	greedy := jaego.WithCaller(ctx, "greedy")
	var ends []<-chan error
	for range 2 {
		_, d := inventorytest.Follow(t, greedy, hub, "", 1, nil)
		ends = append(ends, d)
	}
	err := hub.Follow(greedy, "", func() { t.Error("a third stream of one key was admitted") }, func(inventory.TailBatch) error { return nil })
	if !errors.Is(err, inventory.ErrTooManyStreams) || !strings.Contains(err.Error(), "greedy") {
		t.Fatalf("third stream of one key: %v", err)
	}
	_, d := inventorytest.Follow(t, jaego.WithCaller(ctx, "other"), hub, "", 1, nil)
	_, d2 := inventorytest.Follow(t, ctx, hub, "", 1, nil)
	ends = append(ends, d, d2)
	cancel()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for _, d := range ends {
		testenv.Recv(t, wait, d, "a stream's end")
	}
	// The key's slots are free again once its streams ended.
	again, stopAgain := context.WithCancel(jaego.WithCaller(context.Background(), "greedy"))
	_, d3 := inventorytest.Follow(t, again, hub, "", 1, nil)
	stopAgain()
	testenv.Recv(t, wait, d3, "the stream's end")
}

// The shared suite of inventory.TailFeed, in memory.
func TestTailSuite(t *testing.T) {
	inventorytest.Tail(t, func(t *testing.T) (inventory.StockStore, inventory.TailFeed) {
		s := inmem.New(inmem.Options{})
		return s, s
	})
}

// An idle stream hears from the hub every keep-alive (5 s), exactly, and a change reaches
// it at once whatever the keep-alive's phase: in a synctest bubble (virtual time), so the
// test takes milliseconds, not the 16 s it checks.
func TestHubKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := inmem.New(inmem.Options{})
		hub := inventory.NewHub(store, inventory.HubOptions{})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go hub.Run(ctx)
		start := time.Now()
		var mu sync.Mutex
		var beats []time.Duration
		var changes int
		go func() {
			_ = hub.Follow(ctx, "", func() {}, func(b inventory.TailBatch) error {
				mu.Lock()
				defer mu.Unlock()
				if len(b.Changes) == 0 {
					beats = append(beats, time.Since(start))
				}
				changes += len(b.Changes)
				return nil
			})
		}()
		time.Sleep(16 * time.Second)
		synctest.Wait()
		mu.Lock()
		if len(beats) != 3 || beats[0] != 5*time.Second || beats[1] != 10*time.Second || beats[2] != 15*time.Second {
			t.Fatalf("keep-alives at %v, want 5s, 10s and 15s", beats)
		}
		mu.Unlock()
		time.Sleep(1500 * time.Millisecond) // mid-period: the change must not wait for the next beat
		inventorytest.MustApply(t, store, inventorytest.Ev(inventory.Receipt, "S1", "A", 1))
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if changes != 1 {
			t.Fatalf("%d changes delivered at once after the apply, want 1", changes)
		}
	})
}
