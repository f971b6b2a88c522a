package load_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	"github.com/jaego/jaego/internal/inventory/load"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

var prefixes atomic.Int64

func newStore(client rueidis.Client) *invredis.Store {
	return invredis.New(client, invredis.Options{Prefix: fmt.Sprintf("l%d", prefixes.Add(1)), Groups: 5})
}

// snapshot is a CSV of stores × skus with on_hand and safety from seed.
func snapshot(stores, skus int, seed uint64) (string, map[inventory.Key][2]int64) {
	r := rand.New(rand.NewPCG(seed, 1))
	want := map[inventory.Key][2]int64{}
	var b strings.Builder
	b.WriteString("store,sku,on_hand,safety\n")
	for s := range stores {
		for k := range skus {
			key := inventory.Key{Store: fmt.Sprintf("S%03d", s), SKU: fmt.Sprintf("K%05d", k)}
			oh, sf := r.Int64N(50), r.Int64N(3)
			want[key] = [2]int64{oh, sf}
			fmt.Fprintf(&b, "%s,%s,%d,%d\n", key.Store, key.SKU, oh, sf)
		}
	}
	return b.String(), want
}

func check(t *testing.T, csv string) load.Summary {
	t.Helper()
	sum, err := load.Check(strings.NewReader(csv), func(e load.LineError) { t.Errorf("bad line: %v", e) })
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func run(t *testing.T, l inventory.Loader, csv string, batch int) load.Report {
	t.Helper()
	sum := check(t, csv)
	rep, err := load.Run(context.Background(), l, sum.ID, strings.NewReader(csv), load.Options{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCheckReportsEveryBadLine(t *testing.T) {
	csv := "store,sku,on_hand,safety\n" +
		"S1,A,10,1\n" + // 2 good
		"S1,B,x\n" + // 3 on_hand not a number
		"bad store!,A,3\n" + // 4 store id
		"S1,bad sku!,3\n" + // 5 sku id
		"S1,C,-1000000001\n" + // 6 below −MaxQty (a negative on_hand within it is a state the stores reach)
		"S1,D,1,-2\n" + // 7 negative safety
		"S1,E,1,y\n" + // 8 safety not a number
		"S1,F\n" + // 9 too few fields
		"S1,G,1,2,3\n" + // 10 too many
		"S1,H,99999999999\n" + // 11 beyond MaxQty
		"S1,\"I,1\n" // 12 broken quoting (to the end)
	var bad []int64
	sum, err := load.Check(strings.NewReader(csv), func(e load.LineError) { bad = append(bad, e.Line) })
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; fmt.Sprint(bad) != fmt.Sprint(want) {
		t.Errorf("bad lines %v, want %v", bad, want)
	}
	if sum.Rows != 1 || sum.Bad != 10 {
		t.Errorf("summary %+v", sum)
	}
	// Run refuses a bad line too, with its number, having applied nothing of its batch.
	client := testenv.EmbeddedRedis(t)
	s := newStore(client)
	_, err = load.Run(context.Background(), s, sum.ID, strings.NewReader(csv), load.Options{})
	var le load.LineError
	if !errors.As(err, &le) || le.Line != 3 {
		t.Errorf("run of a bad file: %v", err)
	}
	if _, err := s.Get(context.Background(), "S1", "A"); err == nil {
		t.Errorf("a row of a bad file was loaded")
	}
}

// TestLoad on every Redis jaego runs on: the numbers land, a re-run is a no-op, another file
// with the same numbers changes nothing, and the feed has one set change per changed row.
func TestLoad(t *testing.T) {
	cluster, _ := testenv.RedisCluster(t)
	standalone, _ := testenv.Redis(t)
	for name, client := range map[string]rueidis.Client{"standalone": standalone, "cluster": cluster, "embedded": testenv.EmbeddedRedis(t)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newStore(client)
			from := time.Now().Add(-time.Minute)
			csv, want := snapshot(12, 50, 1)
			rep := run(t, s, csv, 97)
			if rep.Rows != 600 || rep.Applied != 600 {
				t.Fatalf("first load %+v", rep)
			}
			for k, w := range want {
				st, err := s.Get(ctx, k.Store, k.SKU)
				if err != nil || st.OnHand != w[0] || st.Safety != w[1] || st.Version != 1 {
					t.Fatalf("%v: %+v %v, want on_hand %d safety %d version 1", k, st, err, w[0], w[1])
				}
			}
			again := run(t, s, csv, 64)
			if again.Duplicate != 600 {
				t.Errorf("re-run %+v, want 600 duplicates", again)
			}
			// The same numbers in another order (another file, another load): unchanged.
			lines := strings.Split(strings.TrimSpace(csv), "\n")[1:]
			for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
				lines[i], lines[j] = lines[j], lines[i]
			}
			same := run(t, s, strings.Join(lines, "\n")+"\n", 200)
			if same.Unchanged != 600 {
				t.Errorf("same numbers, other file: %+v, want 600 unchanged", same)
			}
			feed := invredis.NewFeed(s, invredis.FeedOptions{})
			var changes []inventory.Change
			if _, err := feed.StreamChanges(ctx, from, time.Now().Add(time.Minute), "", func(cs []inventory.Change) error {
				changes = append(changes, cs...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(changes) != 600 {
				t.Fatalf("%d changes in the feed, want 600", len(changes))
			}
			for _, c := range changes {
				w := want[inventory.Key{Store: c.Store, SKU: c.SKU}]
				if c.Type != inventory.Set || c.OnHand != w[0] || c.Safety != w[1] || c.Delta != w[0] || !strings.HasPrefix(c.EventID, check(t, csv).ID+"-") {
					t.Fatalf("change %+v, want set to %v by the load", c, w)
				}
			}
		})
	}
}

// failing fails its Load call number n (from 1), having applied nothing of it.
type failing struct {
	inventory.Loader
	calls, n int
}

func (f *failing) Load(ctx context.Context, id string, rows []inventory.LoadRow) ([]inventory.Result, error) {
	if f.calls++; f.calls == f.n {
		return nil, errors.New("connection reset")
	}
	return f.Loader.Load(ctx, id, rows)
}

// TestInterruptedLoadGoesOn: a load that stopped half-way, run again, applies the rest,
// every row exactly once, even when live sales changed rows it had already loaded.
func TestInterruptedLoadGoesOn(t *testing.T) {
	client, _ := testenv.Redis(t)
	ctx := context.Background()
	s := newStore(client)
	csv, want := snapshot(8, 100, 2)
	sum := check(t, csv)
	rep, err := load.Run(ctx, &failing{Loader: s, n: 4}, sum.ID, strings.NewReader(csv), load.Options{Batch: 50})
	if err == nil || rep.Rows != 150 {
		t.Fatalf("interrupted load: %+v %v", rep, err)
	}
	// A sale on a loaded row: the re-run must not set it back.
	inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Sale, "S000", "K00000", 1))
	rest := run(t, s, csv, 50)
	if rest.Duplicate != 150 || rest.Applied != 650 {
		t.Fatalf("re-run %+v, want 150 duplicates and 650 applied", rest)
	}
	for k, w := range want {
		st, err := s.Get(ctx, k.Store, k.SKU)
		wantOH, wantV := w[0], int64(1)
		if k == (inventory.Key{Store: "S000", SKU: "K00000"}) {
			wantOH, wantV = w[0]-1, 2
		}
		if err != nil || st.OnHand != wantOH || st.Version != wantV {
			t.Fatalf("%v: %+v %v, want on_hand %d version %d", k, st, err, wantOH, wantV)
		}
	}
}

// TestLoadRacingSales pins the semantics of a load under live traffic: a row sets on_hand as
// of the moment it is applied (a stock count), and every sale counts exactly once — before
// the row it is overwritten by the count, after it on top of it. 8 goroutines sell while
// the snapshot loads; the final record of every row is the load's number less the sales the
// feed shows after the load's change, and every sale is in the feed once.
func TestLoadRacingSales(t *testing.T) {
	cluster, _ := testenv.RedisCluster(t)
	ctx := context.Background()
	s := newStore(cluster)
	from := time.Now().Add(-time.Minute)
	csv, want := snapshot(10, 100, 3)
	keys := make([]inventory.Key, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	var sold atomic.Int64
	stop, going := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[r.IntN(len(keys))]
				res := inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Sale, k.Store, k.SKU, 1))
				if res[0].Status == inventory.Applied && sold.Add(1) == 200 {
					once.Do(func() { close(going) })
				}
			}
		})
	}
	// Let the sellers get going before the load, and keep them going through it.
	goingCtx, stopGoing := context.WithTimeout(context.Background(), time.Minute)
	defer stopGoing()
	testenv.Recv(t, goingCtx, going, "200 sales before the load")
	rep := run(t, s, csv, 64)
	close(stop)
	wg.Wait()
	// A sale on a row not loaded yet makes its on_hand negative: no row can find its
	// numbers already there.
	if rep.Applied != 1000 {
		t.Fatalf("load %+v", rep)
	}
	feed := invredis.NewFeed(s, invredis.FeedOptions{})
	byKey := map[inventory.Key][]inventory.Change{}
	sales := int64(0)
	if _, err := feed.StreamChanges(ctx, from, time.Now().Add(time.Minute), "", func(cs []inventory.Change) error {
		for _, c := range cs {
			k := inventory.Key{Store: c.Store, SKU: c.SKU}
			byKey[k] = append(byKey[k], c)
			if c.Type == inventory.Sale {
				sales++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if sales != sold.Load() {
		t.Errorf("%d sales in the feed, %d applied", sales, sold.Load())
	}
	for _, k := range keys {
		st, err := s.Get(ctx, k.Store, k.SKU)
		if err != nil {
			t.Fatal(err)
		}
		loaded, after := int64(-1), int64(0)
		for _, c := range byKey[k] { // a key's changes come in the order applied
			switch {
			case c.Type == inventory.Set:
				loaded, after = c.OnHand, 0
			case loaded >= 0:
				after += c.Delta
			}
		}
		if loaded < 0 {
			t.Fatalf("%v: no set change of the load in the feed", k)
		}
		if loaded != want[k][0] || st.OnHand != loaded+after || st.Version != int64(len(byKey[k])) {
			t.Fatalf("%v: final %+v; the load set %d (file: %d) and %d came after; %d changes", k, st, loaded, want[k][0], after, len(byKey[k]))
		}
	}
}
