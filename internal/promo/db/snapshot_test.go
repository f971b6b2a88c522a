package db

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/promo"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

// A promotion created while a read is between its statements (an admin change during the
// daily rebuild) must not lend its targets and gifts to another promotion of that read.
func TestReadIsOneSnapshot(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]string{
		"postgres": testenv.Postgres(t),
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "p.db"),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			reader, writer := openMigrated(t, url), openMigrated(t, url)
			now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
			mk := func(name, target, gift string) promo.Spec {
				s := promo.Spec{Name: name, StartsAt: now, EndsAt: now.Add(24 * time.Hour), Channels: []string{"online"},
					Targets: []string{target}, Condition: promo.Condition{MinQty: 1}, Gifts: []promo.Gift{{SKU: gift, Qty: 1}}}
				s.Normalize()
				return s
			}
			first, err := reader.Create(ctx, mk("first", "A", "GA"), now)
			if err != nil {
				t.Fatal(err)
			}
			created := false
			reader.afterPromotionsRead = func() {
				if created {
					return
				}
				created = true
				if _, err := writer.Create(ctx, mk("late", "B", "GB"), now); err != nil {
					t.Error(err)
				}
			}
			ps, err := reader.Candidates(ctx, now, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if !created {
				t.Fatal("the hook did not run: the test proves nothing")
			}
			if len(ps) != 1 || ps[0].ID != first.ID || !slices.Equal(ps[0].Targets, []string{"A"}) ||
				len(ps[0].Gifts) != 1 || ps[0].Gifts[0].SKU != "GA" {
				t.Fatalf("read during a create: %+v", ps)
			}
			ps, err = reader.Candidates(ctx, now, now.Add(time.Hour))
			if err != nil || len(ps) != 2 {
				t.Fatalf("the next read must see both promotions: %d %v", len(ps), err)
			}
		})
	}
}

func openMigrated(t *testing.T, url string) *DB {
	t.Helper()
	sd, err := sqldb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	if _, err := sd.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return New(sd)
}
