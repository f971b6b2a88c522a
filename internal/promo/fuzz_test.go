package promo_test

import (
	"encoding/json"
	"testing"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/promo"
)

// FuzzDecodeSpec: a promotion body either decodes to a spec that validates and that
// normalizing again leaves as it is, or fails with a client error — never a panic.
// Seeds: testdata/fuzz/FuzzDecodeSpec.
func FuzzDecodeSpec(f *testing.F) {
	for _, s := range []string{
		`{"name":"Toner 1+1","starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","priority":5,"channels":["online","store"],"targets":["TONER-1","TONER-2"],"condition":{"min_qty":2,"min_amount":0},"gifts":[{"sku":"GIFT-1","qty":1}],"max_per_order":2}`,
		`{"name":"x","starts_at":"2026-01-02T00:00:00Z","ends_at":"2026-01-01T00:00:00Z","channels":["online"],"targets":["A"],"condition":{"min_qty":1},"gifts":[{"sku":"G","qty":1}]}`,
		`{"name":"x","stores":["S1","S1"],"channels":["store","store"],"targets":["B","A","A"],"condition":{"min_qty":1},"gifts":[{"sku":"G","qty":1}],"starts_at":"2026-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}`,
		`{"name":1}`, `{}`, `[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := promo.DecodeSpec(data)
		if err != nil {
			if c := jaego.CodeOf(err); c != jaego.CodeInvalid && c != jaego.CodeInvalidJSON {
				t.Fatalf("%q: error %v has code %q, want a client error", data, err, c)
			}
			return
		}
		before, _ := json.Marshal(s)
		s.Normalize()
		after, _ := json.Marshal(s)
		if string(before) != string(after) {
			t.Fatalf("normalizing twice changed the spec:\n%s\n%s", before, after)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("%q decoded to an invalid spec: %v", data, err)
		}
	})
}
