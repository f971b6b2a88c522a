// Package inventory is the store-inventory domain: the stock record of one store × SKU, the
// stock events that change it, their exact rules, and the errors a caller can act on.
// It imports no driver; the Redis store, the HTTP API and the Kafka pipeline live in
// subpackages named after what they depend on.
package inventory

import (
	"context"
	"time"
)

// Stock is the live stock of one SKU in one store (design §2).
type Stock struct {
	Store     string    `json:"store"`
	SKU       string    `json:"sku"`
	OnHand    int64     `json:"on_hand"`
	Reserved  int64     `json:"reserved"`
	Safety    int64     `json:"safety"`
	Available int64     `json:"available"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
	// Source says where the record was read: "primary" (Redis) or "fallback" (the durable
	// copy in PostgreSQL, while the breaker is open; design §8).
	Source string `json:"source,omitempty"`
}

// The sources of a stock record.
const (
	SourcePrimary  = "primary"
	SourceFallback = "fallback"
)

// AvailableOf is what the online shop may still promise: on_hand minus what is reserved for
// open orders and the safety stock the store keeps back, never below zero.
func AvailableOf(onHand, reserved, safety int64) int64 {
	return max(0, onHand-reserved-safety)
}

// WithAvailable returns s with Available recomputed from its counters.
func (s Stock) WithAvailable() Stock {
	s.Available = AvailableOf(s.OnHand, s.Reserved, s.Safety)
	return s
}

// AvailableAt is the available stock of skus at store, for stock-aware gifts (design §12):
// one read of them all; a SKU without a record is left out.
func AvailableAt(ctx context.Context, r StockReader, store string, skus []string) (map[string]int64, error) {
	keys := make([]Key, len(skus))
	for i, sku := range skus {
		keys[i] = Key{Store: store, SKU: sku}
	}
	found, err := r.GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(found))
	for _, l := range found {
		if l.Found {
			out[l.Stock.SKU] = l.Stock.Available
		}
	}
	return out, nil
}
