package http

import (
	"net/http"
	"strconv"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Limits of the history route.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 10000
)

// historyAnswer is one page of a store × SKU's ledger, oldest first.
type historyAnswer struct {
	Changes    []inventory.Change `json:"changes"`
	NextCursor string             `json:"next_cursor"`
}

func (a *API) stockHistory() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		store, sku := r.PathValue("store"), r.PathValue("sku")
		q := r.URL.Query()
		from, to := time.UnixMilli(0), time.Now().Add(time.Minute)
		var err error
		if err = jaego.CheckStore(store); err == nil {
			err = jaego.CheckSKU(sku)
		}
		if v := q.Get("from"); v != "" && err == nil {
			from, err = parseTime("from", v)
		}
		if v := q.Get("to"); v != "" && err == nil {
			to, err = parseTime("to", v)
		}
		if err == nil && !to.After(from) {
			err = jaego.Invalidf("to", "to must be after from")
		}
		limit := DefaultHistoryLimit
		if v := q.Get("limit"); v != "" && err == nil {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxHistoryLimit {
				err = jaego.Invalidf("limit", "limit must be 1..%d, got %q", MaxHistoryLimit, v)
			}
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		page, err := a.history.History(ctx, store, sku, from, to, q.Get("cursor"), limit)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if page.Changes == nil {
			page.Changes = []inventory.Change{}
		}
		httpx.WriteJSON(w, http.StatusOK, historyAnswer{Changes: page.Changes, NextCursor: page.Next})
	})
}

// breakerAnswer is the breaker and the durable copy as operators see them.
type breakerAnswer struct {
	inventory.BreakerStatus
	CopyPosition   *time.Time `json:"copy_position"` // the copy holds every change before it; null: none yet
	CopyLagSeconds *float64   `json:"copy_lag_seconds"`
	CopyChanges    int64      `json:"copy_changes"`
}

func (a *API) breakerAnswer(r *http.Request) breakerAnswer {
	ans := breakerAnswer{BreakerStatus: a.breaker.Status()}
	if a.copy == nil {
		return ans
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	if p, err := a.copy.Position(ctx); err == nil && !p.AsOf.IsZero() {
		at, lag := p.AsOf.UTC(), max(0, time.Since(p.AsOf).Seconds())
		ans.CopyPosition, ans.CopyLagSeconds, ans.CopyChanges = &at, &lag, p.Changes
	} else if err != nil {
		a.log.WarnContext(r.Context(), "breaker status: the copy's position is unreadable", "err", err)
	}
	return ans
}

func (a *API) breakerStatus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, a.breakerAnswer(r))
	})
}

func (a *API) setBreaker() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			State string `json:"state"`
		}
		if err := decodeBody(w, r, &req); err != nil {
			a.fail(w, r, err)
			return
		}
		switch req.State {
		case "forced_open":
			a.breaker.Force()
		case "auto":
			if err := a.breaker.Auto(); err != nil {
				a.fail(w, r, err)
				return
			}
		default:
			a.fail(w, r, jaego.Invalidf("state", `state must be "forced_open" or "auto", got %q`, req.State))
			return
		}
		a.log.WarnContext(r.Context(), "redis breaker set by an operator", "state", req.State, "remote", r.RemoteAddr)
		httpx.WriteJSON(w, http.StatusOK, a.breakerAnswer(r))
	})
}
