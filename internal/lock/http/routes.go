// Package http serves the operators' view of the distributed locks: which are held, and a
// force-unlock for a holder that is stuck.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/lock"
)

// API is the lock admin API.
type API struct {
	locker *lock.Locker
	log    *slog.Logger
}

// New returns the API over locker.
func New(locker *lock.Locker, log *slog.Logger) *API { return &API{locker: locker, log: log} }

// Register adds the lock admin routes to mux. This is the one list of them.
func (a *API) Register(mux httpx.Mux) {
	mux.Handle("GET /v1/admin/locks", a.list())
	mux.Handle("POST /v1/admin/locks/{name}/force-unlock", a.forceUnlock())
}

func (a *API) list() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		infos, err := a.locker.List(ctx)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if infos == nil {
			infos = []lock.Info{}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"locks": infos})
	})
}

func (a *API) forceUnlock() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		released, err := a.locker.ForceUnlock(ctx, name)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.log.WarnContext(r.Context(), "force-unlock by operator", "lock", name, "released", released, "remote", r.RemoteAddr)
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"name": name, "released": released})
	})
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) { httpx.Fail(w, r, a.log, err) }
