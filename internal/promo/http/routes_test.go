package http_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/httpx/httpxtest"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/promo"
	promodb "github.com/jaego/jaego/internal/promo/db"
	promohttp "github.com/jaego/jaego/internal/promo/http"
	promoredis "github.com/jaego/jaego/internal/promo/redis"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

const spec = `{"name":"Toner 1+1","starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z",
	"channels":["online"],"targets":["TONER-1"],"condition":{"min_qty":2},"gifts":[{"sku":"GIFT-1","qty":1}]}`

func serve(t *testing.T, api *promohttp.API) string {
	log := slog.New(slog.DiscardHandler)
	mux := http.NewServeMux()
	api.Register(mux)
	ts := httptest.NewServer(httpx.Instrument(mux, prometheus.NewRegistry(), log))
	t.Cleanup(ts.Close)
	return ts.URL
}

// The promotion API on SQLite and a private Redis: a create is served at once; when the
// cache cannot be rebuilt the change is kept and the answer says so (cache_rebuild_failed,
// with the promotion); invalid input and unknown ids are problems.
func TestPromotionAdmin(t *testing.T) {
	ctx := context.Background()
	client, srv := testenv.Redis(t)
	sd, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	if _, err := sd.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	store := promodb.New(sd)
	log := slog.New(slog.DiscardHandler)
	cache := promoredis.New(client, promoredis.Options{Logger: log})
	rb := promo.NewRebuilder(promo.RebuilderOptions{Source: store, Publisher: cache, Locker: lock.New(client, lock.Options{Logger: log}), Logger: log})
	url := serve(t, promohttp.New(store, cache, rb, promohttp.Options{Logger: log}))

	code, created := httpxtest.Call(t, "POST", url+"/v1/admin/promotions", spec)
	if code != 201 || created["status"] != "active" {
		t.Fatalf("create: %d %v", code, created)
	}
	code, gifts := httpxtest.Call(t, "GET", url+"/v1/products/TONER-1/gifts", "")
	if code != 200 || len(gifts["promotions"].([]any)) != 1 {
		t.Fatalf("served after the create: %d %v", code, gifts)
	}
	if code, m := httpxtest.Call(t, "POST", url+"/v1/admin/promotions", strings.Replace(spec, `"min_qty":2`, `"min_qty":0`, 1)); code != 400 || m["code"] != "invalid_input" {
		t.Fatalf("invalid promotion: %d %v", code, m)
	}
	if code, m := httpxtest.Call(t, "GET", url+"/v1/admin/promotions/nope", ""); code != 404 || m["code"] != "not_found" {
		t.Fatalf("unknown id: %d %v", code, m)
	}

	// The list: pages in creation order, by status, with a cursor.
	var ids []string
	for i := range 4 {
		code, p := httpxtest.Call(t, "POST", url+"/v1/admin/promotions", strings.Replace(spec, "Toner 1+1", fmt.Sprintf("List %d", i), 1))
		if code != 201 {
			t.Fatalf("create %d: %d %v", i, code, p)
		}
		ids = append(ids, p["id"].(string))
	}
	if code, p := httpxtest.Call(t, "POST", url+"/v1/admin/promotions/"+ids[1]+"/stop", ""); code != 200 {
		t.Fatalf("stop: %d %v", code, p)
	}
	var listed []string
	for cursor, pages := "", 0; ; pages++ {
		code, page := httpxtest.Call(t, "GET", url+"/v1/admin/promotions?limit=2&cursor="+cursor, "")
		if code != 200 || pages > 5 {
			t.Fatalf("list page: %d %v", code, page)
		}
		for _, p := range page["promotions"].([]any) {
			listed = append(listed, p.(map[string]any)["id"].(string))
		}
		if cursor = page["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if want := append([]string{created["id"].(string)}, ids...); strings.Join(listed, ",") != strings.Join(want, ",") {
		t.Errorf("listed %v, want %v in creation order", listed, want)
	}
	code, stopped := httpxtest.Call(t, "GET", url+"/v1/admin/promotions?status=stopped", "")
	if ps := stopped["promotions"].([]any); code != 200 || len(ps) != 1 || ps[0].(map[string]any)["id"] != ids[1] || stopped["next_cursor"] != "" {
		t.Errorf("stopped promotions: %d %v", code, stopped)
	}
	for _, bad := range []string{"status=paused", "limit=0", "limit=1001", "cursor=%21%21"} {
		if code, p := httpxtest.Call(t, "GET", url+"/v1/admin/promotions?"+bad, ""); code != 400 {
			t.Errorf("%s: %d %v", bad, code, p)
		}
	}

	srv.Stop() // Redis is gone: the SQL change commits, the cache rebuild cannot
	code, m := httpxtest.Call(t, "POST", url+"/v1/admin/promotions/"+created["id"].(string)+"/stop", "")
	if code != 503 || m["code"] != "cache_rebuild_failed" || m["promotion"].(map[string]any)["status"] != "stopped" {
		t.Fatalf("stop with the cache down: %d %v", code, m)
	}
	if p, err := store.Get(ctx, created["id"].(string)); err != nil || p.Status != promo.Stopped {
		t.Fatalf("the stop was not kept: %+v %v", p, err)
	}
	if code, m := httpxtest.Call(t, "GET", url+"/v1/promotions/version", ""); code != 503 || m["code"] != "store_unavailable" {
		t.Fatalf("version with Redis down: %d %v", code, m)
	}
}

// A server without promotions answers every promotion route with promotions_disabled.
func TestPromotionsDisabled(t *testing.T) {
	url := serve(t, promohttp.Disabled("gift promotions are off: start with --postgres"))
	for _, r := range []struct{ method, path string }{
		{"POST", "/v1/admin/promotions"}, {"GET", "/v1/admin/promotions"}, {"GET", "/v1/admin/promotions/x"}, {"PATCH", "/v1/admin/promotions/x"},
		{"POST", "/v1/admin/promotions/x/stop"}, {"GET", "/v1/promotions/version"}, {"GET", "/v1/products/A/gifts"},
		{"POST", "/v1/gifts/evaluate"},
	} {
		code, m := httpxtest.Call(t, r.method, url+r.path, "{}")
		if code != 503 || m["code"] != "promotions_disabled" || !strings.Contains(m["detail"].(string), "--postgres") {
			t.Errorf("%s %s: %d %v", r.method, r.path, code, m)
		}
	}
}
