package inventory_test

import (
	"encoding/json"
	"reflect"
	"testing"

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
