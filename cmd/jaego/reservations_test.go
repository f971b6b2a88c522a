package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/testenv"
)

// TestReservationsEndToEnd: design §12 over HTTP on two jaego serve sharing one Redis.
// A basket is held whole (201) or not at all (409 with every short item); the same id
// answers the same reservation (200); confirm and cancel end it once; availability lists
// complete stores first. A hold of 1 s expires by itself, with no request traffic, within a
// second of its expires_at — swept by both instances, released once.
func TestReservationsEndToEnd(t *testing.T) {
	_, srv := testenv.Redis(t)
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + srv.Addr + "/0"}
	a := start(t, env, "serve", "--http", "127.0.0.1:0")
	b := start(t, env, "serve", "--http", "127.0.0.1:0")
	var events []string
	for _, st := range []string{"S1", "S2"} {
		for sku, n := range map[string]int{"A": 5, "B": 2} {
			events = append(events, fmt.Sprintf(`{"event_id":"r-%s-%s","type":"receipt","store":"%s","sku":"%s","qty":%d}`, st, sku, st, sku, n))
		}
	}
	if code, ans := post(t, a.api+"/v1/events", `{"events":[`+strings.Join(events, ",")+`]}`); code != 200 {
		t.Fatalf("seed: %d %v", code, ans)
	}

	basket := `"items":[{"sku":"A","qty":3},{"sku":"B","qty":2}]`
	code, ans := post(t, a.api+"/v1/reservations", `{"reservation_id":"o-1","store":"S1",`+basket+`,"hold":"10m"}`)
	if code != 201 || ans["status"] != "held" || ans["expires_at"] == nil {
		t.Fatalf("hold: %d %v", code, ans)
	}
	if code, ans := post(t, b.api+"/v1/reservations", `{"reservation_id":"o-1","store":"S1",`+basket+`,"hold":"10m"}`); code != 200 || ans["status"] != "held" {
		t.Fatalf("same id on the other instance: %d %v", code, ans)
	}
	code, ans = post(t, b.api+"/v1/reservations", `{"reservation_id":"o-2","store":"S1",`+basket+`}`)
	if short := fmt.Sprint(ans["short"]); code != 409 || ans["code"] != "insufficient_stock" || short != "[map[available:2 qty:3 sku:A] map[available:0 qty:2 sku:B]]" {
		t.Fatalf("short hold: %d %v", code, ans)
	}
	code, ans = post(t, a.api+"/v1/availability", `{`+basket+`,"stores":["S1","S3","S2"]}`)
	if got := fmt.Sprint(ans["stores"]); code != 200 || !strings.HasPrefix(got, "[map[complete:true short:[] store:S2] map[complete:false") {
		t.Fatalf("availability: %d %v", code, got)
	}
	if code, ans := post(t, b.api+"/v1/reservations/o-1/confirm", ``); code != 200 || ans["status"] != "confirmed" {
		t.Fatalf("confirm: %d %v", code, ans)
	}
	if code, ans := post(t, a.api+"/v1/reservations/o-1/cancel", ``); code != 409 || ans["code"] != "reservation_not_held" {
		t.Fatalf("cancel after confirm: %d %v", code, ans)
	}
	var st map[string]any
	if getJSON(t, a.api+"/v1/stores/S1/skus/A", &st); st["on_hand"] != 2.0 || st["reserved"] != 0.0 {
		t.Fatalf("S1/A after the confirm: %v", st)
	}
	for _, bad := range []string{
		`{"reservation_id":"o 3","store":"S2",` + basket + `}`,
		`{"reservation_id":"o-3","store":"S2","items":[]}`,
		`{"reservation_id":"o-3","store":"S2","items":[{"sku":"A","qty":1},{"sku":"A","qty":1}]}`,
		`{"reservation_id":"o-3","store":"S2",` + basket + `,"hold":"forever"}`,
		`{"reservation_id":"o-3","store":"S2",` + basket + `,"hold":"0s"}`, // not "the default": refused
		`{"reservation_id":"o-3","store":"S2",` + basket + `,"hold":"25h"}`,
		`{"reservation_id":"o-3","store":"S2",` + basket + `,"color":"red"}`,
	} {
		if code, ans := post(t, a.api+"/v1/reservations", bad); code != 400 {
			t.Errorf("%s: %d %v", bad, code, ans)
		}
	}

	// The store's list: the held reservation of S1 is not there any more (confirmed), and
	// the list's answers validate against the document like every other.
	var listed map[string]any
	if getJSON(t, a.api+"/v1/reservations?store=S1&status=confirmed", &listed); len(listed["reservations"].([]any)) != 1 || listed["next_cursor"] != "" {
		t.Fatalf("confirmed reservations of S1: %v", listed)
	}
	var bad map[string]any
	if code := getJSON(t, a.api+"/v1/reservations?store=S1&status=nonsense", &bad); code != 400 {
		t.Fatalf("unknown status: %d %v", code, bad)
	}

	// Expiry by itself: a 1 s hold, then no requests but the watch of its status.
	code, ans = post(t, a.api+"/v1/reservations", `{"reservation_id":"o-4","store":"S2","items":[{"sku":"A","qty":4}],"hold":"1s"}`)
	if code != 201 {
		t.Fatalf("hold: %d %v", code, ans)
	}
	expires, _ := time.Parse(time.RFC3339Nano, ans["expires_at"].(string))
	var r map[string]any
	testenv.Eventually(t, "the reservation expired", 10*time.Second, func() bool {
		getJSON(t, b.api+"/v1/reservations/o-4", &r)
		return r["status"] == "expired"
	})
	released, _ := time.Parse(time.RFC3339Nano, r["updated_at"].(string))
	if late := released.Sub(expires); late < 0 || late > time.Second {
		t.Errorf("expired at %v, %v after its expires_at %v: want within a second", released, late, expires)
	}
	if getJSON(t, a.api+"/v1/stores/S2/skus/A", &st); st["reserved"] != 0.0 || st["on_hand"] != 5.0 {
		t.Fatalf("S2/A after the expiry: %v", st)
	}
	var feed struct {
		Changes []map[string]any `json:"changes"`
	}
	getJSON(t, a.api+"/v1/changes?from="+time.Now().Add(-time.Hour).Format(time.RFC3339)+"&limit=1000", &feed)
	releases := 0
	for _, c := range feed.Changes {
		if c["event_id"] == "rsv-o-4-expire" {
			releases++
		}
	}
	if releases != 1 {
		t.Errorf("%d release changes of o-4, want 1", releases)
	}
}

// TestStockAwareGifts: POST /v1/gifts/evaluate with a store says each gift's stock there;
// with gift_stock cap a grant never exceeds it, and a gift the store lacks is not granted.
func TestStockAwareGifts(t *testing.T) {
	_, rs := testenv.Redis(t)
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + rs.Addr, "JAEGO_POSTGRES_URL": testenv.Postgres(t), "JAEGO_LOG_LEVEL": "warn"}
	if err := run(context.Background(), []string{"jaego", "migrate"}, func(k string) string { return env[k] }, nil, io.Discard, t.Output()); err != nil {
		t.Fatal(err)
	}
	s := start(t, env, "serve", "--http", "127.0.0.1:0")
	if code, _, p := do(t, "POST", s.api+"/v1/admin/promotions", salePromotion); code != 201 {
		t.Fatalf("create: %d %v", code, p)
	}
	if code, ans := post(t, s.api+"/v1/events", `{"event_id":"g1","type":"receipt","store":"S1","sku":"GIFT-1","qty":1}`); code != 200 {
		t.Fatalf("stock the gift: %d %v", code, ans)
	}
	order := func(extra string) string {
		return `{"channel":"online","items":[{"sku":"TONER-1","qty":3,"price":12000},{"sku":"TONER-2","qty":3,"price":9000}]` + extra + `}`
	}
	for _, c := range []struct{ extra, want string }{
		{``, `[map[promotion_id:* qty:2 sku:GIFT-1]]`}, // no store: no stock said
		{`,"store":"S1"`, `[map[available:1 in_stock:false promotion_id:* qty:2 sku:GIFT-1]]`},
		{`,"store":"S1","gift_stock":"cap"`, `[map[available:1 in_stock:true promotion_id:* qty:1 sku:GIFT-1]]`},
		{`,"store":"S2","gift_stock":"cap"`, `[]`}, // S2 has none: nothing promised
	} {
		code, _, m := do(t, "POST", s.api+"/v1/gifts/evaluate", order(c.extra))
		got := fmt.Sprint(m["gifts"])
		for _, g := range m["gifts"].([]any) {
			got = strings.Replace(got, g.(map[string]any)["promotion_id"].(string), "*", 1)
		}
		if code != 200 || got != c.want {
			t.Errorf("evaluate%s: %d %s, want %s", c.extra, code, got, c.want)
		}
	}
	if code, _, m := do(t, "POST", s.api+"/v1/gifts/evaluate", order(`,"gift_stock":"cap"`)); code != 400 {
		t.Errorf("gift_stock without a store: %d %v", code, m)
	}
}
