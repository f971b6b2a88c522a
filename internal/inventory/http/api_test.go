package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/api/apitest"
	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

type env struct {
	url   string
	store inventory.StockStore
	redis *testenv.RedisServer // nil on the in-memory store
	// ahead moves the feed's clock forward (nanoseconds), so a test can end a range
	// without waiting for it.
	ahead *atomic.Int64
}

// newEnv serves the API on the in-memory store and feed: the HTTP adapter's own behaviour
// needs no server.
func newEnv(t *testing.T, timeout time.Duration) *env {
	ahead := new(atomic.Int64)
	store := inmem.New(inmem.Options{Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	return serve(t, &env{store: store, ahead: ahead}, invhttp.Options{Timeout: timeout, Feed: store, Tail: inventorytest.RunHub(t, store, inventory.HubOptions{})})
}

// newRedisEnv serves the API on a private Redis, for what only Redis has (snapshots) and
// what only a server can do (hang, die).
func newRedisEnv(t *testing.T, timeout time.Duration) *env {
	client, srv := testenv.Redis(t)
	store := invredis.New(client, invredis.Options{Retention: 48 * time.Hour})
	ahead := new(atomic.Int64)
	feed := invredis.NewFeed(store, invredis.FeedOptions{Settle: time.Nanosecond, Chunk: 7,
		Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	return serve(t, &env{store: store, redis: srv, ahead: ahead}, invhttp.Options{Timeout: timeout, Feed: feed, Snapshots: store, Tail: inventorytest.RunHub(t, feed, inventory.HubOptions{})})
}

func serve(t *testing.T, e *env, opts invhttp.Options) *env {
	mux := http.NewServeMux()
	invhttp.New(e.store, opts).Register(mux)
	ts := httptest.NewServer(httpx.Instrument(mux, prometheus.NewRegistry(), testLogger(t)))
	t.Cleanup(ts.Close)
	e.url = ts.URL
	return e
}

// validating checks every answer against openapi.json.
var validating = &http.Client{Transport: apitest.Transport{}}

type answer struct {
	status int
	ctype  string
	body   map[string]any
	raw    string
}

func do(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := validating.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, url, raw)
	}
	return a
}

// problem asserts an RFC 9457 answer with the given status and code.
func (a answer) problem(t *testing.T, status int, code string) {
	t.Helper()
	if a.status != status || a.ctype != "application/problem+json" || a.body["code"] != code ||
		a.body["status"] != float64(status) || a.body["type"] != httpx.ProblemType(code) || a.body["title"] == "" {
		t.Errorf("want problem %d %s, got %d %s %s", status, code, a.status, a.ctype, a.raw)
	}
}

func seed(t *testing.T, e *env, events ...inventory.Event) {
	t.Helper()
	for _, r := range inventorytest.MustApply(t, e.store, events...) {
		if r.Status != inventory.Applied {
			t.Fatalf("seed %s: %s %v", r.EventID, r.Status, r.Err)
		}
	}
}

func TestLookups(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	seed(t, e,
		inventorytest.Ev(inventory.Receipt, "S1", "A", 5),
		inventorytest.Ev(inventory.Receipt, "S1", "B", 6),
		inventorytest.Ev(inventory.Receipt, "S2", "A", 7),
		inventorytest.Ev(inventory.SetSafety, "S2", "A", 2),
	)

	a := do(t, "GET", e.url+"/v1/stores/S2/skus/A", "")
	if a.status != 200 || a.body["on_hand"] != 7.0 || a.body["safety"] != 2.0 || a.body["available"] != 5.0 ||
		a.body["version"] != 2.0 || a.body["store"] != "S2" || a.body["sku"] != "A" || a.ctype != "application/json" {
		t.Errorf("single lookup: %d %s", a.status, a.raw)
	}
	if _, err := time.Parse(time.RFC3339, a.body["updated_at"].(string)); err != nil {
		t.Errorf("updated_at: %v", err)
	}
	do(t, "GET", e.url+"/v1/stores/S2/skus/ZZ", "").problem(t, 404, "not_found")
	do(t, "GET", e.url+"/v1/stores/S:2/skus/A", "").problem(t, 400, "invalid_input")
	do(t, "GET", e.url+"/v1/stores/S2/skus/A%20B", "").problem(t, 400, "invalid_input")

	a = do(t, "GET", e.url+"/v1/stores/S1/stock?sku=B&sku=NOPE,A&sku=B", "")
	items, _ := a.body["items"].([]any)
	if a.status != 200 || len(items) != 2 || items[0].(map[string]any)["sku"] != "B" || items[1].(map[string]any)["sku"] != "A" ||
		fmt.Sprint(a.body["missing"]) != "[NOPE]" {
		t.Errorf("store lookup: %s", a.raw)
	}
	a = do(t, "GET", e.url+"/v1/skus/A/stock?store=S2,S9,S1", "")
	items, _ = a.body["items"].([]any)
	if a.status != 200 || len(items) != 2 || items[0].(map[string]any)["store"] != "S2" || items[1].(map[string]any)["store"] != "S1" ||
		fmt.Sprint(a.body["missing"]) != "[S9]" {
		t.Errorf("cross-store lookup: %s", a.raw)
	}
	a = do(t, "GET", e.url+"/v1/stores/S9/stock?sku=X", "")
	if a.status != 200 || a.raw != `{"items":[],"missing":["X"]}`+"\n" {
		t.Errorf("all missing: %s", a.raw)
	}
	do(t, "GET", e.url+"/v1/stores/S1/stock", "").problem(t, 400, "invalid_input")
	do(t, "GET", e.url+"/v1/stores/S1/stock?sku=", "").problem(t, 400, "invalid_input")
	do(t, "GET", e.url+"/v1/stores/S1/stock?sku=A,b%20c", "").problem(t, 400, "invalid_input")
	do(t, "GET", e.url+"/v1/skus/A/stock?store=S{1}", "").problem(t, 400, "invalid_input")
	var many []string
	for i := range invhttp.MaxLookup + 1 {
		many = append(many, fmt.Sprintf("K%d", i))
	}
	do(t, "GET", e.url+"/v1/stores/S1/stock?sku="+strings.Join(many, ","), "").problem(t, 400, "invalid_input")
	a = do(t, "GET", e.url+"/v1/stores/S1/stock?sku="+strings.Join(many[:invhttp.MaxLookup], ","), "")
	if a.status != 200 || len(a.body["missing"].([]any)) != invhttp.MaxLookup {
		t.Errorf("1000-SKU lookup: %d", a.status)
	}
}

func TestPostSingleEvent(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	ev := `{"event_id":"pos-S1-1","type":"receipt","store":"S1","sku":"A","qty":10,"occurred_at":"2026-11-22T01:02:03Z","source":"pos"}`
	a := do(t, "POST", e.url+"/v1/events", ev)
	if a.status != 200 || a.body["status"] != "applied" || a.body["results"].([]any)[0].(map[string]any)["status"] != "applied" ||
		a.body["stock"].(map[string]any)["on_hand"] != 10.0 {
		t.Errorf("applied: %s", a.raw)
	}
	a = do(t, "POST", e.url+"/v1/events", ev)
	if a.status != 200 || a.body["status"] != "duplicate" || a.body["stock"].(map[string]any)["version"] != 1.0 {
		t.Errorf("duplicate: %s", a.raw)
	}
	a = do(t, "POST", e.url+"/v1/events", `{"event_id":"r1","type":"reserve","store":"S1","sku":"A","qty":11}`)
	a.problem(t, 409, "insufficient_stock")
	if a.body["event_id"] != "r1" || !strings.Contains(a.body["detail"].(string), "10 available") {
		t.Errorf("refusal: %s", a.raw)
	}
	a = do(t, "POST", e.url+"/v1/events", `{"event_id":"c1","type":"set","store":"S1","sku":"A","qty":3,"expected_version":7}`)
	a.problem(t, 409, "version_conflict")
	do(t, "POST", e.url+"/v1/events", `{"event_id":"f1","type":"fulfill","store":"S1","sku":"A","qty":1}`).problem(t, 409, "insufficient_reserved")

	// Bad input: a clear 400 and nothing changes.
	bad := map[string]string{
		"unknown field":   `{"event_id":"b1","type":"sale","store":"S1","sku":"A","qty":1,"till":7}`,
		"fractional qty":  `{"event_id":"b2","type":"sale","store":"S1","sku":"A","qty":1.5}`,
		"qty as string":   `{"event_id":"b3","type":"sale","store":"S1","sku":"A","qty":"1"}`,
		"not JSON":        `sale 1 of A`,
		"array":           `[{"event_id":"b4"}]`,
		"trailing data":   `{"event_id":"b5","type":"sale","store":"S1","sku":"A","qty":1} {}`,
		"bad time":        `{"event_id":"b6","type":"sale","store":"S1","sku":"A","qty":1,"occurred_at":"yesterday"}`,
		"empty":           ``,
		"null":            `null`,
		"unknown type":    `{"event_id":"b7","type":"steal","store":"S1","sku":"A","qty":1}`,
		"negative qty":    `{"event_id":"b8","type":"sale","store":"S1","sku":"A","qty":-1}`,
		"missing store":   `{"event_id":"b9","type":"sale","sku":"A","qty":1}`,
		"bad sku":         `{"event_id":"b10","type":"sale","store":"S1","sku":"A/B","qty":1}`,
		"batch and event": `{"events":[],"event_id":"b11"}`,
		"empty batch":     `{"events":[]}`,
		"events not list": `{"events":{"event_id":"b12"}}`,
	}
	for name, body := range bad {
		a := do(t, "POST", e.url+"/v1/events", body)
		if a.status != 400 || a.ctype != "application/problem+json" || a.body["detail"] == "" {
			t.Errorf("%s: %d %s", name, a.status, a.raw)
		}
	}
	huge := `{"event_id":"big","type":"sale","store":"S1","sku":"A","qty":1,"source":"` + strings.Repeat("x", httpx.MaxBody) + `"}`
	do(t, "POST", e.url+"/v1/events", huge).problem(t, 413, "body_too_large")
	do(t, "DELETE", e.url+"/v1/events", "").problem(t, 405, "method_not_allowed")
	do(t, "GET", e.url+"/v1/nothing", "").problem(t, 404, "not_found")

	st, err := e.store.Get(context.Background(), "S1", "A")
	if err != nil || st.OnHand != 10 || st.Reserved != 0 || st.Version != 1 {
		t.Errorf("after refusals and bad input: %+v %v", st, err)
	}
}

// A name given twice in one object is refused, never "the last one wins".
func TestDuplicateKeys(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	do(t, "POST", e.url+"/v1/events", `{"event_id":"d1","type":"receipt","store":"S1","sku":"A","qty":1,"qty":1000}`).problem(t, 400, "invalid_json")
	do(t, "POST", e.url+"/v1/events", `{"events":[{"event_id":"d2","type":"receipt","store":"S1","sku":"A","qty":1}],"events":[]}`).problem(t, 400, "invalid_json")
	a := do(t, "POST", e.url+"/v1/events", `{"events":[{"event_id":"d3","type":"receipt","store":"S1","sku":"A","qty":1,"store":"S2"}]}`)
	if a.status != 400 {
		t.Errorf("a batch event with a name twice: %d %s", a.status, a.raw)
	}
	if _, err := e.store.Get(context.Background(), "S1", "A"); err == nil {
		t.Error("a refused body changed the stock")
	}
}

func TestPostBatch(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	a := do(t, "POST", e.url+"/v1/events", `{"events":[
		{"event_id":"a1","type":"receipt","store":"S1","sku":"A","qty":4},
		{"event_id":"a2","type":"reserve","store":"S1","sku":"A","qty":9},
		{"event_id":"a1","type":"receipt","store":"S1","sku":"A","qty":4},
		{"event_id":"a3","type":"receipt","store":"S2","sku":"A","qty":1}]}`)
	want := []string{"applied", "rejected", "duplicate", "applied"}
	res, _ := a.body["results"].([]any)
	if a.status != 200 || len(res) != 4 || a.body["status"] != nil {
		t.Fatalf("batch: %s", a.raw)
	}
	for i, w := range want {
		r := res[i].(map[string]any)
		if r["status"] != w {
			t.Errorf("result %d: %v, want %s", i, r, w)
		}
	}
	if r := res[1].(map[string]any); r["code"] != "insufficient_stock" || r["error"] == "" {
		t.Errorf("refused in batch: %v", r)
	}

	// One invalid event refuses the whole batch, listing every problem.
	a = do(t, "POST", e.url+"/v1/events", `{"events":[
		{"event_id":"b1","type":"receipt","store":"S1","sku":"A","qty":4},
		{"event_id":"b2","type":"receipt","store":"S1","sku":"A","qty":0},
		{"event_id":"b3","type":"receipt","store":"S1","sku":"A","qty":1,"extra":true}]}`)
	a.problem(t, 400, "invalid_input")
	errs, _ := a.body["errors"].([]any)
	if len(errs) != 2 || errs[0].(map[string]any)["index"] != 1.0 || errs[0].(map[string]any)["field"] != "qty" ||
		errs[1].(map[string]any)["index"] != 2.0 {
		t.Errorf("batch problems: %s", a.raw)
	}
	if st, _ := e.store.Get(context.Background(), "S1", "A"); st.OnHand != 4 || st.Version != 1 {
		t.Errorf("invalid batch changed stock: %+v", st)
	}
	var events []string
	for i := range invhttp.MaxBatch + 1 {
		events = append(events, fmt.Sprintf(`{"event_id":"m%d","type":"receipt","store":"S3","sku":"A","qty":1}`, i))
	}
	do(t, "POST", e.url+"/v1/events", `{"events":[`+strings.Join(events, ",")+`]}`).problem(t, 400, "invalid_input")
	a = do(t, "POST", e.url+"/v1/events", `{"events":[`+strings.Join(events[:invhttp.MaxBatch], ",")+`]}`)
	if st, _ := e.store.Get(context.Background(), "S3", "A"); a.status != 200 || st.OnHand != invhttp.MaxBatch || st.Version != invhttp.MaxBatch {
		t.Errorf("1000-event batch: %d %+v", a.status, st)
	}
}

// TestStoreFaults: a hung Redis is a 504 after the request timeout, a dead one a 503; both
// say that retrying is safe.
func TestStoreFaults(t *testing.T) {
	e := newRedisEnv(t, 300*time.Millisecond)
	seed(t, e, inventorytest.Ev(inventory.Receipt, "S1", "A", 1))
	if err := e.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	a := do(t, "GET", e.url+"/v1/stores/S1/skus/A", "")
	a.problem(t, 504, "timeout")
	do(t, "POST", e.url+"/v1/events", `{"event_id":"x","type":"sale","store":"S1","sku":"A","qty":1}`).problem(t, 504, "timeout")
	if err := e.redis.Resume(); err != nil {
		t.Fatal(err)
	}
	e.redis.Stop()
	a = do(t, "GET", e.url+"/v1/stores/S1/stock?sku=A", "")
	a.problem(t, 503, "store_unavailable")
	if !strings.Contains(a.body["detail"].(string), "retrying") {
		t.Errorf("detail: %s", a.raw)
	}
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }
