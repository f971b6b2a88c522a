package db_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

// openCopy returns a migrated, empty copy of a kind: "postgres" (a private database) or
// "sqlite" (a file).
func openCopy(t *testing.T, kind string) *invdb.Copy {
	url := "sqlite:" + filepath.Join(t.TempDir(), "c.db")
	if kind == "postgres" {
		url = testenv.Postgres(t)
	}
	sd, err := sqldb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	if _, err := sd.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return invdb.New(sd)
}

var kinds = []string{"postgres", "sqlite"}

// copies returns an empty copy of each kind.
func copies(t *testing.T) map[string]*invdb.Copy {
	out := map[string]*invdb.Copy{}
	for _, k := range kinds {
		out[k] = openCopy(t, k)
	}
	return out
}

func change(store, sku string, version, onHand int64, at time.Time) inventory.Change {
	return inventory.Change{ID: at.Format("150405.000") + "-" + store + sku, Store: store, SKU: sku, Type: inventory.Receipt,
		Delta: 1, OnHand: onHand, Version: version, EventID: "e-" + store + sku + "-" + time.Duration(version).String(), At: at}
}

func TestCopy(t *testing.T) {
	for name, c := range copies(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			day := time.Date(2026, 11, 24, 23, 59, 59, 0, time.UTC)
			if p, err := c.Position(ctx); err != nil || p.Cursor != "" || p.Token != 0 {
				t.Fatalf("empty copy: %+v %v", p, err)
			}
			if _, err := c.Claim(ctx, 5); err != nil {
				t.Fatal(err)
			}
			// Two days (two ledger partitions on PostgreSQL), the same record twice in a batch.
			batch := inventory.Projection{Changes: []inventory.Change{
				change("S1", "A", 1, 10, day), change("S1", "A", 2, 9, day.Add(2*time.Second)), change("S2", "B", 1, 4, day.Add(3*time.Second)),
			}, Cursor: "c1", AsOf: day.Add(4 * time.Second)}
			batch.Changes[1].Origin = &inventory.Origin{Partition: 3, Offset: 77}
			if err := c.Commit(ctx, 5, batch); err != nil {
				t.Fatal(err)
			}
			got, err := c.GetMany(ctx, []inventory.Key{{Store: "S2", SKU: "B"}, {Store: "S9", SKU: "X"}, {Store: "S1", SKU: "A"}})
			if err != nil {
				t.Fatal(err)
			}
			if !got[0].Found || got[0].Stock.OnHand != 4 || got[1].Found || !got[2].Found || got[2].Stock.Version != 2 ||
				got[2].Stock.OnHand != 9 || got[2].Stock.Source != inventory.SourceFallback || got[2].Stock.Available != 9 {
				t.Fatalf("lookups in request order: %+v", got)
			}
			if _, err := c.Get(ctx, "S9", "X"); !errors.Is(err, jaego.ErrNotFound) {
				t.Fatalf("unknown pair: %v", err)
			}
			p, err := c.Position(ctx)
			if err != nil || p.Cursor != "c1" || p.Token != 5 || p.Changes != 3 || !p.AsOf.Equal(day.Add(4*time.Second)) {
				t.Fatalf("position: %+v %v", p, err)
			}
			// Only if higher: an older record (a snapshot read late) does not go back.
			if err := c.Commit(ctx, 5, inventory.Projection{Records: []inventory.Stock{{Store: "S1", SKU: "A", OnHand: 99, Version: 1}}, Cursor: "c1"}); err != nil {
				t.Fatal(err)
			}
			if st, _ := c.Get(ctx, "S1", "A"); st.OnHand != 9 || st.Version != 2 {
				t.Fatalf("an older record overwrote a newer one: %+v", st)
			}
			// A stale projector changes nothing.
			if _, err := c.Claim(ctx, 6); err != nil {
				t.Fatal(err)
			}
			stale := inventory.Projection{Changes: []inventory.Change{change("S1", "A", 3, 1, day.Add(5*time.Second))}, Cursor: "stale"}
			if err := c.Commit(ctx, 5, stale); !errors.Is(err, invdb.ErrStaleToken) {
				t.Fatalf("stale token: %v", err)
			}
			if p, _ := c.Position(ctx); p.Cursor != "c1" || p.Changes != 3 {
				t.Fatalf("a stale commit moved the position: %+v", p)
			}
			if _, err := c.Claim(ctx, 5); !errors.Is(err, invdb.ErrStaleToken) {
				t.Fatalf("stale claim: %v", err)
			}
			// History: oldest first, paged, within the range.
			h, err := c.History(ctx, "S1", "A", day.Add(-time.Hour), day.Add(time.Hour), "", 1)
			if err != nil || len(h.Changes) != 1 || h.Changes[0].Version != 1 || h.Next == "" {
				t.Fatalf("history page 1: %+v %v", h, err)
			}
			h, err = c.History(ctx, "S1", "A", day.Add(-time.Hour), day.Add(time.Hour), h.Next, 1)
			if err != nil || len(h.Changes) != 1 || h.Changes[0].Version != 2 || h.Changes[0].OnHand != 9 {
				t.Fatalf("history page 2: %+v %v", h, err)
			}
			if _, err := c.History(ctx, "S1", "A", day, day.Add(time.Hour), "garbage!", 10); !errors.Is(err, inventory.ErrBadCursor) {
				t.Fatalf("bad history cursor: %v", err)
			}
			offs, err := c.KafkaOffsets(ctx)
			if err != nil || len(offs) != 1 || offs[3] != (inventory.OffsetRange{First: 77, Last: 77}) {
				t.Fatalf("kafka offsets: %v %v", offs, err)
			}
			// Retention: the first day goes, the second stays.
			if _, err := c.Prune(ctx, day.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			h, err = c.History(ctx, "S1", "A", day.Add(-48*time.Hour), day.Add(48*time.Hour), "", 10)
			if err != nil || len(h.Changes) != 1 || h.Changes[0].Version != 2 {
				t.Fatalf("history after pruning the first day: %+v %v", h, err)
			}
		})
	}
}
