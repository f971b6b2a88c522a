package db

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/testenv"
)

// TestLookupBatcher drives the batcher with a read it controls: lookups that arrive while a
// read is under way are gathered into the next one; a caller whose context ends stops
// waiting at once and is left out of the read; a failed read fails every caller it served.
func TestLookupBatcher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release := make(chan struct{})
	started := make(chan []inventory.Key, 16)
	var reads atomic.Int64
	var failNext atomic.Bool
	b := &lookupBatcher{max: 1, read: func(_ context.Context, keys []inventory.Key) ([]inventory.Lookup, error) {
		reads.Add(1)
		started <- keys
		select { // bounded by the test's deadline
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if failNext.Load() {
			return nil, errors.New("the copy went away")
		}
		out := make([]inventory.Lookup, len(keys))
		for i, k := range keys {
			out[i] = inventory.Lookup{Found: true, Stock: inventory.Stock{Store: k.Store, SKU: k.SKU}}
		}
		return out, nil
	}}
	type answer struct {
		l   inventory.Lookup
		err error
	}
	ask := func(ctx context.Context, sku string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			l, err := b.get(ctx, inventory.Key{Store: "S1", SKU: sku})
			ch <- answer{l, err}
		}()
		return ch
	}

	first := ask(ctx, "A")
	if keys := testenv.Recv(t, ctx, started, "the first read"); len(keys) != 1 || keys[0].SKU != "A" {
		t.Fatalf("first read %v, want A alone (nothing was in flight)", keys)
	}
	// While A is read, ten more arrive, and one of them leaves.
	var later []chan answer
	for _, sku := range []string{"B", "C", "D", "E", "F", "G", "H", "I", "J"} {
		later = append(later, ask(ctx, sku))
	}
	leaving, leave := context.WithCancel(ctx)
	left := ask(leaving, "Z")
	testenv.Eventually(t, "ten lookups pending", 10*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.pending) == 10
	})
	leave()
	if a := testenv.Recv(t, ctx, left, "the caller that left"); !errors.Is(a.err, context.Canceled) {
		t.Fatalf("a caller whose context ended: %+v", a)
	}
	release <- struct{}{} // A's read ends
	if a := testenv.Recv(t, ctx, first, "A"); a.err != nil || a.l.Stock.SKU != "A" {
		t.Fatalf("A: %+v", a)
	}
	if keys := testenv.Recv(t, ctx, started, "the gathered read"); len(keys) != 9 {
		t.Fatalf("the second read has %d keys (%v), want the 9 that waited (not the one that left)", len(keys), keys)
	}
	release <- struct{}{}
	for i, ch := range later {
		if a := testenv.Recv(t, ctx, ch, "a gathered lookup"); a.err != nil || a.l.Stock.SKU != string(rune('B'+i)) {
			t.Fatalf("gathered lookup %d: %+v", i, a)
		}
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d reads for 11 lookups, want 2", n)
	}

	// A failed read fails every caller of its batch, and the batcher goes on.
	failNext.Store(true)
	failed := ask(ctx, "X")
	testenv.Recv(t, ctx, started, "the failing read")
	release <- struct{}{}
	if a := testenv.Recv(t, ctx, failed, "X"); a.err == nil {
		t.Fatalf("X got %+v from a failed read", a)
	}
	failNext.Store(false)
	again := ask(ctx, "Y")
	testenv.Recv(t, ctx, started, "the read after the failure")
	release <- struct{}{}
	if a := testenv.Recv(t, ctx, again, "Y"); a.err != nil || a.l.Stock.SKU != "Y" {
		t.Fatalf("after a failure: %+v", a)
	}
	testenv.Eventually(t, "no batch running once nothing is pending", 10*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.running == 0 && len(b.pending) == 0
	})
}
