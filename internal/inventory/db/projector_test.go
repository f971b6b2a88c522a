package db_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/testenv"
)

var lockPrefixes atomic.Int64

// projecting runs a projector from the store's feed into c until the test ends.
func projecting(t *testing.T, client rueidis.Client, store *invredis.Store, c *invdb.Copy) {
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := inventory.NewProjector(inventory.ProjectorOptions{Feed: invredis.NewFeed(store, invredis.FeedOptions{}), Snapshots: store,
		Copy: c, Locker: lock.New(client, lock.Options{Prefix: fmt.Sprintf("proj%d:lock", lockPrefixes.Add(1)), Logger: log}), Batch: 500, Idle: 200 * time.Millisecond, Logger: log})
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// caughtUp waits until the copy has a feed position and holds n changes (a state to
// reach, bounded).
func caughtUp(t *testing.T, c *invdb.Copy, n int64) {
	t.Helper()
	var p inventory.CopyPosition
	var err error
	testenv.Eventually(t, fmt.Sprintf("the copy to hold %d changes", n), 60*time.Second, func() bool {
		p, err = c.Position(context.Background())
		return err == nil && p.Cursor != "" && p.Changes >= n
	}, func() string { return fmt.Sprintf("it holds %d (%v)", p.Changes, err) })
	if p.Changes > n {
		t.Fatalf("the copy holds %d changes, %d were applied", p.Changes, n)
	}
}

// equalCopy fails unless every record of keys is the same in Redis and in the copy.
func equalCopy(t *testing.T, store inventory.StockStore, c *invdb.Copy, keys []inventory.Key) {
	t.Helper()
	want, err := store.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		w, g := want[i].Stock, got[i].Stock
		if want[i].Found != got[i].Found || w.OnHand != g.OnHand || w.Reserved != g.Reserved || w.Safety != g.Safety ||
			w.Version != g.Version || !w.UpdatedAt.Equal(g.UpdatedAt) {
			t.Fatalf("%s/%s: Redis %+v, copy %+v", k.Store, k.SKU, want[i], got[i])
		}
	}
}

// The copy follows Redis exactly under concurrency: records that existed before the
// projector first ran come from a snapshot, then 16 writers apply 4,000 random events while
// it projects; the copy equals Redis record for record, the ledger has each change once,
// and the copy passes the read half of the store suite.
func TestProjectorFollowsRedis(t *testing.T) {
	for name, c := range copies(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // SQLite and PostgreSQL, each on a Redis of its own
			client, _ := testenv.Redis(t)
			store := invredis.New(client, invredis.Options{Groups: 4})
			before := inventorytest.ApplyRandom(t, store, 4, 400, 3, 10, 1) // only in the snapshot
			projecting(t, client, store, c)
			caughtUp(t, c, 0) // the snapshot is in
			// 16 writers of 1,500 events: 24,000 changes projected while they are applied.
			applied := inventorytest.ApplyRandom(t, store, 16, 1500, 6, 20, 2)
			caughtUp(t, c, int64(len(applied)))
			var keys []inventory.Key
			for s := range 6 {
				for k := range 20 {
					keys = append(keys, inventory.Key{Store: fmt.Sprintf("F%02d", s), SKU: fmt.Sprintf("K%03d", k)})
				}
			}
			equalCopy(t, store, c, keys)
			// The ledger: every change projected after the snapshot, once, in apply order.
			var ledger []inventory.Change
			for _, k := range keys {
				h, err := c.History(context.Background(), k.Store, k.SKU, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "", 100000)
				if err != nil {
					t.Fatal(err)
				}
				for i := range h.Changes {
					h.Changes[i].At = h.Changes[i].At.Truncate(time.Millisecond)
				}
				ledger = append(ledger, h.Changes...)
			}
			var after []inventory.Result
			seen := map[string]bool{}
			for _, r := range before {
				seen[r.Stock.Store+"/"+r.EventID] = true
			}
			after = append(after, applied...)
			var fromNow []inventory.Change
			for _, ch := range ledger {
				if !seen[ch.Store+"/"+ch.EventID] {
					fromNow = append(fromNow, ch)
				}
			}
			checkLedger(t, fromNow, after, before)
		})
	}
}

// checkLedger: every result of applied is in the ledger once with its record; nothing of
// the snapshot-only events is.
func checkLedger(t *testing.T, ledger []inventory.Change, applied, snapshotOnly []inventory.Result) {
	t.Helper()
	if len(ledger) != len(applied) {
		t.Fatalf("ledger has %d changes after the snapshot, %d were applied", len(ledger), len(applied))
	}
	want := map[string]inventory.Stock{}
	for _, r := range applied {
		want[r.Stock.Store+"/"+r.EventID] = r.Stock
	}
	ids := map[string]bool{}
	for _, ch := range ledger {
		k := ch.Store + "/" + ch.EventID
		st, ok := want[k]
		if !ok || ids[ch.ID] || ch.Version != st.Version || ch.OnHand != st.OnHand || ch.Reserved != st.Reserved {
			t.Fatalf("ledger entry %+v: applied %+v (known %v, id seen %v)", ch, st, ok, ids[ch.ID])
		}
		ids[ch.ID] = true
	}
	for _, r := range snapshotOnly {
		if ids[r.Stock.Store+"/"+r.EventID] {
			t.Fatalf("an event of the snapshot is in the ledger: %s", r.EventID)
		}
	}
}

// projected is a stock store that writes Redis and reads the durable copy, once the
// projector has brought it up to date: the copy held to the read half of the store suite.
type projected struct {
	inventory.StockStore
	copy    *invdb.Copy
	t       *testing.T
	mu      sync.Mutex
	applied int64
}

func (p *projected) Apply(ctx context.Context, events []inventory.Event) ([]inventory.Result, error) {
	res, err := p.StockStore.Apply(ctx, events)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range res {
		if r.Status == inventory.Applied {
			p.applied++
		}
	}
	caughtUp(p.t, p.copy, p.applied)
	return res, err
}

func (p *projected) Get(ctx context.Context, store, sku string) (inventory.Stock, error) {
	return p.copy.Get(ctx, store, sku)
}

func (p *projected) GetMany(ctx context.Context, keys []inventory.Key) ([]inventory.Lookup, error) {
	return p.copy.GetMany(ctx, keys)
}

func TestCopyReadSuite(t *testing.T) {
	client, _ := testenv.Redis(t)
	var n atomic.Int64
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			inventorytest.StockReads(t, func(t *testing.T) inventory.StockStore {
				c := openCopy(t, kind)
				store := invredis.New(client, invredis.Options{Prefix: fmt.Sprintf("rs%d", n.Add(1)), Groups: 4})
				projecting(t, client, store, c)
				caughtUp(t, c, 0)
				return &projected{StockStore: store, copy: c, t: t}
			})
		})
	}
}
