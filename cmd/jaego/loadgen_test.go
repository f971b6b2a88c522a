package main

import (
	"context"
	"testing"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/pos"
)

// Ctrl-C stops the whole day, not only the transaction in hand: nothing more is generated.
func TestLoadgenCancelStopsTheDay(t *testing.T) {
	for _, rate := range []int{0, 1_000_000} {
		ctx, cancel := context.WithCancel(context.Background())
		pulled := 0
		day := func(yield func(pos.Transaction) bool) {
			for t := range pos.Day(pos.DayOptions{Transactions: 10000, Stores: 10, SKUs: 100, Seed: 1}) {
				pulled++
				if !yield(t) {
					return
				}
			}
		}
		const stopAt = 50
		n, err := produceDay(ctx, day, rate, func(inventory.Event) error {
			if n := pulled; n == stopAt {
				cancel()
			}
			return nil
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if pulled != stopAt || n < 1 {
			t.Fatalf("rate %d: cancelled at transaction %d, the generator went on to %d (%d events produced)", rate, stopAt, pulled, n)
		}
	}
}
