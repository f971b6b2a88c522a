package db_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// TestGatheredLookupsAnswerEachItsOwn: 64 goroutines look up 200 keys each, hits and misses
// mixed, so that lookups are gathered into shared statements; every caller gets exactly its
// own record (the value written for that key) or not_found for a key never written.
func TestGatheredLookupsAnswerEachItsOwn(t *testing.T) {
	for name, c := range copies(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := c.Claim(ctx, 1); err != nil {
				t.Fatal(err)
			}
			var records []inventory.Stock
			for s := range 20 {
				for k := range 25 {
					records = append(records, inventory.Stock{Store: fmt.Sprintf("S%02d", s), SKU: fmt.Sprintf("K%02d", k), OnHand: int64(s*100 + k), Version: 1})
				}
			}
			if err := c.Commit(ctx, 1, inventory.Projection{Records: records, Cursor: "c"}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 64 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 1))
					for range 200 {
						s, k := rng.IntN(24), rng.IntN(25) // stores 20–23 were never written
						st, err := c.Get(ctx, fmt.Sprintf("S%02d", s), fmt.Sprintf("K%02d", k))
						switch {
						case s >= 20 && !errors.Is(err, jaego.ErrNotFound):
							errs <- fmt.Errorf("S%02d/K%02d (never written): %+v, %v", s, k, st, err)
							return
						case s < 20 && (err != nil || st.OnHand != int64(s*100+k) || st.Store != fmt.Sprintf("S%02d", s) || st.SKU != fmt.Sprintf("K%02d", k)):
							errs <- fmt.Errorf("S%02d/K%02d: %+v, %v; want on hand %d", s, k, st, err, s*100+k)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
