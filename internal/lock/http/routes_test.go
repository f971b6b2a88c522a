package http_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/httpx/httpxtest"
	"github.com/jaego/jaego/internal/lock"
	lockhttp "github.com/jaego/jaego/internal/lock/http"
	"github.com/jaego/jaego/internal/testenv"
)

// The lock admin API on a real Redis: list, force-unlock (the holder learns it lost the
// lock), an invalid name, and a Redis that died.
func TestLockAdmin(t *testing.T) {
	client, srv := testenv.Redis(t)
	log := slog.New(slog.DiscardHandler)
	locks := lock.New(client, lock.Options{Logger: log})
	mux := http.NewServeMux()
	lockhttp.New(locks, log).Register(mux)
	ts := httptest.NewServer(httpx.Instrument(mux, prometheus.NewRegistry(), log))
	defer ts.Close()

	if code, m := httpxtest.Call(t, "GET", ts.URL+"/v1/admin/locks", ""); code != 200 || len(m["locks"].([]any)) != 0 {
		t.Fatalf("no locks: %d %v", code, m)
	}
	held, err := locks.Lock(context.Background(), "store-count.S001", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	code, m := httpxtest.Call(t, "GET", ts.URL+"/v1/admin/locks", "")
	list := m["locks"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["name"] != "store-count.S001" ||
		list[0].(map[string]any)["token"] != float64(held.Token) {
		t.Fatalf("one lock: %d %v", code, m)
	}
	if code, m := httpxtest.Call(t, "POST", ts.URL+"/v1/admin/locks/store-count.S001/force-unlock", ""); code != 200 || m["released"] != true {
		t.Fatalf("force-unlock: %d %v", code, m)
	}
	if err := held.Unlock(context.Background()); err == nil {
		t.Error("the holder's unlock after a force-unlock succeeded")
	}
	if code, m := httpxtest.Call(t, "POST", ts.URL+"/v1/admin/locks/store-count.S001/force-unlock", ""); code != 200 || m["released"] != false {
		t.Fatalf("force-unlock of a free lock: %d %v", code, m)
	}
	if code, m := httpxtest.Call(t, "POST", ts.URL+"/v1/admin/locks/bad%7Bname%7D/force-unlock", ""); code != 400 || m["code"] != "invalid_input" {
		t.Fatalf("invalid name: %d %v", code, m)
	}
	srv.Stop()
	if code, m := httpxtest.Call(t, "GET", ts.URL+"/v1/admin/locks", ""); code != 503 || m["code"] != "store_unavailable" {
		t.Fatalf("Redis down: %d %v", code, m)
	}
}
