// Package demo is the demo data of `jaego dev`: five stores in Seoul and five SKUs of a
// beauty and health shop, their stock, and three gift promotions. Tests that start jaego dev read
// the same names from here.
package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/promo"
	"github.com/jaego/jaego/internal/sourcing"
)

// The demo stores and SKUs.
var (
	Stores = []string{"S001", "S002", "S003", "S004", "S005"}
	SKUs   = []string{"8809461234567", "8809461234574", "8809461234581", "8801234567890", "8807654321098"}
)

// Directory is where the demo stores are (design §15): real places in Seoul. Jamsil
// only hands over in store; Yeouido is closed, so sourcing shows why it is passed over.
var Directory = []sourcing.Store{
	{ID: "S001", Name: "Gangnam Station", Lat: 37.4979, Lon: 127.0276, Capabilities: []string{sourcing.Pickup, sourcing.SameDay}, Status: sourcing.Open},
	{ID: "S002", Name: "Hongdae", Lat: 37.5563, Lon: 126.9236, Capabilities: []string{sourcing.Pickup, sourcing.SameDay}, Status: sourcing.Open},
	{ID: "S003", Name: "Myeongdong", Lat: 37.5636, Lon: 126.9826, Capabilities: []string{sourcing.Pickup, sourcing.SameDay}, Status: sourcing.Open},
	{ID: "S004", Name: "Jamsil", Lat: 37.5133, Lon: 127.1001, Capabilities: []string{sourcing.Pickup}, Status: sourcing.Open},
	{ID: "S005", Name: "Yeouido", Lat: 37.5219, Lon: 126.9245, Capabilities: []string{sourcing.Pickup, sourcing.SameDay}, Status: sourcing.Closed},
}

// PutDirectory puts the demo directory: a store put again is the same store.
func PutDirectory(ctx context.Context, dir sourcing.Directory) error {
	for _, s := range Directory {
		if err := dir.Put(ctx, s); err != nil {
			return fmt.Errorf("demo store %s: %w", s.ID, err)
		}
	}
	return nil
}

// Stock applies the demo stock as ordinary events with fixed ids, so the seed is
// idempotent and shows up in the change feed like any till event.
func Stock(ctx context.Context, store inventory.StockStore) error {
	var events []inventory.Event
	for i, st := range Stores {
		for j, sku := range SKUs {
			id := fmt.Sprintf("seed-%s-%s", st, sku)
			events = append(events,
				inventory.Event{EventID: id + "-count", Type: inventory.Set, Store: st, SKU: sku, Qty: int64(5 + 7*i + 3*j), Source: "seed"},
				inventory.Event{EventID: id + "-safety", Type: inventory.SetSafety, Store: st, SKU: sku, Qty: 1, Source: "seed"},
			)
			if j%2 == 0 {
				events = append(events, inventory.Event{EventID: id + "-reserve", Type: inventory.Reserve, Store: st, SKU: sku, Qty: 2, Source: "seed"})
			}
		}
	}
	results, err := store.Apply(ctx, events)
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Status == inventory.Rejected {
			return fmt.Errorf("seed event %s rejected: %w", r.EventID, r.Err)
		}
	}
	return nil
}

// PromotionStore is where the demo promotions go (promo/db's DB).
type PromotionStore interface {
	Count(ctx context.Context) (int64, error)
	Create(ctx context.Context, s promo.Spec, now time.Time) (promo.Promotion, error)
}

// Promotions adds the demo promotions to an empty store: two running for a month from
// today, one that starts tomorrow.
func Promotions(ctx context.Context, db PromotionStore, now time.Time) error {
	n, err := db.Count(ctx)
	if err != nil || n > 0 {
		return err
	}
	day := now.UTC().Truncate(24 * time.Hour)
	for _, s := range []promo.Spec{
		{Name: "Buy 2 toners, get a sample kit", StartsAt: day, EndsAt: day.AddDate(0, 1, 0), Priority: 10,
			Channels: []string{promo.ChannelOnline, promo.ChannelStore}, Targets: []string{SKUs[0], SKUs[1]},
			Condition: promo.Condition{MinQty: 2}, Gifts: []promo.Gift{{SKU: "GIFT-SAMPLE-KIT", Qty: 1}}, MaxPerOrder: 3},
		{Name: "30,000 won of sun care, get a pouch", StartsAt: day, EndsAt: day.AddDate(0, 1, 0), Priority: 5,
			Channels: []string{promo.ChannelOnline}, Targets: []string{SKUs[2], SKUs[3]},
			Condition: promo.Condition{MinQty: 1, MinAmount: 30000}, Gifts: []promo.Gift{{SKU: "GIFT-POUCH", Qty: 1}}, MaxPerOrder: 1},
		{Name: "Store S001 opening: a photo card per item", StartsAt: day.AddDate(0, 0, 1), EndsAt: day.AddDate(0, 0, 8),
			Channels: []string{promo.ChannelStore}, Stores: []string{Stores[0]}, Targets: SKUs,
			Condition: promo.Condition{MinQty: 1}, Gifts: []promo.Gift{{SKU: "GIFT-PHOTOCARD", Qty: 1}}},
	} {
		s.Normalize()
		if err := s.Validate(); err != nil {
			return err
		}
		if _, err := db.Create(ctx, s, now); err != nil {
			return err
		}
	}
	return nil
}
