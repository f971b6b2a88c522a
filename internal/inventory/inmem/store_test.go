package inmem_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
)

func TestStore(t *testing.T) {
	inventorytest.StockStore(t, func(t *testing.T) inventory.StockStore { return inmem.New(inmem.Options{}) })
}

func TestFeed(t *testing.T) {
	inventorytest.ChangeFeed(t, func(t *testing.T) inventorytest.Feed {
		var ahead atomic.Int64
		s := inmem.New(inmem.Options{Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
		return inventorytest.Feed{Store: s, Feed: s, Ahead: func(d time.Duration) { ahead.Add(int64(d)) }}
	})
}

// The shared suite of inventory.Reservations, in memory.
func TestReservations(t *testing.T) {
	inventorytest.Reservations(t, func(t *testing.T, o inventorytest.ReservationsOptions) (inventory.Reservations, inventory.StockStore) {
		s := inmem.New(inmem.Options{Now: o.Now, MaxHoldsPerStore: o.MaxHoldsPerStore})
		return s, s
	})
}
