package httpx_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/jaego"
)

// Readiness: starting until Started; ready while every dependency answers; degraded (200)
// while one is down but its fallback answers; not ready (its problem) when neither does.
func TestReadiness(t *testing.T) {
	var stockErr, copyErr, promoErr error
	ping := func(err *error) func(context.Context) error { return func(context.Context) error { return *err } }
	r := httpx.NewReadiness(slog.New(slog.DiscardHandler),
		httpx.Dependency{Name: "stock", Ping: ping(&stockErr), Fallback: ping(&copyErr),
			Down:     jaego.Errorf(jaego.CodeUnavailable, "the stock store (Redis) does not answer"),
			Degraded: map[string]string{"redis": "down", "reads": "fallback"}},
		httpx.Dependency{Name: "promotions", Ping: ping(&promoErr), Down: jaego.Errorf(jaego.CodePromotionsDBDown, "the promotions database does not answer")})
	check := func(what string, status int, field, want string) {
		t.Helper()
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != status || body[field] != want {
			t.Fatalf("%s: %d %v, want %d with %s %q", what, w.Code, body, status, field, want)
		}
	}
	check("before Started", http.StatusServiceUnavailable, "code", "starting")
	r.Started()
	check("all up", http.StatusOK, "status", "ready")
	down := errors.New("connection refused")
	stockErr = down
	check("Redis down, the copy up", http.StatusOK, "status", "degraded")
	copyErr = down
	check("Redis and the copy down", http.StatusServiceUnavailable, "code", "store_unavailable")
	stockErr, copyErr, promoErr = nil, nil, down
	check("the promotions database down", http.StatusServiceUnavailable, "code", "promotions_db_unavailable")
}
