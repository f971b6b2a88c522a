package inventory_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// FuzzDecodeEvent: any bytes either decode to an event that passes Validate and survives a
// JSON round trip unchanged, or fail with a client error (invalid_input or invalid_json) —
// never a panic, never an event that breaks design §2. Seeds: testdata/fuzz/FuzzDecodeEvent.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"pos-S001-1","type":"sale","store":"S001","sku":"8809461234567","qty":2,"occurred_at":"2026-11-22T01:02:03Z","source":"pos"}`,
		`{"event_id":"c1","type":"set","store":"S1","sku":"A","qty":0,"expected_version":3}`,
		`{"event_id":"c1","type":"adjust","store":"S1","sku":"A","qty":-5}`,
		`{"event_id":"c1","type":"sale","store":"S1","sku":"A","qty":1,"qty":2}`,
		`{"event_id":"c1","type":"sale","store":"S1","sku":"A","qty":1e3}`,
		`{"event_id":"","type":"sale"}`, `[]`, `null`, `{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := inventory.DecodeEvent(data)
		if err != nil {
			if c := jaego.CodeOf(err); c != jaego.CodeInvalid && c != jaego.CodeInvalidJSON {
				t.Fatalf("%q: error %v has code %q, want a client error", data, err, c)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("%q decoded to an invalid event %+v: %v", data, e, err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		again, err := inventory.DecodeEvent(b)
		if err != nil || again.EventID != e.EventID || again.Qty != e.Qty || again.Type != e.Type || again.Store != e.Store || again.SKU != e.SKU {
			t.Fatalf("%q: round trip %s gave %+v %v", data, b, again, err)
		}
	})
}

// FuzzParseNote: any text either parses to a note whose text parses back to the same note,
// or is an error — never a panic (a note comes from Redis and the copy's ledger).
func FuzzParseNote(f *testing.F) {
	for _, s := range []string{"h:3:1764633600000:order-1", "e:expired:a:b", "l:42:snap:2026-12-01", "", "h::", "e:held:x", "l:x:y", "z:1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := inventory.ParseNote(s)
		if err != nil {
			return
		}
		again, err := inventory.ParseNote(n.String())
		if err != nil || !reflect.DeepEqual(again, n) {
			t.Fatalf("%q parsed to %+v, whose text %q parses to %+v (%v)", s, n, n.String(), again, err)
		}
	})
}

// FuzzStockJSON: Stock.AppendJSON writes what encoding/json writes, for any record (strings
// that need escaping, invalid UTF-8, times in any zone and year, negative counts).
func FuzzStockJSON(f *testing.F) {
	f.Add("S001", "8809461234567", int64(3), int64(2), int64(1), int64(4), int64(1764660000123), "primary", 0)
	f.Add("S<1>", "a\"b\\c\n", int64(-5), int64(0), int64(0), int64(-1<<62), int64(0), "", 540)
	f.Add("é\xff", "\u2028", int64(1<<62), int64(7), int64(-7), int64(0), int64(-62135596800001), "fallback", -300)
	f.Add("x", "y", int64(0), int64(0), int64(0), int64(0), int64(253402300800000), "", 0)
	f.Fuzz(func(t *testing.T, store, sku string, onHand, reserved, safety, version, atMS int64, source string, offsetMin int) {
		at := time.UnixMilli(atMS).In(time.FixedZone("z", (offsetMin%1440)*60))
		s := inventory.Stock{Store: store, SKU: sku, OnHand: onHand, Reserved: reserved, Safety: safety, Available: onHand - reserved,
			Version: version, UpdatedAt: at, Source: source}
		want, err := json.Marshal(s)
		if err != nil {
			return // a time encoding/json refuses: nothing to agree with
		}
		if got := s.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
	})
}

// FuzzChangeJSON holds Change.AppendJSON (and AppendChangesJSON) to encoding/json's bytes.
func FuzzChangeJSON(f *testing.F) {
	f.Add("1764660000123-0", "S001", "8809461234567", "sale", int64(-1), int64(3), int64(2), int64(1), int64(4), "pos-1", int64(1764660000123), 0)
	f.Add("", "S<1>", "a\"b\\c\n", "receipt", int64(1<<62), int64(-5), int64(0), int64(0), int64(-1<<62), "é\xff", int64(0), 540)
	f.Add("x", "\u2028", "y", "", int64(0), int64(0), int64(0), int64(0), int64(0), "", int64(253402300800000), -300)
	f.Fuzz(func(t *testing.T, id, store, sku, typ string, delta, onHand, reserved, safety, version int64, eventID string, atMS int64, offsetMin int) {
		at := time.UnixMilli(atMS).In(time.FixedZone("z", (offsetMin%1440)*60))
		c := inventory.Change{ID: id, Store: store, SKU: sku, Type: inventory.EventType(typ), Delta: delta, OnHand: onHand,
			Reserved: reserved, Safety: safety, Version: version, EventID: eventID, At: at,
			Origin: &inventory.Origin{}, Note: &inventory.Note{}} // internal: never in JSON
		want, err := json.Marshal([]inventory.Change{c, c})
		if err != nil {
			return // a time encoding/json refuses: nothing to agree with
		}
		if got := inventory.AppendChangesJSON(nil, []inventory.Change{c, c}); string(got) != string(want) {
			t.Fatalf("AppendChangesJSON\n got %s\nwant %s", got, want)
		}
	})
}
