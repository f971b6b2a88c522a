package webhook

import (
	"context"

	"github.com/jaego/jaego/internal/inventory"
)

// Stock levels (design §14) are judged on change entries alone, so that every instance and
// every replay agrees: an alert is a property of a change and the one before it of the same
// store × SKU (version − 1), never of when a subscription started reading.
//
// The level before a change comes from, in this order:
//  1. the entry itself, for every type that moves on_hand (delta is on_hand's change, and
//     reserved and safety stay; a fulfill moves reserved by the same delta);
//  2. the change of version − 1, when this subscription's reading just passed it;
//  3. the durable copy's ledger (every change of the last 90 days, by store, SKU and
//     version): how a subscription that starts mid-day knows the level before its first
//     reserve, release or set_safety of an item.
//
// Only a change whose previous version is older than the ledger's retention has no level
// before it: it raises no alert, except that a reserve always comes from a level above 0
// (a reserve of more than is available is refused), so one that leaves 0 is a stock.out.

// PriorReader reads the change that made version of store × SKU (the copy's ledger).
type PriorReader interface {
	ChangeAt(ctx context.Context, store, sku string, version int64) (inventory.Change, bool, error)
}

// Alert is one stock-level alert: its type, the level it crossed to, and the change.
type Alert struct {
	Type      string
	Available int64
	Threshold int64
	Change    inventory.Change
}

type itemKey struct{ store, sku string }

type level struct {
	version   int64
	available int64
}

// judge remembers the level after the last change of each item it saw (a bounded memory:
// it forgets all at once past maxItems, and the ledger answers again).
type judge struct {
	prior PriorReader
	last  map[itemKey]level
}

const maxItems = 200_000

func newJudge(prior PriorReader) *judge {
	return &judge{prior: prior, last: map[itemKey]level{}}
}

// before is the available level before c, and whether it is known.
func (j *judge) before(ctx context.Context, c inventory.Change) (int64, bool, error) {
	switch c.Type {
	case inventory.Reserve, inventory.Release, inventory.SetSafety:
	case inventory.Fulfill:
		return inventory.AvailableOf(c.OnHand-c.Delta, c.Reserved-c.Delta, c.Safety), true, nil
	default:
		return inventory.AvailableOf(c.OnHand-c.Delta, c.Reserved, c.Safety), true, nil
	}
	if l, ok := j.last[itemKey{c.Store, c.SKU}]; ok && l.version == c.Version-1 {
		return l.available, true, nil
	}
	if c.Version <= 1 {
		return 0, true, nil // the item's first change: nothing was available before it
	}
	if j.prior == nil {
		return 0, false, nil
	}
	p, ok, err := j.prior.ChangeAt(ctx, c.Store, c.SKU, c.Version-1)
	if err != nil || !ok {
		return 0, false, err
	}
	return inventory.AvailableOf(p.OnHand, p.Reserved, p.Safety), true, nil
}

// judge says which alerts of sub c raises, and remembers its level.
func (j *judge) judge(ctx context.Context, sub Subscription, c inventory.Change) ([]Alert, error) {
	after := inventory.AvailableOf(c.OnHand, c.Reserved, c.Safety)
	prev, known, err := j.before(ctx, c)
	if err != nil {
		return nil, err
	}
	if len(j.last) >= maxItems {
		clear(j.last)
	}
	j.last[itemKey{c.Store, c.SKU}] = level{version: c.Version, available: after}
	if !known {
		if c.Type == inventory.Reserve && after == 0 && sub.Wants(StockOut) {
			return []Alert{{Type: StockOut, Available: 0, Threshold: 0, Change: c}}, nil
		}
		return nil, nil
	}
	return Crossings(sub, prev, after, c), nil
}

// Crossings are the alerts of a move of available from prev to after, for what sub asked.
func Crossings(sub Subscription, prev, after int64, c inventory.Change) []Alert {
	var out []Alert
	if sub.Wants(StockLow) && prev > sub.LowStock && after <= sub.LowStock {
		out = append(out, Alert{Type: StockLow, Available: after, Threshold: sub.LowStock, Change: c})
	}
	if sub.Wants(StockOut) && prev > 0 && after == 0 {
		out = append(out, Alert{Type: StockOut, Available: after, Threshold: 0, Change: c})
	}
	if sub.Wants(StockBackIn) && prev == 0 && after > 0 {
		out = append(out, Alert{Type: StockBackIn, Available: after, Threshold: 0, Change: c})
	}
	return out
}
