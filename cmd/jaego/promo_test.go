package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/jaego/jaego/internal/testenv"
)

// do sends a JSON request and decodes the JSON answer into a map.
func do(t *testing.T, method, url, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, m
}

const salePromotion = `{"name":"Toner 1+1","starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z",
	"priority":5,"channels":["online","store"],"targets":["TONER-1","TONER-2"],
	"condition":{"min_qty":2,"min_amount":0},"gifts":[{"sku":"GIFT-1","qty":1}],"max_per_order":2}`

// TestPromotionsAcrossInstances: two jaego serve sharing one Redis and one PostgreSQL. An
// admin change answered by one instance is what the very next request to the other sees:
// create, rename, stop; invalid promotions change nothing.
func TestPromotionsAcrossInstances(t *testing.T) {
	_, rs := testenv.Redis(t)
	pg := testenv.Postgres(t)
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + rs.Addr, "JAEGO_POSTGRES_URL": pg, "JAEGO_LOG_LEVEL": "warn"}

	// serve refuses a database without the schema, and says what to do.
	err := run(context.Background(), []string{"jaego", "serve", "--http", "127.0.0.1:0"}, openUnlessKeys(env),
		strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "jaego migrate") {
		t.Fatalf("serve on an empty database: %v", err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"jaego", "migrate"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, t.Output()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "schema at version 8") {
		t.Fatalf("migrate printed %q", out.String())
	}

	a := start(t, env, "serve", "--http", "127.0.0.1:0")
	b := start(t, env, "serve", "--http", "127.0.0.1:0")
	gifts := func(s *started, sku string) []any {
		code, _, m := do(t, "GET", s.api+"/v1/products/"+sku+"/gifts?channel=online", "")
		if code != 200 {
			t.Fatalf("gifts: %d %v", code, m)
		}
		return m["promotions"].([]any)
	}
	version := func(s *started) float64 {
		_, _, m := do(t, "GET", s.api+"/v1/promotions/version", "")
		return m["version"].(float64)
	}
	if n := len(gifts(b, "TONER-1")); n != 0 {
		t.Fatalf("%d promotions before any was created", n)
	}

	code, h, p := do(t, "POST", a.api+"/v1/admin/promotions", salePromotion)
	if code != 201 || p["status"] != "active" || p["id"] == "" {
		t.Fatalf("create: %d %v", code, p)
	}
	id := p["id"].(string)
	created, _ := strconv.ParseFloat(h.Get("X-Promotion-Version"), 64)
	if got := gifts(b, "TONER-1"); len(got) != 1 || got[0].(map[string]any)["name"] != "Toner 1+1" {
		t.Fatalf("instance B right after the create on A: %v", got)
	}
	if version(b) != created {
		t.Fatalf("B serves version %v, A published %v", version(b), created)
	}
	order := `{"channel":"online","items":[{"sku":"TONER-1","qty":3,"price":12000},{"sku":"TONER-2","qty":3,"price":9000}]}`
	code, _, m := do(t, "POST", b.api+"/v1/gifts/evaluate", order)
	if code != 200 || len(m["gifts"].([]any)) != 1 || m["gifts"].([]any)[0].(map[string]any)["qty"] != 2.0 {
		t.Fatalf("evaluate (6 targets, min 2, cap 2): %d %v", code, m)
	}

	// jaego promo rebuild publishes a new version by hand.
	out.Reset()
	if err := run(context.Background(), []string{"jaego", "promo", "rebuild"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, t.Output()); err != nil {
		t.Fatal(err)
	}
	if want := "promotion cache version " + strconv.FormatFloat(created+1, 'f', -1, 64) + " published"; !strings.Contains(out.String(), want) {
		t.Fatalf("promo rebuild printed %q, want %q", out.String(), want)
	}
	if version(a) != created+1 || len(gifts(a, "TONER-1")) != 1 {
		t.Fatalf("after promo rebuild: version %v", version(a))
	}

	// Rename on B, read on A.
	if code, _, m := do(t, "PATCH", b.api+"/v1/admin/promotions/"+id, `{"name":"Toner 2+1"}`); code != 200 || m["name"] != "Toner 2+1" {
		t.Fatalf("patch: %d %v", code, m)
	}
	if got := gifts(a, "TONER-2"); len(got) != 1 || got[0].(map[string]any)["name"] != "Toner 2+1" {
		t.Fatalf("A right after the rename on B: %v", got)
	}
	if _, _, m := do(t, "GET", a.api+"/v1/admin/promotions/"+id, ""); m["name"] != "Toner 2+1" || m["condition"].(map[string]any)["min_qty"] != 2.0 {
		t.Fatalf("get after patch: %v", m)
	}

	// Invalid changes: 400, nothing changes, no new version.
	before := version(a)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/admin/promotions", strings.Replace(salePromotion, `"min_qty":2`, `"min_qty":0`, 1)},
		{"POST", "/v1/admin/promotions", strings.Replace(salePromotion, `"2099-01-01T00:00:00Z"`, `"2025-01-01T00:00:00Z"`, 1)},
		{"POST", "/v1/admin/promotions", strings.Replace(salePromotion, `"store"]`, `"phone"]`, 1)},
		{"POST", "/v1/admin/promotions", strings.Replace(salePromotion, `"TONER-2"`, `"TONER 2"`, 1)},
		{"POST", "/v1/admin/promotions", strings.Replace(salePromotion, `"qty":1}`, `"qty":0}`, 1)},
		{"POST", "/v1/admin/promotions", strings.Replace(salePromotion, `"targets":["TONER-1","TONER-2"]`, `"targets":[]`, 1)},
		{"PATCH", "/v1/admin/promotions/" + id, `{"status":"stopped"}`},
		{"PATCH", "/v1/admin/promotions/" + id, `{"gifts":[{"sku":"G","qty":-1}]}`},
	} {
		code, h, m := do(t, c.method, a.api+c.path, c.body)
		if code != 400 || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") || m["code"] == nil {
			t.Errorf("%s %s %s: %d %v", c.method, c.path, c.body, code, m)
		}
	}
	if code, _, _ := do(t, "PATCH", a.api+"/v1/admin/promotions/no-such-id", `{"name":"x"}`); code != 404 {
		t.Errorf("patch of a missing promotion: %d", code)
	}
	if version(b) != before {
		t.Fatalf("refused changes moved the version from %v to %v", before, version(b))
	}

	// Stop on A: B grants nothing from the next request on.
	if code, _, m := do(t, "POST", a.api+"/v1/admin/promotions/"+id+"/stop", ""); code != 200 || m["status"] != "stopped" {
		t.Fatalf("stop: %d %v", code, m)
	}
	if code, _, m := do(t, "POST", b.api+"/v1/gifts/evaluate", order); code != 200 || len(m["gifts"].([]any)) != 0 {
		t.Fatalf("B right after the stop on A: %d %v", code, m)
	}
	if got := gifts(b, "TONER-1"); len(got) != 0 {
		t.Fatalf("stopped promotion still shown: %v", got)
	}

	// Bad reads are 400 problems too.
	for _, u := range []string{"/v1/products/BAD%20SKU/gifts", "/v1/products/TONER-1/gifts?channel=phone", "/v1/products/TONER-1/gifts?store=S%2F1"} {
		if code, _, _ := do(t, "GET", b.api+u, ""); code != 400 {
			t.Errorf("GET %s: %d", u, code)
		}
	}
	for _, body := range []string{`{"items":[]}`, `{"items":[{"sku":"A","qty":1,"price":1.5}]}`, `{"channel":"online","items":[{"sku":"A","qty":1}],"x":1}`} {
		if code, _, _ := do(t, "POST", b.api+"/v1/gifts/evaluate", body); code != 400 {
			t.Errorf("evaluate %s: %d", body, code)
		}
	}
	// The metrics of the read path are exported.
	resp, err := http.Get(b.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"jaego_promo_version ", "jaego_promo_local_hits_total", "jaego_promo_cache_loads_total{outcome=\"loaded\"}", "jaego_promo_pointer_reads_total{source=\"redis\"}"} {
		if !strings.Contains(metrics.String(), name) {
			t.Errorf("metric %s missing", name)
		}
	}
}

// TestDevPromotions: jaego dev serves the demo promotions from its embedded SQL store.
func TestDevPromotions(t *testing.T) {
	s := start(t, nil, "dev", "--http", "127.0.0.1:0", "--data", t.TempDir())
	code, _, m := do(t, "GET", s.api+"/v1/products/8809461234567/gifts", "")
	if code != 200 || len(m["promotions"].([]any)) != 1 {
		t.Fatalf("demo gifts: %d %v", code, m)
	}
	code, _, m = do(t, "POST", s.api+"/v1/gifts/evaluate", `{"channel":"online","items":[{"sku":"8809461234567","qty":4,"price":15000}]}`)
	if code != 200 || len(m["gifts"].([]any)) != 1 {
		t.Fatalf("demo evaluate: %d %v", code, m)
	}
}
