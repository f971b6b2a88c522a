package db_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/promo"
	"github.com/jaego/jaego/internal/promo/db"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

// open returns a migrated database of each kind: a private PostgreSQL database and a
// SQLite file, so that one migration set and one repository are proven on both.
func open(t *testing.T) map[string]*db.DB {
	out := map[string]*db.DB{}
	for name, url := range map[string]string{
		"postgres": testenv.Postgres(t),
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "p.db"),
	} {
		sd, err := sqldb.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		d := db.New(sd)
		t.Cleanup(func() { d.Close() })
		if err := d.CheckSchema(context.Background()); !errors.Is(err, sqldb.ErrSchemaBehind) {
			t.Fatalf("%s: fresh database: want ErrSchemaBehind, got %v", name, err)
		}
		if v, err := d.Migrate(context.Background(), nil); err != nil || v < 1 {
			t.Fatalf("%s: migrate: %d %v", name, v, err)
		}
		if v, err := d.Migrate(context.Background(), nil); err != nil || v < 1 {
			t.Fatalf("%s: second migrate: %d %v", name, v, err)
		}
		if err := d.CheckSchema(context.Background()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = d
	}
	return out
}

var now = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

func spec(name string, from, to time.Time) promo.Spec {
	s := promo.Spec{Name: name, StartsAt: from, EndsAt: to, Priority: 3, Channels: []string{"online"},
		Stores: []string{"S002", "S001"}, Targets: []string{"B", "A"}, Condition: promo.Condition{MinQty: 2, MinAmount: 1000},
		Gifts: []promo.Gift{{SKU: "G2", Qty: 1}, {SKU: "G1", Qty: 3}}, MaxPerOrder: 4}
	s.Normalize()
	return s
}

func TestRepository(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := spec("Sale", now, now.Add(48*time.Hour))
			p, err := d.Create(ctx, s, now)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Get(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Fatalf("read back\n%+v\nwant\n%+v", got, p)
			}
			if got.Gifts[0].SKU != "G2" {
				t.Fatalf("gift order not kept: %+v", got.Gifts)
			}
			if _, err := d.Get(ctx, "nope"); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("missing id: %v", err)
			}

			// Candidates: overlap with the window, active only.
			later, _ := d.Create(ctx, spec("Later", now.Add(72*time.Hour), now.Add(96*time.Hour)), now)
			stopped, _ := d.Create(ctx, spec("Stopped", now, now.Add(time.Hour)), now)
			if _, err := d.Stop(ctx, stopped.ID, now); err != nil {
				t.Fatal(err)
			}
			ids := func(from, to time.Time) []string {
				ps, err := d.Candidates(ctx, from, to)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, p := range ps {
					out = append(out, p.Name)
				}
				return out
			}
			if got := ids(now, now.Add(24*time.Hour)); !reflect.DeepEqual(got, []string{"Sale"}) {
				t.Fatalf("today's candidates %v", got)
			}
			if got := ids(now.Add(72*time.Hour), now.Add(73*time.Hour)); !reflect.DeepEqual(got, []string{"Later"}) {
				t.Fatalf("candidates in 3 days %v", got)
			}
			if got := ids(now.Add(48*time.Hour), now.Add(72*time.Hour)); got != nil {
				t.Fatalf("ends_at and starts_at are exclusive: %v", got)
			}

			// Update replaces children; Stop keeps the spec.
			up, err := d.Update(ctx, later.ID, func(cur *promo.Promotion) (promo.Spec, error) {
				s := cur.Spec
				s.Name, s.Targets, s.Stores = "Renamed", []string{"Z"}, []string{}
				return s, nil
			}, now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			back, _ := d.Get(ctx, later.ID)
			if back.Name != "Renamed" || !reflect.DeepEqual(back.Targets, []string{"Z"}) || len(back.Stores) != 0 ||
				!back.UpdatedAt.Equal(now.Add(time.Minute)) || !reflect.DeepEqual(back, up) {
				t.Fatalf("after update %+v", back)
			}
			if _, err := d.Update(ctx, "nope", func(*promo.Promotion) (promo.Spec, error) { return s, nil }, now); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("update of a missing id: %v", err)
			}
			boom := errors.New("refused")
			if _, err := d.Update(ctx, later.ID, func(*promo.Promotion) (promo.Spec, error) { return s, boom }, now); !errors.Is(err, boom) {
				t.Fatalf("refused change: %v", err)
			}
			if again, _ := d.Get(ctx, later.ID); !reflect.DeepEqual(again, back) {
				t.Fatal("a refused change changed the promotion")
			}
		})
	}
}

// TestSchemaConstraints: the schema refuses what the domain refuses, for writers that go
// around the domain (a hand-written SQL fix, another service).
func TestSchemaConstraints(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ins := `INSERT INTO promotions (id, name, starts_at_ms, ends_at_ms, min_qty, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, 0, 0)`
			if _, err := d.ExecContext(ctx, ins, "ok", "fine", 1, 2, 1); err != nil {
				t.Fatalf("valid row refused: %v", err)
			}
			for i, args := range [][]any{
				{"a", "x", 5, 5, 1},  // ends_at not after starts_at
				{"b", "x", 1, 2, 0},  // min_qty < 1
				{"c", "", 1, 2, 1},   // empty name
				{"ok", "x", 1, 2, 1}, // duplicate id
			} {
				if _, err := d.ExecContext(ctx, ins, args...); err == nil {
					t.Errorf("row %d %v accepted", i, args)
				}
			}
			for i, q := range []string{
				`INSERT INTO promotion_channels VALUES ('ok', 'phone')`,
				`INSERT INTO promotion_channels VALUES ('missing', 'online')`,
				`INSERT INTO promotion_gifts VALUES ('ok', 0, 'G', 0)`,
				`INSERT INTO promotions (id, name, status, starts_at_ms, ends_at_ms, min_qty, created_at_ms, updated_at_ms) VALUES ('s', 'x', 'paused', 1, 2, 1, 0, 0)`,
			} {
				if _, err := d.ExecContext(ctx, q); err == nil {
					t.Errorf("statement %d accepted: %s", i, q)
				}
			}
		})
	}
}

// TestConcurrentUpdates: 16 writers each add their own target to one promotion through
// Update; none is lost (each read-modify-write sees the one before).
func TestConcurrentUpdates(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p, err := d.Create(ctx, spec("Hot", now, now.Add(time.Hour)), now)
			if err != nil {
				t.Fatal(err)
			}
			const writers = 16
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for i := range writers {
				wg.Go(func() {
					_, err := d.Update(ctx, p.ID, func(cur *promo.Promotion) (promo.Spec, error) {
						s := cur.Spec
						s.Targets = append(append([]string{}, s.Targets...), fmt.Sprintf("W%02d", i))
						s.Normalize()
						return s, s.Validate()
					}, now)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got, _ := d.Get(ctx, p.ID)
			if len(got.Targets) != 2+writers {
				t.Fatalf("targets after %d concurrent additions: %d %v", writers, len(got.Targets), got.Targets)
			}
		})
	}
}

func TestList(t *testing.T) {
	for name, d := range open(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var ids []string
			for i := range 3 {
				p, err := d.Create(ctx, spec(fmt.Sprintf("L%d", i), now, now.Add(time.Hour)), now)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, p.ID)
			}
			if _, err := d.Stop(ctx, ids[0], now); err != nil {
				t.Fatal(err)
			}
			page, err := d.List(ctx, "", "", 2)
			if err != nil || len(page) != 2 || page[0].ID != ids[0] || page[1].ID != ids[1] || len(page[1].Targets) != 2 {
				t.Fatalf("first page: %v %+v", err, page)
			}
			page, err = d.List(ctx, "", page[1].ID, 2)
			if err != nil || len(page) != 1 || page[0].ID != ids[2] {
				t.Fatalf("second page: %v %+v", err, page)
			}
			active, err := d.List(ctx, promo.Active, "", 10)
			if err != nil || len(active) != 2 || active[0].ID != ids[1] {
				t.Fatalf("active: %v %+v", err, active)
			}
		})
	}
}
