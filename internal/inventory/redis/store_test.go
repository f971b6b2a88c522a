package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/testenv"
)

var prefixes atomic.Int64

// newStoreOn gives every store its own key prefix, so tests share one server safely.
func newStoreOn(client rueidis.Client, opts invredis.Options) *invredis.Store {
	opts.Prefix = fmt.Sprintf("t%d", prefixes.Add(1))
	return invredis.New(client, opts)
}

func TestStoreStandalone(t *testing.T) {
	client, _ := testenv.Redis(t)
	inventorytest.StockStore(t, func(t *testing.T) inventory.StockStore {
		return newStoreOn(client, invredis.Options{})
	})
}

func TestStoreStandaloneOneEventPerCall(t *testing.T) {
	client, _ := testenv.Redis(t)
	inventorytest.StockStore(t, func(t *testing.T) inventory.StockStore {
		return newStoreOn(client, invredis.Options{MaxBatch: 1, Groups: 3})
	})
}

func TestStoreCluster(t *testing.T) {
	client, _ := testenv.RedisCluster(t)
	inventorytest.StockStore(t, func(t *testing.T) inventory.StockStore {
		return newStoreOn(client, invredis.Options{})
	})
}

// TestStoreMiniredis runs the suite against the embedded server of `jaego dev`, so that
// the demo behaves exactly like production.
func TestStoreMiniredis(t *testing.T) {
	client := testenv.EmbeddedRedis(t)
	inventorytest.StockStore(t, func(t *testing.T) inventory.StockStore {
		return newStoreOn(client, invredis.Options{})
	}, inventorytest.Light)
}

// TestChangeRecordAndTTLs checks the parts of one atomic step a StockStore cannot show:
// one change-stream entry per applied event with the fields of design §4, TTLs on the
// stream and the idempotency marks, and the key layout of design §5.
func TestChangeRecordAndTTLs(t *testing.T) {
	client, _ := testenv.Redis(t)
	ctx := context.Background()
	// A minute before the last UTC midnight: a fixed date would put the marks' absolute
	// expiry (PEXPIREAT, by Redis's clock) in the past a week after it was written.
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-time.Minute)
	s := invredis.New(client, invredis.Options{Retention: 36 * time.Hour, Now: func() time.Time { return day }})

	sale := inventorytest.Ev(inventory.Sale, "S001", "8809461234567", 2)
	res := inventorytest.MustApply(t, s,
		inventorytest.Ev(inventory.Receipt, "S001", "8809461234567", 10),
		sale, sale,
		inventorytest.Ev(inventory.Reserve, "S001", "8809461234567", 100), // refused
		inventorytest.Ev(inventory.Reserve, "S001", "8809461234567", 3),
	)
	g := s.Keys().Group("S001")
	if want := fmt.Sprintf("jg:stk:{%d}:S001", g); s.Keys().Stock("S001") != want {
		t.Errorf("stock key %s, want %s", s.Keys().Stock("S001"), want)
	}
	stream := fmt.Sprintf("jg:chg:{%d}:%s", g, invredis.StreamDay(day))
	entries, err := client.Do(ctx, client.B().Xrange().Key(stream).Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d change entries, want 3 (applied only): %+v", len(entries), entries)
	}
	want := []map[string]string{
		{"type": "3", "delta": "10", "on_hand": "10", "reserved": "0", "version": "1"},                           // receipt
		{"type": "1", "delta": "-2", "on_hand": "8", "reserved": "0", "version": "2", "event_id": sale.EventID},  // sale
		{"type": "9", "delta": "0", "on_hand": "8", "reserved": "3", "version": "3", "event_id": res[4].EventID}, // reserve
	}
	for i, e := range entries {
		if e.FieldValues["store"] != "S001" || e.FieldValues["sku"] != "8809461234567" || e.FieldValues["safety"] != "0" {
			t.Errorf("entry %d: %v", i, e.FieldValues)
		}
		for k, v := range want[i] {
			if e.FieldValues[k] != v {
				t.Errorf("entry %d field %s = %q, want %q", i, k, e.FieldValues[k], v)
			}
		}
	}
	ttl, err := client.Do(ctx, client.B().Ttl().Key(stream).Build()).AsInt64()
	if err != nil || ttl <= 35*3600 || ttl > 36*3600 {
		t.Errorf("stream TTL %d (%v), want 36h", ttl, err)
	}
	// The record is the SKU's field of the store hash.
	rec, err := client.Do(ctx, client.B().Hget().Key(s.Keys().Stock("S001")).Field("8809461234567").Build()).ToString()
	if err != nil || !strings.HasPrefix(rec, "8:3:0:3:") {
		t.Errorf("packed record %q (%v), want 8:3:0:3:<ms>", rec, err)
	}
	// The sale's mark is in a bucket of the current window, and outlives the idempotency TTL.
	marks, digest := s.Keys().Marks("S001", sale.EventID, day)
	if n, err := client.Do(ctx, client.B().Hexists().Key(marks[0]).Field(digest).Build()).AsInt64(); err != nil || n != 1 {
		t.Errorf("no mark of the sale in %s (%v)", marks[0], err)
	}
	ttl, err = client.Do(ctx, client.B().Pttl().Key(marks[0]).Build()).AsInt64()
	if left := time.Duration(ttl) * time.Millisecond; err != nil || time.Now().Add(left).Before(day.Add(7*24*time.Hour)) {
		t.Errorf("mark bucket TTL %v (%v), want the mark kept >= 7 days", left, err)
	}
	// Exactly these keys — and nothing for the refusal.
	keys, err := client.Do(ctx, client.B().Keys().Pattern("jg:*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	var buckets int
	for _, k := range keys {
		if strings.HasPrefix(k, fmt.Sprintf("jg:idem:{%d}:", g)) {
			buckets++
		}
	}
	// stock, stream, stores set, last change id and the mark buckets (3 marks: receipt, sale, reserve 3)
	if len(keys) != 4+buckets || buckets == 0 || buckets > 3 {
		t.Errorf("keys %v", keys)
	}
}

// TestMarkLifetime: a mark is found for at least the idempotency TTL after it was written,
// by a server whose clock is up to a window behind or ahead, and its bucket expires at
// most one and a half TTLs after it was written.
func TestMarkLifetime(t *testing.T) {
	client, _ := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{})
	k := s.Keys()
	ttl := 7 * 24 * time.Hour
	for _, at := range []time.Time{
		time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 11, 59, 59, 999e6, time.UTC),
		time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC),
	} {
		w := k.MarkWindow(at)
		if exp := k.MarkExpiry(w); exp.Before(at.Add(ttl)) || exp.After(at.Add(ttl*3/2)) {
			t.Errorf("mark written %v expires %v: want within [TTL, 1.5 TTL]", at, exp)
		}
		written, d := k.Marks("S1", "e", at)
		for _, later := range []time.Time{at, at.Add(ttl / 3), at.Add(ttl - time.Millisecond), at.Add(-ttl / 2)} {
			found := false
			look, d2 := k.Marks("S1", "e", later)
			for _, key := range look {
				found = found || (key == written[0] && d2 == d)
			}
			if !found {
				t.Errorf("mark written %v not looked for at %v", at, later)
			}
		}
	}
}

// TestScriptReloadedAfterFlush: EVALSHA falls back to EVAL when the server lost its script
// cache (a restart, a failover, SCRIPT FLUSH).
func TestScriptReloadedAfterFlush(t *testing.T) {
	client, _ := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{})
	inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S", "K", 1))
	if err := client.Do(context.Background(), client.B().ScriptFlush().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	r := inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S", "K", 1))[0]
	if r.Status != inventory.Applied || r.Stock.OnHand != 2 {
		t.Fatalf("after SCRIPT FLUSH: %s %+v", r.Status, r.Stock)
	}
}

// TestUnavailable: a dead Redis is an ErrUnavailable error, never a result.
func TestUnavailable(t *testing.T) {
	client, srv := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Apply(ctx, []inventory.Event{inventorytest.Ev(inventory.Sale, "S", "K", 1)}); jaego.CodeOf(err) != jaego.CodeUnavailable {
		t.Errorf("apply on dead redis: %v", err)
	}
	if _, err := s.Get(ctx, "S", "K"); jaego.CodeOf(err) != jaego.CodeUnavailable {
		t.Errorf("get on dead redis: %v", err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "redis") {
		t.Errorf("ping on dead redis: %v", err)
	}
}

// TestStreamCodec holds the writers of stream entries to one codec: what apply.lua writes
// for every event type has exactly EncodeChange's fields in its order (its type numbers
// too), and the feed decodes it back to the change.
func TestStreamCodec(t *testing.T) {
	client, _ := testenv.Redis(t)
	ctx := context.Background()
	s := newStoreOn(client, invredis.Options{})
	types := []inventory.EventType{inventory.Receipt, inventory.Sale, inventory.SaleCancel, inventory.Return, inventory.Disposal,
		inventory.Adjust, inventory.Set, inventory.SetSafety, inventory.Reserve, inventory.Release, inventory.Fulfill}
	events := make([]inventory.Event, len(types))
	for i, typ := range types {
		events[i] = inventory.Event{EventID: fmt.Sprintf("c%d", i), Type: typ, Store: "S1", SKU: "K1", Qty: 7 + int64(i)}
	}
	// set_safety 1, reserve 2, release and fulfill 1 each: all applied.
	events[7].Qty, events[8].Qty, events[9].Qty, events[10].Qty = 1, 2, 1, 1
	for _, r := range inventorytest.MustApply(t, s, events...) {
		if r.Status != inventory.Applied {
			t.Fatalf("%s: %s %v", r.EventID, r.Status, r.Err)
		}
	}
	key := s.Keys().StreamOn(s.Keys().Group("S1"), time.Now())
	raw, err := client.Do(ctx, client.B().Xrange().Key(key).Start("-").End("+").Build()).ToArray()
	if err != nil || len(raw) != len(types) {
		t.Fatalf("stream %s: %d entries %v", key, len(raw), err)
	}
	feed := invredis.NewFeed(s, invredis.FeedOptions{})
	page, err := feed.Changes(ctx, time.Now().Add(-time.Minute), time.Now().Add(time.Minute), "", 100)
	if err != nil || len(page.Changes) != len(types) {
		t.Fatalf("feed: %+v %v", page, err)
	}
	for i, c := range page.Changes {
		if c.Store != "S1" || c.SKU != "K1" || c.Type != types[i] || c.Version != int64(i+1) || c.EventID != events[i].EventID {
			t.Fatalf("decoded %+v, want %s", c, types[i])
		}
		kv, _ := raw[i].ToArray()
		written, _ := kv[1].AsStrSlice()
		if want := invredis.EncodeChange(c); strings.Join(written, ",") != strings.Join(want, ",") {
			t.Fatalf("apply.lua wrote\n%v\nthe codec writes\n%v", written, want)
		}
	}
}

// The notes of a hold's, an end's and a load row's changes are what the scripts wrote,
// written back the same by the codec (a restore's AppendChanges).
func TestStreamCodecNotes(t *testing.T) {
	client, _ := testenv.Redis(t)
	ctx := context.Background()
	s := newStoreOn(client, invredis.Options{})
	inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "K1", 10))
	r, _, err := s.Hold(ctx, inventory.HoldRequest{ID: "order:7-a", Store: "S1", Items: []inventory.Item{{SKU: "K1", Qty: 3}}, Hold: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "snap-1", []inventory.LoadRow{{Line: 4, Store: "S1", SKU: "K1", OnHand: 6}}); err != nil {
		t.Fatal(err)
	}
	want := []*inventory.Note{nil, {Reservation: r.ID, Status: inventory.Held, Qty: 3, ExpiresAt: r.ExpiresAt},
		{Reservation: r.ID, Status: inventory.Cancelled}, {Load: "snap-1", Line: 4}}
	key := s.Keys().StreamOn(s.Keys().Group("S1"), time.Now())
	raw, err := client.Do(ctx, client.B().Xrange().Key(key).Start("-").End("+").Build()).ToArray()
	if err != nil || len(raw) != len(want) {
		t.Fatalf("stream %s: %d entries %v", key, len(raw), err)
	}
	page, err := invredis.NewFeed(s, invredis.FeedOptions{}).Changes(ctx, time.Now().Add(-time.Minute), time.Now().Add(time.Minute), "", 100)
	if err != nil || len(page.Changes) != len(want) {
		t.Fatalf("feed: %+v %v", page, err)
	}
	for i, c := range page.Changes {
		if c.Note.String() != want[i].String() {
			t.Fatalf("change %d notes %q, want %q", i, c.Note.String(), want[i].String())
		}
		kv, _ := raw[i].ToArray()
		written, _ := kv[1].AsStrSlice()
		if enc := invredis.EncodeChange(c); strings.Join(written, ",") != strings.Join(enc, ",") {
			t.Fatalf("the script wrote\n%v\nthe codec writes\n%v", written, enc)
		}
	}
}

// An event read from Kafka carries its partition and offset into its change; others none.
func TestChangeOrigin(t *testing.T) {
	client, _ := testenv.Redis(t)
	ctx := context.Background()
	s := newStoreOn(client, invredis.Options{})
	fromKafka := inventorytest.Ev(inventory.Receipt, "S1", "K1", 2)
	fromKafka.Origin = &inventory.Origin{Partition: 5, Offset: 1234567}
	inventorytest.MustApply(t, s, fromKafka, inventorytest.Ev(inventory.Sale, "S1", "K1", 1))
	f := invredis.NewFeed(s, invredis.FeedOptions{})
	page, err := f.Changes(ctx, time.Now().Add(-time.Minute), time.Now().Add(time.Minute), "", 10)
	if err != nil || len(page.Changes) != 2 {
		t.Fatalf("feed: %+v %v", page, err)
	}
	if o := page.Changes[0].Origin; o == nil || *o != *fromKafka.Origin {
		t.Errorf("the Kafka event's change has origin %+v, want %+v", o, fromKafka.Origin)
	}
	if o := page.Changes[1].Origin; o != nil {
		t.Errorf("an HTTP event's change has origin %+v", o)
	}
}
