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
	"github.com/jaego/jaego/internal/testenv"
)

// onEveryRedis runs f on standalone Redis, a Cluster and the embedded server of jaego dev.
func onEveryRedis(t *testing.T, f func(t *testing.T, client rueidis.Client)) {
	standalone, _ := testenv.Redis(t)
	cluster, _ := testenv.RedisCluster(t)
	for name, c := range map[string]rueidis.Client{"standalone": standalone, "cluster": cluster, "embedded": testenv.EmbeddedRedis(t)} {
		t.Run(name, func(t *testing.T) { t.Parallel(); f(t, c) })
	}
}

func stockOf(t *testing.T, s *invredis.Store, store, sku string) inventory.Stock {
	t.Helper()
	st, err := s.Get(context.Background(), store, sku)
	if err != nil {
		t.Fatalf("%s/%s: %v", store, sku, err)
	}
	return st
}

func TestReservationLife(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		clk := inventorytest.NewClock()
		s := newStoreOn(client, invredis.Options{Now: clk.Now})
		inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "A", 5), inventorytest.Ev(inventory.Receipt, "S1", "B", 2),
			inventorytest.Ev(inventory.SetSafety, "S1", "B", 1))
		basket := []inventory.Item{{SKU: "A", Qty: 3}, {SKU: "B", Qty: 1}}

		// Short: B has 1 available; C has no record. Nothing is held.
		_, _, err := s.Hold(ctx, inventory.HoldRequest{ID: "r0", Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 3}, {SKU: "B", Qty: 2}, {SKU: "C", Qty: 1}}})
		var short *inventory.ShortError
		if !errors.As(err, &short) || jaego.CodeOf(err) != jaego.CodeInsufficientStock || len(short.Short) != 2 ||
			short.Short[0] != (inventory.Short{SKU: "B", Qty: 2, Available: 1}) || short.Short[1] != (inventory.Short{SKU: "C", Qty: 1, Available: 0}) {
			t.Fatalf("short hold: %v %+v", err, short)
		}
		if a := stockOf(t, s, "S1", "A"); a.Reserved != 0 || a.Version != 1 {
			t.Fatalf("a refused hold changed A: %+v", a)
		}

		r, again, err := s.Hold(ctx, inventory.HoldRequest{ID: "r1", Store: "S1", Items: basket, Hold: time.Minute})
		if err != nil || again || r.Status != inventory.Held || !r.ExpiresAt.Equal(clk.Now().Add(time.Minute).Truncate(time.Millisecond)) {
			t.Fatalf("hold: %+v %v %v", r, again, err)
		}
		if a, b := stockOf(t, s, "S1", "A"), stockOf(t, s, "S1", "B"); a.Reserved != 3 || a.Available != 2 || b.Reserved != 1 || b.Available != 0 {
			t.Fatalf("after hold: %+v %+v", a, b)
		}
		if r2, again, err := s.Hold(ctx, inventory.HoldRequest{ID: "r1", Store: "S1", Items: basket}); err != nil || !again || r2.Status != inventory.Held {
			t.Fatalf("same id again: %+v %v %v", r2, again, err)
		}
		if _, _, err := s.Hold(ctx, inventory.HoldRequest{ID: "r1", Store: "S1", Items: basket[:1]}); jaego.CodeOf(err) != jaego.CodeReservationConflict {
			t.Fatalf("same id, another basket: %v", err)
		}
		if _, _, err := s.Hold(ctx, inventory.HoldRequest{ID: "r1", Store: "S2", Items: basket}); jaego.CodeOf(err) != jaego.CodeReservationConflict {
			t.Fatalf("same id, another store: %v", err)
		}
		if got, err := s.Reservation(ctx, "r1"); err != nil || got.Store != "S1" || len(got.Items) != 2 || got.Items[0] != basket[0] {
			t.Fatalf("get: %+v %v", got, err)
		}

		r, err = s.Confirm(ctx, "r1")
		if err != nil || r.Status != inventory.Confirmed {
			t.Fatalf("confirm: %+v %v", r, err)
		}
		if a := stockOf(t, s, "S1", "A"); a.OnHand != 2 || a.Reserved != 0 {
			t.Fatalf("after confirm: %+v", a)
		}
		if _, err := s.Cancel(ctx, "r1"); jaego.CodeOf(err) != jaego.CodeNotHeld {
			t.Fatalf("cancel of a confirmed one: %v", err)
		}

		if _, _, err := s.Hold(ctx, inventory.HoldRequest{ID: "r2", Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 2}}}); err != nil {
			t.Fatal(err)
		}
		for range 2 { // cancel is idempotent
			if r, err := s.Cancel(ctx, "r2"); err != nil || r.Status != inventory.Cancelled {
				t.Fatalf("cancel: %+v %v", r, err)
			}
		}
		if _, err := s.Confirm(ctx, "r2"); jaego.CodeOf(err) != jaego.CodeNotHeld {
			t.Fatalf("confirm of a cancelled one: %v", err)
		}
		if a := stockOf(t, s, "S1", "A"); a.OnHand != 2 || a.Reserved != 0 || a.Version != 5 {
			t.Fatalf("after cancel: %+v", a)
		}
		if _, err := s.Reservation(ctx, "nope"); jaego.CodeOf(err) != jaego.CodeNotFound {
			t.Fatalf("unknown id: %v", err)
		}
		// The feed: reserve ×2 (r1), fulfill ×2, reserve, release: the reservation id in each.
		feed := invredis.NewFeed(s, invredis.FeedOptions{Now: clk.Now})
		page, err := feed.Changes(ctx, clk.Now().Add(-time.Hour), clk.Now().Add(time.Hour), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range page.Changes[3:] {
			got = append(got, string(c.Type)+" "+c.EventID)
		}
		want := "[reserve rsv-r1-hold reserve rsv-r1-hold fulfill rsv-r1-confirm fulfill rsv-r1-confirm reserve rsv-r2-hold release rsv-r2-cancel]"
		if fmt.Sprint(got) != want {
			t.Errorf("feed %v\nwant %s", got, want)
		}
	})
}

// TestReservationSameIDConcurrently: 50 holds of one id at once make one hold.
func TestReservationSameIDConcurrently(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		s := newStoreOn(client, invredis.Options{})
		inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "A", 1000))
		var held, again atomic.Int64
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				_, a, err := s.Hold(ctx, inventory.HoldRequest{ID: "same", Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 7}}})
				switch {
				case err != nil:
					t.Error(err)
				case a:
					again.Add(1)
				default:
					held.Add(1)
				}
			})
		}
		wg.Wait()
		if held.Load() != 1 || again.Load() != 49 {
			t.Errorf("%d held, %d again", held.Load(), again.Load())
		}
		if a := stockOf(t, s, "S1", "A"); a.Reserved != 7 || a.Version != 2 {
			t.Errorf("record %+v, want one hold of 7", a)
		}
	})
}

// TestReservationClaimLost: a claim can vanish under a hold (its node flushed, or failed
// over before the claim's write reached the replica). Here every claim is deleted over and
// over while 8 goroutines hold 40 ids each: every hold, retried until it answers, ends
// held, and the store reserves exactly what was held. (Ending such a hold as "taken over"
// would cancel it unasked, and its retry would answer "held before": cancelled.)
func TestReservationClaimLost(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		s := newStoreOn(client, invredis.Options{})
		inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "A", 10000))
		const writers, each = 8, 40
		var claims []string
		for w := range writers {
			for i := range each {
				claims = append(claims, s.Keys().ReservationClaim(fmt.Sprintf("lost-%d-%d", w, i)))
			}
		}
		stop := make(chan struct{})
		var deletes atomic.Int64
		var deleter sync.WaitGroup
		deleter.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cmds := make(rueidis.Commands, len(claims))
				for i, k := range claims {
					cmds[i] = client.B().Del().Key(k).Build()
				}
				for _, res := range client.DoMulti(ctx, cmds...) {
					if n, _ := res.AsInt64(); n > 0 {
						deletes.Add(n)
					}
				}
			}
		})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("lost-%d-%d", w, i)
					var r inventory.Reservation
					var err error
					for try := 0; ; try++ {
						if r, _, err = s.Hold(ctx, inventory.HoldRequest{ID: id, Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 1}}, Hold: time.Hour}); err == nil {
							break
						}
						if try == 5 {
							t.Errorf("hold %s: %v", id, err)
							return
						}
					}
					if r.Status != inventory.Held {
						t.Errorf("hold %s answered %s", id, r.Status)
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		deleter.Wait()
		if deletes.Load() == 0 {
			t.Fatal("no claim was deleted: the test tested nothing")
		}
		for w := range writers {
			for i := range each {
				id := fmt.Sprintf("lost-%d-%d", w, i)
				if r, err := s.Reservation(ctx, id); err != nil || r.Status != inventory.Held {
					t.Errorf("%s: %+v %v", id, r, err)
				}
			}
		}
		if a := stockOf(t, s, "S1", "A"); a.Reserved != writers*each {
			t.Errorf("reserved %d, want %d", a.Reserved, writers*each)
		}
		t.Logf("%d claims deleted under the holds", deletes.Load())
	})
}

// TestReservationExpiry: with a stopped clock, nothing expires early; moved past the
// expiry, two instances sweeping at once release each reservation exactly once; a confirm
// racing the sweep either wins (confirmed) or finds it expired, never both.
func TestReservationExpiry(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		clk := inventorytest.NewClock()
		a := newStoreOn(client, invredis.Options{Now: clk.Now})
		b := invredis.New(client, invredis.Options{Prefix: a.Keys().Prefix(), Now: clk.Now}) // a second instance
		inventorytest.MustApply(t, a, inventorytest.Ev(inventory.Receipt, "S1", "A", 1000), inventorytest.Ev(inventory.Receipt, "S2", "A", 1000))
		const n = 60
		for i := range n {
			if _, _, err := a.Hold(ctx, inventory.HoldRequest{ID: fmt.Sprintf("x%d", i), Store: []string{"S1", "S2"}[i%2],
				Items: []inventory.Item{{SKU: "A", Qty: 1}}, Hold: 10 * time.Second}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := a.ExpireDue(ctx, 100); err != nil || got != 0 {
			t.Fatalf("expired %d before their time (%v)", got, err)
		}
		clk.Advance(10 * time.Second)
		var expired, confirmed atomic.Int64
		var wg sync.WaitGroup
		for _, s := range []*invredis.Store{a, b} {
			wg.Go(func() {
				for {
					got, err := s.ExpireDue(ctx, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if expired.Add(int64(got)); got == 0 {
						return
					}
				}
			})
		}
		for i := 0; i < n; i += 3 { // confirms racing the sweepers
			wg.Go(func() {
				if r, err := b.Confirm(ctx, fmt.Sprintf("x%d", i)); err == nil && r.Status == inventory.Confirmed {
					confirmed.Add(1)
				} else if jaego.CodeOf(err) != jaego.CodeNotHeld {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if confirmed.Load() != 0 {
			t.Errorf("%d confirms won after the expiry time", confirmed.Load())
		}
		for _, st := range []string{"S1", "S2"} {
			if r := stockOf(t, a, st, "A"); r.Reserved != 0 || r.OnHand != 1000 {
				t.Errorf("%s after expiry: %+v", st, r)
			}
		}
		releases := 0
		feed := invredis.NewFeed(a, invredis.FeedOptions{Now: clk.Now})
		page, err := feed.Changes(ctx, clk.Now().Add(-time.Hour), clk.Now().Add(time.Hour), "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Changes {
			if c.Type == inventory.Release {
				releases++
			}
		}
		if releases != n {
			t.Errorf("%d release changes for %d reservations (%d expired by the sweepers)", releases, n, expired.Load())
		}
		for i := range n {
			if r, err := a.Reservation(ctx, fmt.Sprintf("x%d", i)); err != nil || r.Status != inventory.Expired {
				t.Errorf("x%d: %+v %v", i, r, err)
			}
		}
		if held, err := a.Held(ctx); err != nil || held != 0 {
			t.Errorf("%d still queued (%v)", held, err)
		}
	})
}

// TestReservationsAgainstModel: 64 goroutines hold, confirm and cancel random baskets on a
// few hot SKUs while the clock moves and sweepers expire. At every change, no SKU is
// reserved beyond on_hand − safety; each SKU's changes, in version order, follow the
// reference model; every reservation ends in exactly one terminal state, with one change
// per item for its hold and one for its end.
func TestReservationsAgainstModel(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		clk := inventorytest.NewClock()
		s := newStoreOn(client, invredis.Options{Now: clk.Now})
		skus := []string{"H1", "H2", "H3", "H4"}
		for _, sku := range skus {
			inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", sku, 120), inventorytest.Ev(inventory.SetSafety, "S1", sku, 2))
		}
		start := clk.Now()
		var mu sync.Mutex
		holds := map[string][]inventory.Item{}
		var shorts atomic.Int64
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 3))
				for i := range 15 {
					id := fmt.Sprintf("m%d-%d", w, i)
					items := []inventory.Item{}
					for _, k := range r.Perm(len(skus))[:1+r.IntN(3)] {
						items = append(items, inventory.Item{SKU: skus[k], Qty: 1 + r.Int64N(3)})
					}
					_, _, err := s.Hold(ctx, inventory.HoldRequest{ID: id, Store: "S1", Items: items, Hold: time.Duration(1+r.IntN(5)) * time.Second})
					var short *inventory.ShortError
					if errors.As(err, &short) {
						shorts.Add(1)
						continue
					} else if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					holds[id] = items
					mu.Unlock()
					switch r.IntN(4) {
					case 0:
						_, err = s.Confirm(ctx, id)
					case 1:
						_, err = s.Cancel(ctx, id)
					case 2:
						clk.Advance(time.Duration(r.IntN(300)) * time.Millisecond)
						_, err = s.ExpireDue(ctx, 50)
					} // 3: left held, to expire at the end
					if err != nil && jaego.CodeOf(err) != jaego.CodeNotHeld {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		clk.Advance(time.Minute)
		for {
			n, err := s.ExpireDue(ctx, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		if len(holds) < 150 || shorts.Load() == 0 {
			t.Fatalf("%d holds, %d refused short: the test must hold many and run out of stock", len(holds), shorts.Load())
		}
		ends := map[inventory.ReservationStatus]int{}
		for id, items := range holds {
			r, err := s.Reservation(ctx, id)
			if err != nil || r.Status == inventory.Held {
				t.Fatalf("%s: %+v %v", id, r, err)
			}
			ends[r.Status]++
			if len(r.Items) != len(items) {
				t.Fatalf("%s: items %v, held %v", id, r.Items, items)
			}
		}
		feed := invredis.NewFeed(s, invredis.FeedOptions{Now: clk.Now})
		var changes []inventory.Change
		if _, err := feed.StreamChanges(ctx, start.Add(-time.Hour), clk.Now().Add(time.Hour), "", func(cs []inventory.Change) error {
			changes = append(changes, cs...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		perID := map[string]int{}
		last := map[string]inventory.Stock{}
		for _, c := range changes {
			if c.Reserved < 0 || c.Reserved > c.OnHand-c.Safety {
				t.Fatalf("change %+v: reserved beyond on_hand − safety", c)
			}
			prev, ok := last[c.SKU]
			if ok {
				// The model: the change's type, with the qty its counters moved by, applied
				// to the record before it, gives the record after it.
				qty := c.Reserved - prev.Reserved
				if qty < 0 {
					qty = -qty
				}
				if c.Type == inventory.Receipt || c.Type == inventory.SetSafety {
					qty = c.Delta
				}
				e := inventory.Event{EventID: c.EventID, Type: c.Type, Store: "S1", SKU: c.SKU, Qty: qty}
				if c.Type == inventory.SetSafety {
					e.Qty = c.Safety
				}
				next, err := inventory.Apply(prev, e)
				if err != nil || next.OnHand != c.OnHand || next.Reserved != c.Reserved || next.Safety != c.Safety || prev.Version+1 != c.Version {
					t.Fatalf("change %+v does not follow the model from %+v: %+v %v", c, prev, next, err)
				}
			}
			last[c.SKU] = inventory.Stock{Store: "S1", SKU: c.SKU, OnHand: c.OnHand, Reserved: c.Reserved, Safety: c.Safety, Version: c.Version}
			perID[c.EventID]++
		}
		for id, items := range holds {
			endings := perID["rsv-"+id+"-confirm"] + perID["rsv-"+id+"-cancel"] + perID["rsv-"+id+"-expire"]
			if perID["rsv-"+id+"-hold"] != len(items) || endings != len(items) {
				t.Fatalf("%s: %d hold changes, %d end changes, %d items", id, perID["rsv-"+id+"-hold"], endings, len(items))
			}
		}
		for _, sku := range skus {
			if st := stockOf(t, s, "S1", sku); st.Reserved != 0 || st != withSource(last[sku], st) {
				t.Errorf("%s final %+v, feed's last %+v", sku, st, last[sku])
			}
		}
		t.Logf("%d reservations, %d refused short: %v", len(holds), shorts.Load(), ends)
	})
}

// withSource gives want the fields a change does not carry, from got.
func withSource(want, got inventory.Stock) inventory.Stock {
	want.Source, want.UpdatedAt, want.Available = got.Source, got.UpdatedAt, got.Available
	return want
}

func TestAvailability(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		s := newStoreOn(client, invredis.Options{})
		inventorytest.MustApply(t, s,
			inventorytest.Ev(inventory.Receipt, "S1", "A", 1), // S1: A short
			inventorytest.Ev(inventory.Receipt, "S1", "B", 9),
			inventorytest.Ev(inventory.Receipt, "S2", "A", 5), // S2: complete
			inventorytest.Ev(inventory.Receipt, "S2", "B", 5),
			inventorytest.Ev(inventory.Receipt, "S4", "A", 5), // S4: complete
			inventorytest.Ev(inventory.Receipt, "S4", "B", 1),
			inventorytest.Ev(inventory.Reserve, "S4", "B", 0+1), // …until B is reserved
			inventorytest.Ev(inventory.Receipt, "S5", "A", 2),
			inventorytest.Ev(inventory.Receipt, "S5", "B", 2))
		got, err := s.Availability(ctx, []inventory.Item{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 2}}, []string{"S1", "S2", "S3", "S4", "S5"})
		if err != nil {
			t.Fatal(err)
		}
		want := "[{S2 true []} {S5 true []} {S1 false [{A 2 1}]} {S3 false [{A 2 0} {B 2 0}]} {S4 false [{B 2 0}]}]"
		if fmt.Sprint(got) != want {
			t.Errorf("availability %v\nwant %s", got, want)
		}
	})
}

// TestLostStore: with RequireEpoch, a Redis that lost its data (FLUSHALL) answers every call
// with inventory.ErrLost, parsed once from the scripts' REDISLOST refusal and from the epoch
// mark read beside every lookup: nothing is written, and no read answers a miss.
func TestLostStore(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		ctx := context.Background()
		s := newStoreOn(client, invredis.Options{RequireEpoch: true})
		if err := s.MarkEpoch(ctx, false); err != nil {
			t.Fatal(err)
		}
		inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "A", 5))
		for _, node := range client.Nodes() {
			if err := node.Do(ctx, node.B().Flushall().Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Apply(ctx, []inventory.Event{inventorytest.Ev(inventory.Receipt, "S1", "A", 1)}); !errors.Is(err, inventory.ErrLost) {
			t.Errorf("apply: %v", err)
		}
		if _, _, err := s.Hold(ctx, inventory.HoldRequest{ID: "lost-1", Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 1}}}); !errors.Is(err, inventory.ErrLost) {
			t.Errorf("hold: %v", err)
		}
		if _, err := s.Get(ctx, "S1", "A"); !errors.Is(err, inventory.ErrLost) {
			t.Errorf("get: %v", err)
		}
		if _, err := s.GetMany(ctx, []inventory.Key{{Store: "S1", SKU: "A"}, {Store: "S2", SKU: "B"}}); !errors.Is(err, inventory.ErrLost) {
			t.Errorf("get many: %v", err)
		}
		for _, node := range client.Nodes() { // not even a claim
			if n, err := node.Do(ctx, node.B().Dbsize().Build()).AsInt64(); err != nil || n > 0 {
				t.Errorf("%d keys written into the lost Redis (%v)", n, err)
			}
		}
	})
}

// TestWriteAckReplicas: with AckReplicas, writes (events, reservation steps) are answered
// once the replica has them: right after each answer the replica holds the write. A
// replica stopped (SIGSTOP) makes the next write answer ErrNotReplicated within the
// caller's deadline (the master did apply it: a retry is a duplicate), and once it runs
// again writes are acknowledged again. On a master without the script (flushed), the
// script is sent whole.
func TestWriteAckReplicas(t *testing.T) {
	ctx := context.Background()
	master, replica := testenv.RedisWithReplica(t)
	mc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{master.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mc.Close)
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{replica.Addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	s := newStoreOn(mc, invredis.Options{AckReplicas: true})
	onReplica := invredis.New(rc, invredis.Options{Prefix: s.Keys().Prefix()}) // reads only
	if err := mc.Do(ctx, mc.B().ScriptFlush().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "W1", "A", 1))
		if st, err := onReplica.Get(ctx, "W1", "A"); err != nil || st.OnHand != int64(i+1) {
			t.Fatalf("write %d acknowledged, the replica has %+v %v", i, st, err)
		}
	}
	if _, _, err := s.Hold(ctx, inventory.HoldRequest{ID: "acked", Store: "W1", Items: []inventory.Item{{SKU: "A", Qty: 2}}}); err != nil {
		t.Fatal(err)
	}
	if st, err := onReplica.Get(ctx, "W1", "A"); err != nil || st.Reserved != 2 {
		t.Fatalf("hold acknowledged, the replica has %+v %v", st, err)
	}
	if v, err := rc.Do(ctx, rc.B().Get().Key(s.Keys().ReservationClaim("acked")).Build()).ToString(); err != nil || v != "W1" {
		t.Fatalf("hold acknowledged, the replica has its claim %q %v", v, err)
	}
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	e := inventorytest.Ev(inventory.Receipt, "W1", "A", 1)
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.Apply(wctx, []inventory.Event{e})
	cancel()
	if jaego.CodeOf(err) != jaego.CodeNotReplicated {
		t.Fatalf("a write with the replica stopped: %v", err)
	}
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "writes acknowledged again", 30*time.Second, func() bool {
		res, err := s.Apply(ctx, []inventory.Event{e})
		return err == nil && res[0].Status == inventory.Duplicate // the master had applied it
	})
}

// TestWriteAckRetryElsewhere: a step the master applied and no replica confirmed is retried
// through another client (another jaego behind the load balancer) while the replica is
// still stopped. The retry finds the step done and writes nothing new, yet it must not
// answer success before a replica has the first attempt's write: it answers
// not_replicated too, an event as a hold.
func TestWriteAckRetryElsewhere(t *testing.T) {
	ctx := context.Background()
	master, replica := testenv.RedisWithReplica(t)
	client := func() rueidis.Client {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{master.Addr}, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	first := newStoreOn(client(), invredis.Options{AckReplicas: true})
	elsewhere := invredis.New(client(), invredis.Options{AckReplicas: true, Prefix: first.Keys().Prefix()})
	inventorytest.MustApply(t, first, inventorytest.Ev(inventory.Receipt, "W1", "A", 5))
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := replica.Resume(); err != nil {
			t.Fatal(err)
		}
	}()
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 300*time.Millisecond) }
	e := inventorytest.Ev(inventory.Receipt, "W1", "A", 1)
	hold := inventory.HoldRequest{ID: "elsewhere-1", Store: "W1", Items: []inventory.Item{{SKU: "A", Qty: 1}}}
	for _, s := range []*invredis.Store{first, elsewhere} {
		c, cancel := short()
		res, err := s.Apply(c, []inventory.Event{e})
		cancel()
		if jaego.CodeOf(err) != jaego.CodeNotReplicated {
			t.Fatalf("an event not replicated, applied (again) through a client: %+v %v, want not_replicated", res, err)
		}
		c, cancel = short()
		r, again, err := s.Hold(c, hold)
		cancel()
		if jaego.CodeOf(err) != jaego.CodeNotReplicated {
			t.Fatalf("a hold not replicated, held (again) through a client: %+v %v %v, want not_replicated", r, again, err)
		}
	}
}

// TestWriteAckReplicasCluster: on a Cluster of 3 masters with a replica each, a write's
// WAIT goes to the master of its shard group's slot (the keyless command follows the slot
// of its DoMulti), so events across every group and a reservation are acknowledged.
func TestWriteAckReplicasCluster(t *testing.T) {
	t.Parallel()
	client, _ := testenv.RedisClusterWithReplicas(t, 1, 5*time.Second)
	s := newStoreOn(client, invredis.Options{AckReplicas: true})
	var events []inventory.Event
	for i := range 200 {
		events = append(events, inventorytest.Ev(inventory.Receipt, fmt.Sprintf("C%d", i%40), "A", 1))
	}
	for _, r := range inventorytest.MustApply(t, s, events...) {
		if r.Status != inventory.Applied {
			t.Fatalf("%s: %s %v", r.EventID, r.Status, r.Err)
		}
	}
	if _, _, err := s.Hold(context.Background(), inventory.HoldRequest{ID: "cl-1", Store: "C1", Items: []inventory.Item{{SKU: "A", Qty: 1}}}); err != nil {
		t.Fatal(err)
	}
}

// The shared suite of inventory.Reservations on every Redis.
func TestReservationsSuite(t *testing.T) {
	onEveryRedis(t, func(t *testing.T, client rueidis.Client) {
		inventorytest.Reservations(t, func(t *testing.T, o inventorytest.ReservationsOptions) (inventory.Reservations, inventory.StockStore) {
			s := newStoreOn(client, invredis.Options{Now: o.Now, MaxHoldsPerStore: o.MaxHoldsPerStore})
			return s, s
		})
	})
}
