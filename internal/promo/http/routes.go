// Package http serves the gift-promotion API of design §9: the admin routes that change
// promotions in SQL and rebuild the cache before answering, and the read routes that
// evaluate in memory on the catalog of the version served now.
package http

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/promo"
)

// Store is the SQL side the admin routes write (promo/db.DB).
type Store interface {
	Create(ctx context.Context, s promo.Spec, now time.Time) (promo.Promotion, error)
	Get(ctx context.Context, id string) (promo.Promotion, error)
	Update(ctx context.Context, id string, change func(*promo.Promotion) (promo.Spec, error), now time.Time) (promo.Promotion, error)
	Stop(ctx context.Context, id string, now time.Time) (promo.Promotion, error)
	// Changes lists who changed promotion id, when and how, oldest first.
	Changes(ctx context.Context, id string) ([]promo.Change, error)
	// List pages through the promotions in creation order, of one status or all.
	List(ctx context.Context, status promo.Status, after string, limit int) ([]promo.Promotion, error)
}

// Catalogs is the cache the read routes serve from (promo/redis.Cache).
type Catalogs interface {
	// Version is the version served now; Current is its catalog.
	Version(ctx context.Context) (int64, error)
	Current(ctx context.Context) (*promo.Catalog, error)
}

// Rebuilder rebuilds the cache after an admin change (promo.Rebuilder).
type Rebuilder interface {
	Rebuild(ctx context.Context, reason string) (int64, error)
	// Soon asks the background loop to retry a rebuild that failed.
	Soon()
}

// API is the promotion HTTP API.
type API struct {
	store     Store
	cache     Catalogs
	rebuilder Rebuilder
	stock     promo.StockAt
	now       func() time.Time
	timeout   time.Duration
	log       *slog.Logger
	off       error // set by Disabled: every route answers it
}

// Options configures the API.
type Options struct {
	// Stock says gift stock at a store for POST /v1/gifts/evaluate with a store (design
	// §12); without it grants say nothing of stock.
	Stock   promo.StockAt
	Now     func() time.Time // the clock of the period checks; default time.Now
	Timeout time.Duration    // bounds one read request; default 2s (admin changes get 30s)
	Logger  *slog.Logger
}

// New returns the API.
func New(store Store, cache Catalogs, rb Rebuilder, opts Options) *API {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{store: store, cache: cache, rebuilder: rb, stock: opts.Stock, now: opts.Now, timeout: opts.Timeout, log: opts.Logger}
}

// Disabled returns the API of a server without promotions: the same routes, each answering
// promotions_disabled with detail (how to turn them on).
func Disabled(detail string) *API {
	return &API{off: jaego.Errorf(jaego.CodePromotionsDisabled, "%s", detail)}
}

// Register adds every promotion route to mux. This is the one list of them.
func (a *API) Register(mux httpx.Mux) {
	for _, r := range []struct {
		pattern string
		handler func() http.Handler
	}{
		{"POST /v1/admin/promotions", a.create},
		{"GET /v1/admin/promotions", a.list},
		{"GET /v1/admin/promotions/{id}", a.get},
		{"PATCH /v1/admin/promotions/{id}", a.patch},
		{"POST /v1/admin/promotions/{id}/stop", a.stop},
		{"GET /v1/admin/promotions/{id}/changes", a.changes},
		{"GET /v1/promotions/version", a.version},
		{"GET /v1/products/{sku}/gifts", a.productGifts},
		{"POST /v1/gifts/evaluate", a.evaluate},
	} {
		h := r.handler()
		if a.off != nil {
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httpx.Fail(w, r, nil, a.off) })
		}
		mux.Handle(r.pattern, h)
	}
}

// adminTimeout bounds an admin change: the SQL commit, the wait for the rebuild lock and
// the rebuild itself.
const adminTimeout = 30 * time.Second

func (a *API) create() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := a.body(w, r)
		if !ok {
			return
		}
		spec, err := promo.DecodeSpec(body)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
		defer cancel()
		p, err := a.store.Create(ctx, spec, a.now())
		a.changed(ctx, w, r, http.StatusCreated, p, err)
	})
}

// Limits of the promotion list.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

type listAnswer struct {
	Promotions []promo.Promotion `json:"promotions"`
	NextCursor string            `json:"next_cursor"` // "" after the last page
}

func (a *API) list() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		status := promo.Status(q.Get("status"))
		if status != "" && status != promo.Active && status != promo.Stopped {
			a.fail(w, r, jaego.Invalidf("status", "status must be active or stopped, got %q", status))
			return
		}
		limit := DefaultListLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxListLimit {
				a.fail(w, r, jaego.Invalidf("limit", "limit must be 1..%d, got %q", MaxListLimit, v))
				return
			}
			limit = n
		}
		after := ""
		if c := q.Get("cursor"); c != "" {
			b, err := base64.RawURLEncoding.DecodeString(c)
			if err != nil || len(b) == 0 {
				a.fail(w, r, &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor", Detail: "malformed cursor: pass next_cursor back unchanged"})
				return
			}
			after = string(b)
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		ps, err := a.store.List(ctx, status, after, limit+1)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ans := listAnswer{Promotions: ps}
		if len(ps) > limit {
			ans.Promotions = ps[:limit]
			ans.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(ps[limit-1].ID))
		}
		if ans.Promotions == nil {
			ans.Promotions = []promo.Promotion{}
		}
		httpx.WriteJSON(w, http.StatusOK, ans)
	})
}

func (a *API) get() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		p, err := a.store.Get(ctx, r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, p)
	})
}

// changes is the audit trail of one promotion (design §11).
func (a *API) changes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		cs, err := a.store.Changes(ctx, r.PathValue("id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"changes": cs})
	})
}

func (a *API) patch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := a.body(w, r)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
		defer cancel()
		p, err := a.store.Update(ctx, r.PathValue("id"), func(cur *promo.Promotion) (promo.Spec, error) {
			return promo.ApplyPatch(cur, body)
		}, a.now())
		a.changed(ctx, w, r, http.StatusOK, p, err)
	})
}

func (a *API) stop() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
		defer cancel()
		p, err := a.store.Stop(ctx, r.PathValue("id"), a.now())
		a.changed(ctx, w, r, http.StatusOK, p, err)
	})
}

// changed answers an admin change: after the commit it rebuilds the cache, so that when
// the answer arrives the pointer already names a version with the change, and the next
// read on any instance sees it. When the rebuild fails the change is committed anyway: the
// answer is a 503 that says so (with the promotion), and a background rebuild retries.
func (a *API) changed(ctx context.Context, w http.ResponseWriter, r *http.Request, status int, p promo.Promotion, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(ctx, "promotion changed", "method", r.Method, "path", r.URL.Path, "id", p.ID, "status", p.Status)
	v, err := a.rebuilder.Rebuild(ctx, "admin")
	if err != nil {
		a.rebuilder.Soon()
		a.log.ErrorContext(ctx, "promotion saved but the cache rebuild failed; retrying in the background", "id", p.ID, "err", err)
		pb := httpx.ProblemOf(jaego.Errorf(jaego.CodeRebuildFailed, "the change is saved but the promotion cache "+
			"could not be rebuilt yet; it is retried in the background and served once a rebuild succeeds (do not repeat a create)"))
		pb.Extra["promotion"] = p
		httpx.WriteProblem(w, pb)
		return
	}
	w.Header().Set("X-Promotion-Version", strconv.FormatInt(v, 10))
	httpx.WriteJSON(w, status, p)
}

func (a *API) version() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		v, err := a.cache.Version(ctx)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]int64{"version": v})
	})
}

type productAnswer struct {
	Version    int64         `json:"version"`
	Promotions []promo.Offer `json:"promotions"`
}

func (a *API) productGifts() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		q := r.URL.Query()
		where := promo.Where{Channel: q.Get("channel"), Store: q.Get("store"), At: a.now()}
		if where.Channel == "" {
			where.Channel = promo.ChannelOnline
		}
		err := errors.Join(jaego.CheckSKU(sku), where.Check())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		cat, err := a.catalog(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, productAnswer{Version: cat.Version, Promotions: cat.ProductGifts(sku, where)})
	})
}

type evaluateAnswer struct {
	Version int64         `json:"version"`
	Gifts   []promo.Grant `json:"gifts"`
}

func (a *API) evaluate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := a.body(w, r)
		if !ok {
			return
		}
		var order promo.Order
		if err := jaego.StrictUnmarshal(body, &order); err != nil {
			a.fail(w, r, err)
			return
		}
		if order.Channel == "" {
			order.Channel = promo.ChannelOnline
		}
		if err := order.Validate(); err != nil {
			a.fail(w, r, err)
			return
		}
		cat, err := a.catalog(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		gifts, err := promo.WithStock(ctx, order, cat.Evaluate(order, a.now()), a.stock)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, evaluateAnswer{Version: cat.Version, Gifts: gifts})
	})
}

func (a *API) catalog(r *http.Request) (*promo.Catalog, error) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	return a.cache.Current(ctx)
}

// body reads the request body; when it cannot, it has answered the problem.
func (a *API) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := httpx.ReadBody(w, r)
	if err != nil {
		a.fail(w, r, err)
	}
	return b, err == nil
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) { httpx.Fail(w, r, a.log, err) }
