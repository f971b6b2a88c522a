// Package inventorytest is the shared suite every inventory.StockStore must pass: each
// event type's effect and refusal checked against the reference model inventory.Apply,
// idempotency, atomicity under heavy concurrency (checked exactly, not statistically),
// compare-and-set, validation and bulk reads.
package inventorytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Size is how much concurrent work the suites' load checks do, every check the same: Full
// (the default) on real servers; Light, a quarter of the events, on a server that runs in
// the test's own process under the race detector (jaego dev's embedded Redis: one lock, Lua
// interpreted in Go), where the full load took minutes of the suite.
type Size int

// The sizes of the suites' load checks.
const (
	Full Size = iota
	Light
)

// scaleOf is the events a load check does at the size given (Full when none is).
func scaleOf(size []Size) func(full int) int {
	return func(full int) int {
		if len(size) > 0 && size[0] == Light {
			return max(1, full/4)
		}
		return full
	}
}

// NewStore returns an empty store private to the test.
type NewStore func(t *testing.T) inventory.StockStore

// StockStore runs the whole suite against stores made by newStore.
func StockStore(t *testing.T, newStore NewStore, size ...Size) {
	scale := scaleOf(size)
	t.Run("EventEffects", func(t *testing.T) { t.Parallel(); testEventEffects(t, newStore(t)) })
	t.Run("Refusals", func(t *testing.T) { t.Parallel(); testRefusals(t, newStore(t)) })
	t.Run("Versions", func(t *testing.T) { t.Parallel(); testVersions(t, newStore(t)) })
	t.Run("IdempotentConcurrent", func(t *testing.T) { t.Parallel(); testIdempotentConcurrent(t, newStore(t)) })
	t.Run("BatchOrderAndDuplicates", func(t *testing.T) { t.Parallel(); testBatch(t, newStore(t)) })
	t.Run("CompareAndSet", func(t *testing.T) { t.Parallel(); testCompareAndSet(t, newStore(t)) })
	t.Run("Validation", func(t *testing.T) { t.Parallel(); testValidation(t, newStore(t)) })
	t.Run("BulkLookup", func(t *testing.T) { t.Parallel(); testBulkLookup(t, newStore(t)) })
	t.Run("NoLostUpdate", func(t *testing.T) { t.Parallel(); testNoLostUpdate(t, newStore(t), scale(500)) })
	t.Run("IdempotencyPerStore", func(t *testing.T) { t.Parallel(); testIdempotencyPerStore(t, newStore(t)) })
}

// testIdempotencyPerStore pins design §11: an event id identifies an event of one store.
// The same id on other stores (forty: on Redis, more than the shard groups, so some share one) is other
// events, each applied once; the same id on the same store again is a duplicate.
func testIdempotencyPerStore(t *testing.T, s inventory.StockStore) {
	id := ID("shared")
	for i := range 40 {
		ev := inventory.Event{EventID: id, Type: inventory.Receipt, Store: fmt.Sprintf("SCOPE%d", i), SKU: "A", Qty: 2}
		if r := MustApply(t, s, ev); r[0].Status != inventory.Applied {
			t.Fatalf("store %s: %s %v, want applied (another store's event)", ev.Store, r[0].Status, r[0].Err)
		}
		if r := MustApply(t, s, ev); r[0].Status != inventory.Duplicate {
			t.Fatalf("store %s again: %s, want duplicate", ev.Store, r[0].Status)
		}
	}
}

// StockReads runs the read half of the suite: event effects, versions and bulk lookups
// (hits, misses, request order) as read back, for a store whose reads come from elsewhere
// than its writes (the durable copy, fed by a projector).
func StockReads(t *testing.T, newStore NewStore) {
	t.Run("EventEffects", func(t *testing.T) { t.Parallel(); testEventEffects(t, newStore(t)) })
	t.Run("Versions", func(t *testing.T) { t.Parallel(); testVersions(t, newStore(t)) })
	t.Run("BulkLookup", func(t *testing.T) { t.Parallel(); testBulkLookup(t, newStore(t)) })
}

var seq struct {
	sync.Mutex
	n int
}

// ID returns an event id unique within the test binary.
func ID(prefix string) string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.n)
}

// Ev builds a valid-looking event with a fresh id.
func Ev(typ inventory.EventType, store, sku string, qty int64) inventory.Event {
	return inventory.Event{EventID: ID(string(typ)), Type: typ, Store: store, SKU: sku, Qty: qty, Source: "test"}
}

// MustApply applies events and fails the test on a store error.
func MustApply(t testing.TB, s inventory.StockStore, events ...inventory.Event) []inventory.Result {
	t.Helper()
	res, err := s.Apply(context.Background(), events)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(res) != len(events) {
		t.Fatalf("apply: %d results for %d events", len(res), len(events))
	}
	return res
}

func mustGet(t *testing.T, s inventory.StockStore, store, sku string) inventory.Stock {
	t.Helper()
	st, err := s.Get(context.Background(), store, sku)
	if err != nil {
		t.Fatalf("get %s/%s: %v", store, sku, err)
	}
	return st
}

// withoutSource is s without where it was read from.
func withoutSource(s inventory.Stock) inventory.Stock {
	s.Source = ""
	return s
}

// sameCounters compares what the model defines: the counters and available.
func sameCounters(a, b inventory.Stock) bool {
	return a.OnHand == b.OnHand && a.Reserved == b.Reserved && a.Safety == b.Safety && a.Available == b.Available
}

func counters(s inventory.Stock) string {
	return fmt.Sprintf("on_hand=%d reserved=%d safety=%d available=%d version=%d", s.OnHand, s.Reserved, s.Safety, s.Available, s.Version)
}

func testEventEffects(t *testing.T, s inventory.StockStore) {
	// Start every case from on_hand 20, reserved 5, safety 3 (available 12).
	cases := []struct {
		typ  inventory.EventType
		qty  int64
		want inventory.Stock
	}{
		{inventory.Sale, 4, inventory.Stock{OnHand: 16, Reserved: 5, Safety: 3, Available: 8}},
		{inventory.Sale, 30, inventory.Stock{OnHand: -10, Reserved: 5, Safety: 3, Available: 0}},
		{inventory.SaleCancel, 2, inventory.Stock{OnHand: 22, Reserved: 5, Safety: 3, Available: 14}},
		{inventory.Receipt, 100, inventory.Stock{OnHand: 120, Reserved: 5, Safety: 3, Available: 112}},
		{inventory.Return, 1, inventory.Stock{OnHand: 21, Reserved: 5, Safety: 3, Available: 13}},
		{inventory.Disposal, 7, inventory.Stock{OnHand: 13, Reserved: 5, Safety: 3, Available: 5}},
		{inventory.Adjust, -6, inventory.Stock{OnHand: 14, Reserved: 5, Safety: 3, Available: 6}},
		{inventory.Adjust, 6, inventory.Stock{OnHand: 26, Reserved: 5, Safety: 3, Available: 18}},
		{inventory.Set, 0, inventory.Stock{OnHand: 0, Reserved: 5, Safety: 3, Available: 0}},
		{inventory.Set, 50, inventory.Stock{OnHand: 50, Reserved: 5, Safety: 3, Available: 42}},
		{inventory.SetSafety, 10, inventory.Stock{OnHand: 20, Reserved: 5, Safety: 10, Available: 5}},
		{inventory.SetSafety, 0, inventory.Stock{OnHand: 20, Reserved: 5, Safety: 0, Available: 15}},
		{inventory.Reserve, 12, inventory.Stock{OnHand: 20, Reserved: 17, Safety: 3, Available: 0}},
		{inventory.Release, 5, inventory.Stock{OnHand: 20, Reserved: 0, Safety: 3, Available: 17}},
		{inventory.Fulfill, 2, inventory.Stock{OnHand: 18, Reserved: 3, Safety: 3, Available: 12}},
	}
	for i, c := range cases {
		store, sku := "EFF", fmt.Sprintf("SKU-%02d", i)
		MustApply(t, s, Ev(inventory.Receipt, store, sku, 20), Ev(inventory.SetSafety, store, sku, 3))
		res := MustApply(t, s, Ev(inventory.Receipt, store, sku, 5), Ev(inventory.Reserve, store, sku, 5), Ev(inventory.Sale, store, sku, 5))
		for _, r := range res {
			if r.Status != inventory.Applied {
				t.Fatalf("%s setup: %s %v", sku, r.Status, r.Err)
			}
		}
		before := mustGet(t, s, store, sku)
		res = MustApply(t, s, Ev(c.typ, store, sku, c.qty))
		r := res[0]
		if r.Status != inventory.Applied || r.Err != nil {
			t.Fatalf("%s %d: status %s err %v", c.typ, c.qty, r.Status, r.Err)
		}
		if !sameCounters(r.Stock, c.want) {
			t.Errorf("%s %d: got %s, want %s", c.typ, c.qty, counters(r.Stock), counters(c.want))
		}
		if r.Stock.Version != before.Version+1 {
			t.Errorf("%s: version %d after %d", c.typ, r.Stock.Version, before.Version)
		}
		// The record read back is the one answered, whichever store it is read from.
		if got := mustGet(t, s, store, sku); got.Source == "" || withoutSource(got) != withoutSource(r.Stock) {
			t.Errorf("%s: stored %+v, answered %+v", c.typ, got, r.Stock)
		}
		// The reference model must agree with the table too.
		if m, err := inventory.Apply(before, Ev(c.typ, store, sku, c.qty)); err != nil || !sameCounters(m, c.want) {
			t.Errorf("model %s %d: %s %v", c.typ, c.qty, counters(m), err)
		}
	}
}

func testRefusals(t *testing.T, s inventory.StockStore) {
	store := "REF"
	MustApply(t, s, Ev(inventory.Receipt, store, "A", 10), Ev(inventory.SetSafety, store, "A", 2), Ev(inventory.Reserve, store, "A", 3))
	before := mustGet(t, s, store, "A") // on_hand 10, reserved 3, safety 2 → available 5
	v := before.Version - 1
	cases := []struct {
		ev   inventory.Event
		want error
	}{
		{Ev(inventory.Reserve, store, "A", 6), inventory.ErrInsufficientStock},
		{Ev(inventory.Release, store, "A", 4), inventory.ErrInsufficientReserved},
		{Ev(inventory.Fulfill, store, "A", 4), inventory.ErrInsufficientReserved},
		{func() inventory.Event { e := Ev(inventory.Set, store, "A", 1); e.ExpectedVersion = &v; return e }(), inventory.ErrVersionConflict},
		{Ev(inventory.Reserve, store, "NEVER-SEEN", 1), inventory.ErrInsufficientStock},
		// on_hand stays within ±MaxQty, the bound jaego load takes: a state can always be reloaded.
		{Ev(inventory.Receipt, store, "A", inventory.MaxQty), inventory.ErrOutOfRange},
		{Ev(inventory.Sale, store, "A", inventory.MaxQty), nil}, // 10 − 1e9: still within
	}
	for _, c := range cases {
		if c.want == nil {
			if r := MustApply(t, s, c.ev)[0]; r.Status != inventory.Applied {
				t.Fatalf("%s %d: %s %v", c.ev.Type, c.ev.Qty, r.Status, r.Err)
			}
			MustApply(t, s, Ev(inventory.SaleCancel, store, "A", inventory.MaxQty)) // back to where it was
			before = mustGet(t, s, store, "A")
			if r := MustApply(t, s, Ev(inventory.Sale, store, "A", inventory.MaxQty), Ev(inventory.Sale, store, "A", 11))[1]; !errors.Is(r.Err, inventory.ErrOutOfRange) {
				t.Errorf("a sale below −MaxQty: %s %v", r.Status, r.Err)
			}
			MustApply(t, s, Ev(inventory.SaleCancel, store, "A", inventory.MaxQty))
			before = mustGet(t, s, store, "A")
			continue
		}
		r := MustApply(t, s, c.ev)[0]
		if r.Status != inventory.Rejected || !errors.Is(r.Err, c.want) {
			t.Errorf("%s %d: status %s err %v, want rejected %v", c.ev.Type, c.ev.Qty, r.Status, r.Err, c.want)
		}
		if r.Err != nil && r.Err.Error() == "" {
			t.Errorf("%s: refusal without a message", c.ev.Type)
		}
	}
	if got := mustGet(t, s, store, "A"); got != before {
		t.Errorf("refusals changed the record: %+v -> %+v", before, got)
	}
	if _, err := s.Get(context.Background(), store, "NEVER-SEEN"); !errors.Is(err, jaego.ErrNotFound) {
		t.Errorf("refused reserve created a record: %v", err)
	}
	// A refused event is not remembered: after stock arrives, the same id applies.
	e := Ev(inventory.Reserve, store, "B", 2)
	if r := MustApply(t, s, e)[0]; r.Status != inventory.Rejected {
		t.Fatalf("reserve on empty: %s", r.Status)
	}
	MustApply(t, s, Ev(inventory.Receipt, store, "B", 2))
	if r := MustApply(t, s, e)[0]; r.Status != inventory.Applied || r.Stock.Reserved != 2 {
		t.Errorf("retried reserve: %s %+v", r.Status, r.Stock)
	}
}

func testVersions(t *testing.T, s inventory.StockStore) {
	if _, err := s.Get(context.Background(), "VER", "X"); !errors.Is(err, jaego.ErrNotFound) {
		t.Fatalf("unknown pair: %v, want not found", err)
	}
	start := time.Now().Add(-time.Second)
	for i := int64(1); i <= 5; i++ {
		r := MustApply(t, s, Ev(inventory.Receipt, "VER", "X", 1))[0]
		if r.Stock.Version != i {
			t.Fatalf("event %d: version %d", i, r.Stock.Version)
		}
		if r.Stock.UpdatedAt.Before(start) || r.Stock.UpdatedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("updated_at %v not the apply time", r.Stock.UpdatedAt)
		}
	}
	// Refusals and duplicates do not bump the version.
	e := Ev(inventory.Reserve, "VER", "X", 100)
	MustApply(t, s, e)
	MustApply(t, s, e)
	if got := mustGet(t, s, "VER", "X"); got.Version != 5 || got.OnHand != 5 {
		t.Errorf("after refusals: %s", counters(got))
	}
}

func testIdempotentConcurrent(t *testing.T, s inventory.StockStore) {
	e := Ev(inventory.Sale, "IDEM", "X", 3)
	const n = 50
	var wg sync.WaitGroup
	statuses := make([]inventory.Status, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := s.Apply(context.Background(), []inventory.Event{e})
			if err != nil {
				errs[i] = err
				return
			}
			statuses[i] = res[0].Status
		})
	}
	wg.Wait()
	applied, dup := 0, 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("apply %d: %v", i, errs[i])
		}
		switch statuses[i] {
		case inventory.Applied:
			applied++
		case inventory.Duplicate:
			dup++
		}
	}
	if applied != 1 || dup != n-1 {
		t.Errorf("applied %d, duplicate %d; want 1 and %d", applied, dup, n-1)
	}
	if got := mustGet(t, s, "IDEM", "X"); got.OnHand != -3 || got.Version != 1 {
		t.Errorf("after 50 copies: %s", counters(got))
	}
}

func testBatch(t *testing.T, s inventory.StockStore) {
	a := Ev(inventory.Receipt, "BAT1", "X", 10)
	events := []inventory.Event{
		a,
		Ev(inventory.Receipt, "BAT2", "Y", 7),
		Ev(inventory.Sale, "BAT1", "X", 3),
		a, // the same event again in one batch
		Ev(inventory.Reserve, "BAT2", "Y", 8),
		{EventID: "bad id with\ttab", Type: inventory.Sale, Store: "BAT1", SKU: "X", Qty: 1},
		Ev(inventory.Reserve, "BAT2", "Y", 7),
	}
	res := MustApply(t, s, events...)
	want := []inventory.Status{inventory.Applied, inventory.Applied, inventory.Applied, inventory.Duplicate,
		inventory.Rejected, inventory.Rejected, inventory.Applied}
	for i, r := range res {
		if r.EventID != events[i].EventID || r.Status != want[i] {
			t.Errorf("result %d: %s %s, want %s %s", i, r.EventID, r.Status, events[i].EventID, want[i])
		}
	}
	if !errors.Is(res[4].Err, inventory.ErrInsufficientStock) || !errors.Is(res[5].Err, jaego.ErrInvalid) {
		t.Errorf("errors: %v / %v", res[4].Err, res[5].Err)
	}
	if x := mustGet(t, s, "BAT1", "X"); x.OnHand != 7 || x.Version != 2 {
		t.Errorf("BAT1/X: %s", counters(x))
	}
	if y := mustGet(t, s, "BAT2", "Y"); y.Reserved != 7 || y.Available != 0 || y.Version != 2 {
		t.Errorf("BAT2/Y: %s", counters(y))
	}
	// Many events on many stores in one call: every one applied once, in order per pair.
	var big []inventory.Event
	for i := range 300 {
		big = append(big, Ev(inventory.Adjust, fmt.Sprintf("BIG%02d", i%23), "Z", int64(i+1)))
	}
	res = MustApply(t, s, big...)
	for i, r := range res {
		if r.Status != inventory.Applied || r.EventID != big[i].EventID {
			t.Fatalf("big batch %d: %s %v", i, r.Status, r.Err)
		}
	}
	for st := range 23 {
		var sum, n int64
		for i := st; i < 300; i += 23 {
			sum += int64(i + 1)
			n++
			if res[i].Stock.Version != n {
				t.Fatalf("BIG%02d event %d at version %d, want %d", st, i, res[i].Stock.Version, n)
			}
		}
		if got := mustGet(t, s, fmt.Sprintf("BIG%02d", st), "Z"); got.OnHand != sum || got.Version != n {
			t.Errorf("BIG%02d: %s, want on_hand %d version %d", st, counters(got), sum, n)
		}
	}
}

func testCompareAndSet(t *testing.T, s inventory.StockStore) {
	zero := int64(0)
	create := Ev(inventory.Set, "CAS", "X", 10)
	create.ExpectedVersion = &zero
	if r := MustApply(t, s, create)[0]; r.Status != inventory.Applied || r.Stock.Version != 1 {
		t.Fatalf("create with expected_version 0: %s %v", r.Status, r.Err)
	}
	// 20 counters race to set from version 1: exactly one wins.
	one := int64(1)
	var wg sync.WaitGroup
	res := make([]inventory.Result, 20)
	for i := range res {
		wg.Go(func() {
			e := Ev(inventory.Set, "CAS", "X", int64(100+i))
			e.ExpectedVersion = &one
			r, err := s.Apply(context.Background(), []inventory.Event{e})
			if err != nil {
				t.Errorf("apply: %v", err)
				return
			}
			res[i] = r[0]
		})
	}
	wg.Wait()
	won := -1
	for i, r := range res {
		switch {
		case r.Status == inventory.Applied:
			if won >= 0 {
				t.Fatalf("two CAS winners: %d and %d", won, i)
			}
			won = i
		case !errors.Is(r.Err, inventory.ErrVersionConflict):
			t.Errorf("loser %d: %s %v", i, r.Status, r.Err)
		}
	}
	if won < 0 {
		t.Fatal("no CAS winner")
	}
	if got := mustGet(t, s, "CAS", "X"); got.OnHand != int64(100+won) || got.Version != 2 {
		t.Errorf("after CAS: %s, want on_hand %d", counters(got), 100+won)
	}
}

// InvalidEvents are events that break exactly one rule of design §2 each.
func InvalidEvents() map[string]inventory.Event {
	ok := inventory.Event{EventID: "e-1", Type: inventory.Sale, Store: "VAL", SKU: "X", Qty: 1}
	with := func(f func(*inventory.Event)) inventory.Event { e := ok; f(&e); return e }
	neg := int64(-1)
	three := int64(3)
	return map[string]inventory.Event{
		"empty event_id":         with(func(e *inventory.Event) { e.EventID = "" }),
		"long event_id":          with(func(e *inventory.Event) { e.EventID = strings.Repeat("x", 129) }),
		"non-ascii event_id":     with(func(e *inventory.Event) { e.EventID = "판매-1" }),
		"control in event_id":    with(func(e *inventory.Event) { e.EventID = "a\nb" }),
		"empty store":            with(func(e *inventory.Event) { e.Store = "" }),
		"long store":             with(func(e *inventory.Event) { e.Store = strings.Repeat("S", 33) }),
		"store with colon":       with(func(e *inventory.Event) { e.Store = "S:1" }),
		"store with brace":       with(func(e *inventory.Event) { e.Store = "S{1}" }),
		"empty sku":              with(func(e *inventory.Event) { e.SKU = "" }),
		"long sku":               with(func(e *inventory.Event) { e.SKU = strings.Repeat("9", 65) }),
		"sku with space":         with(func(e *inventory.Event) { e.SKU = "88 09" }),
		"missing type":           with(func(e *inventory.Event) { e.Type = "" }),
		"unknown type":           with(func(e *inventory.Event) { e.Type = "steal" }),
		"zero qty sale":          with(func(e *inventory.Event) { e.Qty = 0 }),
		"negative qty sale":      with(func(e *inventory.Event) { e.Qty = -2 }),
		"negative qty receipt":   with(func(e *inventory.Event) { e.Type = inventory.Receipt; e.Qty = -2 }),
		"negative qty reserve":   with(func(e *inventory.Event) { e.Type = inventory.Reserve; e.Qty = -1 }),
		"zero adjust":            with(func(e *inventory.Event) { e.Type = inventory.Adjust; e.Qty = 0 }),
		"negative set":           with(func(e *inventory.Event) { e.Type = inventory.Set; e.Qty = -1 }),
		"negative set_safety":    with(func(e *inventory.Event) { e.Type = inventory.SetSafety; e.Qty = -1 }),
		"huge qty":               with(func(e *inventory.Event) { e.Qty = inventory.MaxQty + 1 }),
		"negative expected":      with(func(e *inventory.Event) { e.Type = inventory.Set; e.ExpectedVersion = &neg }),
		"expected on a sale":     with(func(e *inventory.Event) { e.ExpectedVersion = &three }),
		"long source":            with(func(e *inventory.Event) { e.Source = strings.Repeat("p", 65) }),
		"zero qty fulfill":       with(func(e *inventory.Event) { e.Type = inventory.Fulfill; e.Qty = 0 }),
		"negative qty disposal":  with(func(e *inventory.Event) { e.Type = inventory.Disposal; e.Qty = -5 }),
		"negative qty return":    with(func(e *inventory.Event) { e.Type = inventory.Return; e.Qty = -5 }),
		"negative qty release":   with(func(e *inventory.Event) { e.Type = inventory.Release; e.Qty = -5 }),
		"zero qty sale_cancel":   with(func(e *inventory.Event) { e.Type = inventory.SaleCancel; e.Qty = 0 }),
		"huge negative adjust":   with(func(e *inventory.Event) { e.Type = inventory.Adjust; e.Qty = -inventory.MaxQty - 1 }),
		"event_id with del char": with(func(e *inventory.Event) { e.EventID = "a\x7fb" }),
	}
}

func testValidation(t *testing.T, s inventory.StockStore) {
	for name, e := range InvalidEvents() {
		res := MustApply(t, s, e)
		if res[0].Status != inventory.Rejected || !errors.Is(res[0].Err, jaego.ErrInvalid) {
			t.Errorf("%s: %s %v, want rejected invalid", name, res[0].Status, res[0].Err)
		}
	}
	// Nothing was stored for the valid-looking pair the invalid events named.
	if _, err := s.Get(context.Background(), "VAL", "X"); !errors.Is(err, jaego.ErrNotFound) {
		t.Errorf("invalid events stored a record: %v", err)
	}
	// The same id, valid now, is not a duplicate: invalid events are not remembered.
	if r := MustApply(t, s, inventory.Event{EventID: "e-1", Type: inventory.Sale, Store: "VAL", SKU: "X", Qty: 1})[0]; r.Status != inventory.Applied {
		t.Errorf("valid event after invalid ones: %s %v", r.Status, r.Err)
	}
}

func testBulkLookup(t *testing.T, s inventory.StockStore) {
	var events []inventory.Event
	for i := range 40 {
		events = append(events, Ev(inventory.Receipt, "BULK", fmt.Sprintf("K%03d", i), int64(i+1)))
	}
	events = append(events, Ev(inventory.Receipt, "BULK2", "K005", 500))
	MustApply(t, s, events...)
	keys := []inventory.Key{{Store: "BULK", SKU: "K039"}, {Store: "BULK", SKU: "NOPE"}, {Store: "BULK", SKU: "K000"}, {Store: "BULK2", SKU: "K005"}, {Store: "BULK", SKU: "K005"}, {Store: "NOSTORE", SKU: "K005"}}
	got, err := s.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{40, -1, 1, 500, 6, -1}
	for i, w := range want {
		if (w < 0) != !got[i].Found {
			t.Errorf("%v: found %v", keys[i], got[i].Found)
			continue
		}
		if w >= 0 && (got[i].Stock.OnHand != w || got[i].Stock.Store != keys[i].Store || got[i].Stock.SKU != keys[i].SKU) {
			t.Errorf("%v: %+v, want on_hand %d", keys[i], got[i].Stock, w)
		}
	}
	if got, err := s.GetMany(context.Background(), nil); err != nil || len(got) != 0 {
		t.Errorf("empty bulk read: %v %v", got, err)
	}
}

// testNoLostUpdate: 64 goroutines apply 500 random events each to 10 SKUs at once. The
// versions every applied event answered must be exactly 1..n per SKU (no gap, no repeat),
// and replaying the applied events in version order through the reference model must give
// the very stock each one answered, the final state, and must refuse what was refused at the
// version it was refused at.
func testNoLostUpdate(t *testing.T, s inventory.StockStore, perWorker int) {
	const workers, skus = 64, 10
	types := []inventory.EventType{inventory.Sale, inventory.Sale, inventory.Receipt, inventory.Reserve,
		inventory.Release, inventory.Fulfill, inventory.Adjust, inventory.SaleCancel, inventory.SetSafety, inventory.Disposal, inventory.Set}
	type obs struct {
		ev inventory.Event
		r  inventory.Result
	}
	all := make([][]obs, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; i < perWorker; {
				n := 1 + rng.IntN(4) // single events and small batches
				batch := make([]inventory.Event, 0, n)
				for j := 0; j < n && i < perWorker; j, i = j+1, i+1 {
					typ := types[rng.IntN(len(types))]
					qty := int64(1 + rng.IntN(5))
					switch typ {
					case inventory.Adjust:
						qty -= 3
						if qty == 0 {
							qty = 4
						}
					case inventory.Set:
						qty = int64(rng.IntN(30))
					case inventory.SetSafety:
						qty = int64(rng.IntN(3))
					}
					batch = append(batch, Ev(typ, "LOST", fmt.Sprintf("SKU%d", rng.IntN(skus)), qty))
				}
				res, err := s.Apply(context.Background(), batch)
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				for k := range res {
					all[w] = append(all[w], obs{batch[k], res[k]})
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	applied := map[string][]obs{}
	refused := map[string][]obs{}
	for _, ws := range all {
		for _, o := range ws {
			switch o.r.Status {
			case inventory.Applied:
				applied[o.ev.SKU] = append(applied[o.ev.SKU], o)
			case inventory.Rejected:
				if !inventory.IsRefusal(o.r.Err) {
					t.Fatalf("%s %s: unexpected rejection %v", o.ev.Type, o.ev.EventID, o.r.Err)
				}
				refused[o.ev.SKU] = append(refused[o.ev.SKU], o)
			default:
				t.Fatalf("%s: status %s", o.ev.EventID, o.r.Status)
			}
		}
	}
	total := 0
	for k := range skus {
		sku := fmt.Sprintf("SKU%d", k)
		ops := applied[sku]
		total += len(ops) + len(refused[sku])
		sort.Slice(ops, func(i, j int) bool { return ops[i].r.Stock.Version < ops[j].r.Stock.Version })
		states := []inventory.Stock{{}} // states[v] = model state at version v
		for i, o := range ops {
			if o.r.Stock.Version != int64(i+1) {
				t.Fatalf("%s: versions not gap-free: position %d has version %d", sku, i, o.r.Stock.Version)
			}
			next, err := inventory.Apply(states[i], o.ev)
			if err != nil {
				t.Fatalf("%s v%d: model refuses %s %d that the store applied: %v", sku, i+1, o.ev.Type, o.ev.Qty, err)
			}
			if !sameCounters(next, o.r.Stock) {
				t.Fatalf("%s v%d %s %d: store answered %s, model %s", sku, i+1, o.ev.Type, o.ev.Qty, counters(o.r.Stock), counters(next))
			}
			next.Version = int64(i + 1)
			states = append(states, next)
		}
		for _, o := range refused[sku] {
			v := o.r.Stock.Version
			if v < 0 || v >= int64(len(states)) {
				t.Fatalf("%s: refusal at unknown version %d", sku, v)
			}
			if _, err := inventory.Apply(states[v], o.ev); jaego.CodeOf(err) != jaego.CodeOf(o.r.Err) {
				t.Fatalf("%s: %s %d refused at v%d with %v; model says %v", sku, o.ev.Type, o.ev.Qty, v, o.r.Err, err)
			}
		}
		final := states[len(states)-1]
		if len(ops) == 0 {
			continue
		}
		if got := mustGet(t, s, "LOST", sku); !sameCounters(got, final) || got.Version != int64(len(ops)) {
			t.Errorf("%s final: store %s, model %s after %d events", sku, counters(got), counters(final), len(ops))
		}
	}
	if total != workers*perWorker {
		t.Fatalf("accounted %d events of %d", total, workers*perWorker)
	}
}
