package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sourcing"
	srcredis "github.com/jaego/jaego/internal/sourcing/redis"
	"github.com/jaego/jaego/internal/sourcing/sourcingtest"
	"github.com/jaego/jaego/internal/testenv"
)

var prefixes atomic.Int64

// onEveryRedis runs f on standalone Redis, a Cluster and the embedded server of jaego dev.
func onEveryRedis(t *testing.T, f func(t *testing.T, client rueidis.Client)) {
	standalone, _ := testenv.Redis(t)
	cluster, _ := testenv.RedisCluster(t)
	for name, c := range map[string]rueidis.Client{"standalone": standalone, "cluster": cluster, "embedded": testenv.EmbeddedRedis(t)} {
		t.Run(name, func(t *testing.T) { t.Parallel(); f(t, c) })
	}
}

// newOn is a stock store and a directory in a keyspace of their own.
func newOn(client rueidis.Client, requireEpoch bool) (*invredis.Store, *srcredis.Directory) {
	st := invredis.New(client, invredis.Options{Prefix: fmt.Sprintf("s%d", prefixes.Add(1)), RequireEpoch: requireEpoch})
	return st, srcredis.New(client, st.Keys(), requireEpoch, time.Hour)
}

func TestDirectoryAndSagas(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		sourcingtest.Directory(t, func(t *testing.T) sourcing.Directory { _, d := newOn(client, false); return d })
		t.Run("sagas", func(t *testing.T) {
			sourcingtest.Sagas(t, func(t *testing.T) sourcing.Sagas { _, d := newOn(client, false); return d })
		})
		// With a durable copy, a Redis without its epoch mark lost its data: the
		// directory says so rather than answering an empty city.
		t.Run("lost", func(t *testing.T) {
			t.Parallel()
			_, d := newOn(client, true)
			ctx := context.Background()
			if _, err := d.Near(ctx, sourcingtest.CityHallLat, sourcingtest.CityHallLon, 10, 10); !errors.Is(err, inventory.ErrLost) {
				t.Fatalf("near without an epoch mark: %v, want ErrLost", err)
			}
			if _, err := d.Get(ctx, "GN"); !errors.Is(err, inventory.ErrLost) {
				t.Fatalf("get without an epoch mark: %v, want ErrLost", err)
			}
			if err := d.Put(ctx, sourcingtest.Seoul()[0]); !errors.Is(err, inventory.ErrLost) {
				t.Fatalf("put without an epoch mark: %v, want ErrLost", err)
			}
		})
	})
}

// TestHoldUnderContention: 64 goroutines source and hold overlapping baskets over four
// stores with scarce stock. Nothing is oversold at any point of the feed; every answered
// hold is held whole, store by store, as its plan says; every refused one holds nothing;
// the records' reserved counts are exactly what the answered holds hold.
func TestHoldUnderContention(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		stock, dir := newOn(client, false)
		start := time.Now()
		stores := sourcingtest.Seoul()[:4]
		skus := []string{"A", "B", "C"}
		rng := rand.New(rand.NewPCG(7, 11))
		var events []inventory.Event
		for _, s := range stores {
			if err := dir.Put(ctx, s); err != nil {
				t.Fatal(err)
			}
			// Each store has one or two of the SKUs: most baskets are split over stores,
			// so a part held and its sibling refused is common.
			for _, j := range rng.Perm(len(skus))[:1+rng.IntN(2)] {
				events = append(events, inventorytest.Ev(inventory.Receipt, s.ID, skus[j], int64(10+rng.IntN(20))),
					inventorytest.Ev(inventory.SetSafety, s.ID, skus[j], int64(rng.IntN(2))))
			}
		}
		inventorytest.MustApply(t, stock, events...)
		src := sourcing.New(sourcing.Options{Directory: dir, Stock: stock, Reservations: stock, Sagas: dir})

		const workers, each = 64, 4
		var mu sync.Mutex
		held := map[inventory.Key]int64{} // what the answered holds hold
		var answered, refused []string
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 3))
				for n := range each {
					id := fmt.Sprintf("w%d-%d", w, n)
					req := sourcing.Request{Lat: sourcingtest.CityHallLat, Lon: sourcingtest.CityHallLon, RadiusKm: 20,
						MaxStores: 2 + rng.IntN(2), Hold: &sourcing.HoldSpec{ReservationID: id, Hold: time.Hour}}
					for _, j := range rng.Perm(len(skus))[:1+rng.IntN(len(skus))] {
						req.Items = append(req.Items, inventory.Item{SKU: skus[j], Qty: int64(1 + rng.IntN(3))})
					}
					if err := req.Validate(); err != nil {
						t.Error(err)
						return
					}
					ans, err := src.Source(ctx, req)
					mu.Lock()
					switch {
					case err == nil:
						answered = append(answered, id)
						for _, part := range ans.Held.Plan.Stores {
							for _, it := range part.Items {
								held[inventory.Key{Store: part.Store, SKU: it.SKU}] += it.Qty
							}
						}
						checkHeld(t, ctx, stock, ans.Held)
					case jaego.CodeOf(err) == jaego.CodeInsufficientStock:
						refused = append(refused, id)
					default:
						t.Errorf("%s: %v", id, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(answered) == 0 || len(refused) == 0 {
			t.Fatalf("%d answered, %d refused: the stock is not scarce enough to test anything", len(answered), len(refused))
		}
		for _, id := range refused {
			for n := 1; n <= sourcing.MaxPlans*sourcing.MaxStoresPerPlan; n++ {
				r, err := stock.Reservation(ctx, fmt.Sprintf("%s-%d", id, n))
				if err == nil && r.Status != inventory.Cancelled {
					t.Fatalf("refused %s holds part %s: %+v", id, r.ID, r)
				}
			}
		}
		for _, s := range stores {
			for _, sku := range skus {
				st, err := stock.Get(ctx, s.ID, sku)
				if jaego.CodeOf(err) == jaego.CodeNotFound { // a SKU the store never had
					st, err = inventory.Stock{}, nil
				}
				if err != nil || st.Reserved != held[inventory.Key{Store: s.ID, SKU: sku}] || st.Reserved > st.OnHand-st.Safety {
					t.Fatalf("%s/%s: %+v %v: answered holds hold %d", s.ID, sku, st, err, held[inventory.Key{Store: s.ID, SKU: sku}])
				}
			}
		}
		checkFeedNeverOversold(t, stock, start)
		t.Logf("%d holds answered, %d refused", len(answered), len(refused))
	})
}

// checkHeld: every part of an answered hold is held with its plan's items.
func checkHeld(t *testing.T, ctx context.Context, stock *invredis.Store, h *sourcing.Held) {
	t.Helper()
	if len(h.Reservations) != len(h.Plan.Stores) || !h.Plan.Complete {
		t.Errorf("held %+v: parts and plan differ", h)
		return
	}
	for i, part := range h.Plan.Stores {
		r, err := stock.Reservation(ctx, h.Reservations[i].ID)
		if err != nil || r.Status != inventory.Held || r.Store != part.Store || len(r.Items) != len(part.Items) {
			t.Errorf("part %d of %s: %+v %v, plan %+v", i, h.ReservationID, r, err, part)
		}
	}
}

// checkFeedNeverOversold reads the whole feed: no change ever left reserved above on_hand
// less safety.
func checkFeedNeverOversold(t *testing.T, stock *invredis.Store, from time.Time) {
	t.Helper()
	feed := invredis.NewFeed(stock, invredis.FeedOptions{})
	n := 0
	_, err := feed.StreamChanges(context.Background(), from.Add(-time.Minute), time.Now().Add(time.Second), "", func(cs []inventory.Change) error {
		for _, c := range cs {
			n++
			if c.Reserved > c.OnHand-c.Safety {
				return fmt.Errorf("change %s of %s/%s oversold: %+v", c.ID, c.Store, c.SKU, c)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("feed: %d changes, %v", n, err)
	}
}
