package promo_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/promo"
)

var (
	t0  = time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	day = 24 * time.Hour
)

// spec is a valid promotion: A or B, 2 of them, grants one G1; tests change what they test.
func spec(change func(*promo.Spec)) promo.Spec {
	s := promo.Spec{Name: "p", StartsAt: t0, EndsAt: t0.Add(day), Channels: []string{"online", "store"},
		Targets: []string{"A", "B"}, Condition: promo.Condition{MinQty: 2}, Gifts: []promo.Gift{{SKU: "G1", Qty: 1}}}
	if change != nil {
		change(&s)
	}
	s.Normalize()
	return s
}

func catalog(t *testing.T, specs ...promo.Spec) *promo.Catalog {
	t.Helper()
	ps := make([]promo.Promotion, len(specs))
	for i, s := range specs {
		if err := s.Validate(); err != nil {
			t.Fatalf("spec %d: %v", i, err)
		}
		ps[i] = promo.Promotion{ID: fmt.Sprintf("p%d", i+1), Status: promo.Active, Spec: s}
	}
	return promo.NewCatalog(7, "2026-11-22", ps)
}

func items(kv ...any) []promo.Item {
	var out []promo.Item
	for i := 0; i < len(kv); i += 3 {
		out = append(out, promo.Item{SKU: kv[i].(string), Qty: int64(kv[i+1].(int)), Price: int64(kv[i+2].(int))})
	}
	return out
}

func TestEvaluateRules(t *testing.T) {
	at := t0.Add(time.Hour)
	for _, tc := range []struct {
		name   string
		specs  []promo.Spec
		order  promo.Order
		at     time.Time
		stop   bool
		grants string // "promotion:sku:qty ..." in answer order
	}{
		{name: "below min", specs: []promo.Spec{spec(nil)}, order: promo.Order{Channel: "online", Items: items("A", 1, 100)}},
		{name: "exact min", specs: []promo.Spec{spec(nil)}, order: promo.Order{Channel: "online", Items: items("A", 2, 100)}, grants: "p1:G1:1"},
		{name: "multiples round down", specs: []promo.Spec{spec(nil)}, order: promo.Order{Channel: "online", Items: items("A", 7, 100)}, grants: "p1:G1:3"},
		{name: "gift qty multiplies", specs: []promo.Spec{spec(func(s *promo.Spec) { s.Gifts = []promo.Gift{{SKU: "G1", Qty: 2}, {SKU: "G0", Qty: 1}} })},
			order: promo.Order{Channel: "online", Items: items("A", 4, 100)}, grants: "p1:G1:4 p1:G0:2"},
		{name: "cap", specs: []promo.Spec{spec(func(s *promo.Spec) { s.MaxPerOrder = 2 })},
			order: promo.Order{Channel: "online", Items: items("A", 10, 100)}, grants: "p1:G1:2"},
		{name: "cap 0 is no cap", specs: []promo.Spec{spec(func(s *promo.Spec) { s.MaxPerOrder = 0 })},
			order: promo.Order{Channel: "online", Items: items("A", 10, 100)}, grants: "p1:G1:5"},
		{name: "two SKUs add up", specs: []promo.Spec{spec(nil)}, order: promo.Order{Channel: "online", Items: items("A", 1, 100, "B", 1, 100)}, grants: "p1:G1:1"},
		{name: "same SKU twice adds up", specs: []promo.Spec{spec(nil)}, order: promo.Order{Channel: "online", Items: items("A", 1, 100, "A", 1, 100)}, grants: "p1:G1:1"},
		{name: "non-target items do not count", specs: []promo.Spec{spec(nil)}, order: promo.Order{Channel: "online", Items: items("A", 1, 100, "C", 5, 100)}},
		{name: "min amount not reached", specs: []promo.Spec{spec(func(s *promo.Spec) { s.Condition.MinAmount = 30000 })},
			order: promo.Order{Channel: "online", Items: items("A", 2, 14999, "C", 1, 99999)}},
		{name: "min amount reached exactly", specs: []promo.Spec{spec(func(s *promo.Spec) { s.Condition.MinAmount = 30000 })},
			order: promo.Order{Channel: "online", Items: items("A", 2, 15000)}, grants: "p1:G1:1"},
		{name: "channel filter", specs: []promo.Spec{spec(func(s *promo.Spec) { s.Channels = []string{"store"} })},
			order: promo.Order{Channel: "online", Items: items("A", 2, 100)}},
		{name: "store filter: other store", specs: []promo.Spec{spec(func(s *promo.Spec) { s.Stores = []string{"S001"} })},
			order: promo.Order{Channel: "online", Store: "S002", Items: items("A", 2, 100)}},
		{name: "store filter: no store given", specs: []promo.Spec{spec(func(s *promo.Spec) { s.Stores = []string{"S001"} })},
			order: promo.Order{Channel: "online", Items: items("A", 2, 100)}},
		{name: "store filter: its store", specs: []promo.Spec{spec(func(s *promo.Spec) { s.Stores = []string{"S001", "S009"} })},
			order: promo.Order{Channel: "store", Store: "S009", Items: items("A", 2, 100)}, grants: "p1:G1:1"},
		{name: "every store", specs: []promo.Spec{spec(nil)}, order: promo.Order{Channel: "store", Store: "S123", Items: items("A", 2, 100)}, grants: "p1:G1:1"},
		{name: "one ms before start", specs: []promo.Spec{spec(nil)}, at: t0.Add(-time.Millisecond), order: promo.Order{Channel: "online", Items: items("A", 2, 100)}},
		{name: "at start", specs: []promo.Spec{spec(nil)}, at: t0, order: promo.Order{Channel: "online", Items: items("A", 2, 100)}, grants: "p1:G1:1"},
		{name: "one ms before end", specs: []promo.Spec{spec(nil)}, at: t0.Add(day - time.Millisecond), order: promo.Order{Channel: "online", Items: items("A", 2, 100)}, grants: "p1:G1:1"},
		{name: "at end", specs: []promo.Spec{spec(nil)}, at: t0.Add(day), order: promo.Order{Channel: "online", Items: items("A", 2, 100)}},
		{name: "stopped", specs: []promo.Spec{spec(nil)}, stop: true, order: promo.Order{Channel: "online", Items: items("A", 2, 100)}},
		{name: "priority orders the grants", specs: []promo.Spec{
			spec(func(s *promo.Spec) { s.Priority = 1; s.Gifts = []promo.Gift{{SKU: "LOW", Qty: 1}} }),
			spec(func(s *promo.Spec) { s.Priority = 9; s.Gifts = []promo.Gift{{SKU: "HIGH", Qty: 1}} }),
			spec(func(s *promo.Spec) {
				s.Priority = 9
				s.Targets = []string{"B"}
				s.Gifts = []promo.Gift{{SKU: "HIGH2", Qty: 1}}
			}),
		}, order: promo.Order{Channel: "online", Items: items("A", 2, 100, "B", 2, 100)}, grants: "p2:HIGH:2 p3:HIGH2:1 p1:LOW:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat := catalog(t, tc.specs...)
			if tc.stop {
				for i := range cat.Promotions() {
					cat.Promotions()[i].Status = promo.Stopped
				}
			}
			if err := tc.order.Validate(); err != nil {
				t.Fatal(err)
			}
			when := tc.at
			if when.IsZero() {
				when = at
			}
			var got []string
			for _, g := range cat.Evaluate(tc.order, when) {
				got = append(got, fmt.Sprintf("%s:%s:%d", g.PromotionID, g.SKU, g.Qty))
			}
			if strings.Join(got, " ") != tc.grants {
				t.Fatalf("grants %q, want %q", strings.Join(got, " "), tc.grants)
			}
		})
	}
}

func TestProductGifts(t *testing.T) {
	cat := catalog(t,
		spec(func(s *promo.Spec) { s.Priority = 1 }),
		spec(func(s *promo.Spec) { s.Priority = 5; s.Targets = []string{"A"}; s.Channels = []string{"store"} }),
		spec(func(s *promo.Spec) { s.Priority = 3; s.Stores = []string{"S001"} }),
		spec(func(s *promo.Spec) { s.StartsAt = t0.Add(2 * time.Hour) }),
	)
	ids := func(sku string, w promo.Where) string {
		var out []string
		for _, o := range cat.ProductGifts(sku, w) {
			out = append(out, o.ID)
		}
		return strings.Join(out, " ")
	}
	at := t0.Add(time.Hour)
	for _, tc := range []struct {
		sku  string
		w    promo.Where
		want string
	}{
		{"A", promo.Where{Channel: "online", At: at}, "p1"},
		{"A", promo.Where{Channel: "online", Store: "S001", At: at}, "p3 p1"},
		{"A", promo.Where{Channel: "store", Store: "S001", At: at}, "p2 p3 p1"},
		{"B", promo.Where{Channel: "store", Store: "S001", At: at}, "p3 p1"},
		{"A", promo.Where{Channel: "online", At: t0.Add(2 * time.Hour)}, "p1 p4"},
		{"C", promo.Where{Channel: "online", At: at}, ""},
	} {
		if got := ids(tc.sku, tc.w); got != tc.want {
			t.Errorf("%s %+v: %q, want %q", tc.sku, tc.w, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		field  string
		change func(*promo.Spec)
	}{
		{"name", func(s *promo.Spec) { s.Name = "  " }},
		{"name", func(s *promo.Spec) { s.Name = strings.Repeat("x", 201) }},
		{"starts_at", func(s *promo.Spec) { s.StartsAt = time.Time{} }},
		{"ends_at", func(s *promo.Spec) { s.EndsAt = s.StartsAt }},
		{"ends_at", func(s *promo.Spec) { s.EndsAt = s.StartsAt.Add(-time.Hour) }},
		{"channels", func(s *promo.Spec) { s.Channels = nil }},
		{"channels", func(s *promo.Spec) { s.Channels = []string{"online", "phone"} }},
		{"targets", func(s *promo.Spec) { s.Targets = nil }},
		{"targets", func(s *promo.Spec) { s.Targets = []string{"A B"} }},
		{"stores", func(s *promo.Spec) { s.Stores = []string{"S/1"} }},
		{"gifts", func(s *promo.Spec) { s.Gifts = nil }},
		{"gifts[0].sku", func(s *promo.Spec) { s.Gifts = []promo.Gift{{SKU: "", Qty: 1}} }},
		{"gifts[0].qty", func(s *promo.Spec) { s.Gifts = []promo.Gift{{SKU: "G", Qty: 0}} }},
		{"gifts[1].sku", func(s *promo.Spec) { s.Gifts = []promo.Gift{{SKU: "G", Qty: 1}, {SKU: "G", Qty: 2}} }},
		{"condition.min_qty", func(s *promo.Spec) { s.Condition.MinQty = 0 }},
		{"condition.min_amount", func(s *promo.Spec) { s.Condition.MinAmount = -1 }},
		{"max_per_order", func(s *promo.Spec) { s.MaxPerOrder = -1 }},
	} {
		s := spec(tc.change)
		err := s.Validate()
		var ie *jaego.Error
		if !errors.As(err, &ie) || ie.Code != jaego.CodeInvalid || ie.Field != tc.field {
			t.Errorf("want invalid %s, got %v", tc.field, err)
		}
	}
	if s := spec(nil); s.Validate() != nil {
		t.Fatalf("valid spec refused: %v", s.Validate())
	}
}

func TestDecodeAndPatch(t *testing.T) {
	body := `{"name":" Sale ","starts_at":"2026-11-22T14:00:00+09:00","ends_at":"2026-11-23T00:00:00Z",
		"channels":["store","online","store"],"targets":["B","A"],"condition":{"min_qty":2},"gifts":[{"sku":"G1","qty":1}]}`
	s, err := promo.DecodeSpec([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "Sale" || !slices.Equal(s.Channels, []string{"online", "store"}) || !slices.Equal(s.Targets, []string{"A", "B"}) ||
		!s.StartsAt.Equal(time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)) || s.StartsAt.Location() != time.UTC {
		t.Fatalf("normalized spec: %+v", s)
	}
	p := promo.Promotion{ID: "x", Status: promo.Active, Spec: s}
	patched, err := promo.ApplyPatch(&p, []byte(`{"name":"Renamed","targets":["C"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if patched.Name != "Renamed" || !slices.Equal(patched.Targets, []string{"C"}) || patched.Condition.MinQty != 2 ||
		p.Name != "Sale" || !slices.Equal(p.Targets, []string{"A", "B"}) {
		t.Fatalf("patch: %+v, original %+v", patched, p.Spec)
	}
	for _, bad := range []string{`{"status":"active"}`, `{"id":"y"}`, `{"name":1}`, `{"condition":{"min_qty":0}}`, `{"ends_at":"2020-01-01T00:00:00Z"}`, `[]`} {
		if _, err := promo.ApplyPatch(&p, []byte(bad)); err == nil {
			t.Errorf("patch %s accepted", bad)
		}
	}
	if _, err := promo.DecodeSpec([]byte(`{"name":"x","unknown":1}`)); jaego.CodeOf(err) != jaego.CodeInvalidJSON {
		t.Errorf("unknown field: %v", err)
	}
}

func TestOrderValidate(t *testing.T) {
	for _, o := range []promo.Order{
		{Channel: "phone", Items: items("A", 1, 1)},
		{Channel: "online", Store: "S 1", Items: items("A", 1, 1)},
		{Channel: "online"},
		{Channel: "online", Items: items("A", 0, 1)},
		{Channel: "online", Items: items("A", 1, -1)},
		{Channel: "online", Items: items("A", promo.MaxItemQty+1, 1)},
		{Channel: "online", Items: items("", 1, 1)},
	} {
		if err := o.Validate(); jaego.CodeOf(err) != jaego.CodeInvalid {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// Normalize must not reorder what it was given: jaego dev passes its package-level SKU list,
// and a sorted list there seeded different stock on a restart than on a fresh start.
func TestNormalizeKeepsCallerSlices(t *testing.T) {
	skus := []string{"C", "A", "B", "A"}
	channels := []string{"store", "online"}
	gifts := []promo.Gift{{SKU: "G2", Qty: 1}, {SKU: "G1", Qty: 2}}
	s := promo.Spec{Targets: skus, Channels: channels, Stores: skus[:2], Gifts: gifts}
	s.Normalize()
	if want := []string{"A", "B", "C"}; !slices.Equal(s.Targets, want) {
		t.Fatalf("targets %v, want %v", s.Targets, want)
	}
	if !slices.Equal(skus, []string{"C", "A", "B", "A"}) || !slices.Equal(channels, []string{"store", "online"}) {
		t.Fatalf("Normalize changed the caller's slices: %v %v", skus, channels)
	}
	s.Gifts[0].Qty = 9
	if gifts[0].Qty != 1 {
		t.Fatal("the normalized spec shares its gifts with the caller")
	}
}
