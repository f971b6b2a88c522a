// Package http serves the webhook admin API of design §14 over net/http (admin scope: every
// route is under /v1/admin/).
package http

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/webhook"
)

// API is the webhook admin API; with a nil Admin every route answers webhooks_disabled.
type API struct {
	admin *webhook.Admin
	store webhook.Store
	off   error
	log   *slog.Logger
}

// New returns the API on admin and store.
func New(admin *webhook.Admin, store webhook.Store, log *slog.Logger) *API {
	return &API{admin: admin, store: store, log: log}
}

// Disabled returns the API of an instance without webhooks; detail says why.
func Disabled(detail string, log *slog.Logger) *API {
	return &API{off: jaego.Errorf(jaego.CodeWebhooksDisabled, "%s", detail), log: log}
}

// Timeout bounds one admin request (a test message waits up to the sender's 10 s).
const Timeout = 5 * time.Second

// Register adds the routes to mux: the one list of them.
func (a *API) Register(mux httpx.Mux) {
	mux.Handle("POST /v1/admin/webhooks", a.handle(Timeout, a.create))
	mux.Handle("GET /v1/admin/webhooks", a.handle(Timeout, a.list))
	mux.Handle("GET /v1/admin/webhooks/{id}", a.handle(Timeout, a.get))
	mux.Handle("PATCH /v1/admin/webhooks/{id}", a.handle(Timeout, a.patch))
	mux.Handle("DELETE /v1/admin/webhooks/{id}", a.handle(Timeout, a.delete))
	mux.Handle("POST /v1/admin/webhooks/{id}/rotate-secret", a.handle(Timeout, a.rotate))
	mux.Handle("GET /v1/admin/webhooks/{id}/deliveries", a.handle(Timeout, a.deliveries))
	mux.Handle("POST /v1/admin/webhooks/{id}/replay", a.handle(Timeout, a.replay))
	mux.Handle("POST /v1/admin/webhooks/{id}/test", a.handle(11*time.Second, a.test)) // the sender's 10 s, and the rest
}

// handle runs fn with its context bounded by timeout (and the answer by a little more), and
// writes its error as a problem.
func (a *API) handle(timeout time.Duration, fn func(ctx context.Context, w http.ResponseWriter, r *http.Request) error) http.Handler {
	return httpx.Within(timeout+50*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := a.off
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			err = fn(ctx, w, r)
		}
		if err != nil {
			httpx.Fail(w, r, a.log, err)
		}
	}))
}

type createBody struct {
	URL      string   `json:"url"`
	Events   []string `json:"events"`
	Stores   []string `json:"stores"`
	SKUs     []string `json:"skus"`
	LowStock *int64   `json:"low_stock"`
	Batch    int      `json:"batch"`
	From     string   `json:"from"`
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := httpx.ReadBody(w, r)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	return jaego.StrictUnmarshal(body, v)
}

func (a *API) create(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var b createBody
	if err := decode(w, r, &b); err != nil {
		return err
	}
	s := webhook.Subscription{URL: b.URL, Events: b.Events, Stores: b.Stores, SKUs: b.SKUs, Batch: b.Batch, LowStock: webhook.DefaultLow}
	if b.LowStock != nil {
		s.LowStock = *b.LowStock
	}
	info, err := a.admin.Create(ctx, s, b.From)
	if err != nil {
		return err
	}
	a.log.Info("webhook created", "subscription", info.ID, "url", info.URL, "events", info.Events)
	httpx.WriteJSON(w, http.StatusCreated, info)
	return nil
}

func (a *API) list(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	subs, err := a.store.List(ctx)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": subs})
	return nil
}

func (a *API) get(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	info, err := a.store.Get(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, info)
	return nil
}

func (a *API) patch(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var p webhook.Patch
	if err := decode(w, r, &p); err != nil {
		return err
	}
	info, err := a.admin.Update(ctx, r.PathValue("id"), p)
	if err != nil {
		return err
	}
	a.log.Info("webhook changed", "subscription", info.ID, "status", info.Status)
	httpx.WriteJSON(w, http.StatusOK, info)
	return nil
}

func (a *API) delete(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if err := a.store.Delete(ctx, r.PathValue("id")); err != nil {
		return err
	}
	a.log.Info("webhook deleted", "subscription", r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) rotate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	secret, until, err := a.admin.Rotate(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	a.log.Info("webhook secret rotated", "subscription", r.PathValue("id"), "old_valid_until", until)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "secret": secret, "previous_valid_until": until})
	return nil
}

func (a *API) deliveries(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return jaego.Invalidf("limit", "limit must be 1..1000, got %q", v)
		}
		limit = n
	}
	page, err := a.store.Deliveries(ctx, r.PathValue("id"), q.Get("status"), limit, q.Get("cursor"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, page)
	return nil
}

func (a *API) replay(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var b struct {
		From string `json:"from"`
	}
	if err := decode(w, r, &b); err != nil {
		return err
	}
	if err := a.admin.Replay(ctx, r.PathValue("id"), b.From); err != nil {
		return err
	}
	a.log.Info("webhook replay", "subscription", r.PathValue("id"), "from", b.From)
	info, err := a.store.Get(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusAccepted, info)
	return nil
}

func (a *API) test(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	at, err := a.admin.Test(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	a.log.Info("webhook test message", "subscription", r.PathValue("id"), "status", at.Status, "err", at.Error)
	httpx.WriteJSON(w, http.StatusOK, at)
	return nil
}
