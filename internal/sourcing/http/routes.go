// Package http serves the store directory and sourcing of design §15 over net/http.
package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sourcing"
)

// Options configures the routes.
type Options struct {
	// CanHold checks that the caller may hold stock (the write scope): sourcing is a read,
	// sourcing with "hold" a write. Nil: anyone who may source may hold.
	CanHold func(r *http.Request) error
	// Timeout bounds the store work of one request; default 2s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// API is the directory and sourcing API.
type API struct {
	dir     sourcing.Directory
	sourcer *sourcing.Sourcer
	o       Options
}

// New returns the API.
func New(dir sourcing.Directory, sourcer *sourcing.Sourcer, o Options) *API {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &API{dir: dir, sourcer: sourcer, o: o}
}

// Register adds the routes to mux: the one list of them.
func (a *API) Register(mux httpx.Mux) {
	d := a.o.Timeout + 50*time.Millisecond
	mux.Handle("PUT /v1/admin/stores/{store}", httpx.Within(d, a.putStore()))
	mux.Handle("GET /v1/admin/stores/{store}", httpx.Within(d, a.getStore()))
	mux.Handle("GET /v1/stores", httpx.Within(d, a.nearStores()))
	mux.Handle("POST /v1/sourcing", httpx.Within(d, a.source()))
}

func (a *API) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.o.Timeout)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	httpx.Fail(w, r, a.o.Logger, err)
}

type storeBody struct {
	Name         string          `json:"name"`
	Lat          *float64        `json:"lat"`
	Lon          *float64        `json:"lon"`
	Capabilities []string        `json:"capabilities"`
	Status       sourcing.Status `json:"status"`
}

func (a *API) putStore() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := httpx.ReadBody(w, r)
		var b storeBody
		if err == nil {
			err = jaego.StrictUnmarshal(body, &b)
		}
		if err == nil && (b.Lat == nil || b.Lon == nil) {
			err = jaego.Invalidf("lat", "lat and lon are required")
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		s := sourcing.Store{ID: r.PathValue("store"), Name: b.Name, Lat: *b.Lat, Lon: *b.Lon, Capabilities: b.Capabilities, Status: b.Status}
		if err := s.Validate(); err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		if err := a.dir.Put(ctx, s); err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, s)
	})
}

func (a *API) getStore() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("store")
		if err := jaego.CheckStore(id); err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		s, err := a.dir.Get(ctx, id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, s)
	})
}

// parsePoint reads "<lat>,<lon>".
func parsePoint(field, v string) (lat, lon float64, err error) {
	la, lo, ok := strings.Cut(v, ",")
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(la), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, jaego.Invalidf(field, "%s must be <lat>,<lon>, e.g. 37.4979,127.0276; got %q", field, v)
	}
	return lat, lon, sourcing.CheckPoint(lat, lon)
}

// nearStores is GET /v1/stores?near=<lat>,<lon>&radius_km=&capability=&limit=: the stores
// around a point, nearest first, closed ones with their status.
func (a *API) nearStores() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		lat, lon, err := parsePoint("near", q.Get("near"))
		radius, limit := sourcing.DefaultRadiusKm, 20
		if err == nil && q.Get("radius_km") != "" {
			radius, err = strconv.ParseFloat(q.Get("radius_km"), 64)
			if err != nil || !(radius > 0 && radius <= sourcing.MaxRadiusKm) {
				err = jaego.Invalidf("radius_km", "radius_km must be above 0 and at most %v, got %q", sourcing.MaxRadiusKm, q.Get("radius_km"))
			}
		}
		if err == nil && q.Get("limit") != "" {
			limit, err = strconv.Atoi(q.Get("limit"))
			if err != nil || limit < 1 || limit > sourcing.MaxListed {
				err = jaego.Invalidf("limit", "limit must be 1..%d, got %q", sourcing.MaxListed, q.Get("limit"))
			}
		}
		capability := q.Get("capability")
		if err == nil && capability != "" {
			err = sourcing.CheckCapability(capability)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		// A capability filter reads further, up to the cap, so that limit stores with it come back.
		read := limit
		if capability != "" {
			read = sourcing.MaxListed * 2
		}
		found, err := a.dir.Near(ctx, lat, lon, radius, read)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out := []sourcing.Near{}
		for _, n := range found {
			if n.Can(capability) && len(out) < limit {
				out = append(out, n)
			}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"stores": out})
	})
}

type sourcingBody struct {
	Items []inventory.Item `json:"items"`
	To    *struct {
		Lat *float64 `json:"lat"`
		Lon *float64 `json:"lon"`
	} `json:"to"`
	RadiusKm   float64 `json:"radius_km"`
	Capability string  `json:"capability"`
	MaxStores  int     `json:"max_stores"`
	Plans      int     `json:"plans"`
	Hold       *struct {
		ReservationID string `json:"reservation_id"`
		Hold          string `json:"hold"`
	} `json:"hold"`
}

// request reads and checks a sourcing body.
func (b sourcingBody) request() (sourcing.Request, error) {
	if b.To == nil || b.To.Lat == nil || b.To.Lon == nil {
		return sourcing.Request{}, jaego.Invalidf("to", `to {"lat","lon"} is required: where the basket goes (or is collected near)`)
	}
	req := sourcing.Request{Items: b.Items, Lat: *b.To.Lat, Lon: *b.To.Lon, RadiusKm: b.RadiusKm, Capability: b.Capability,
		MaxStores: b.MaxStores, Plans: b.Plans}
	if b.Hold != nil {
		req.Hold = &sourcing.HoldSpec{ReservationID: b.Hold.ReservationID}
		if b.Hold.Hold != "" {
			d, err := time.ParseDuration(b.Hold.Hold)
			if err != nil {
				return req, jaego.Invalidf("hold", "hold %q is not a duration (e.g. 15m, 90s)", b.Hold.Hold)
			}
			if err := inventory.CheckHold(d); err != nil { // "0s" is not the default: it is refused
				return req, err
			}
			req.Hold.Hold = d
		}
	}
	return req, req.Validate()
}

// source is POST /v1/sourcing: 200 with the plans (and with hold, 201 with what is held;
// 200 for a retry of an answered hold); 409 insufficient_stock with the plans when no
// plan could be held.
func (a *API) source() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := httpx.ReadBody(w, r)
		var b sourcingBody
		if err == nil {
			err = jaego.StrictUnmarshal(body, &b)
		}
		var req sourcing.Request
		if err == nil {
			req, err = b.request()
		}
		if err == nil && req.Hold != nil && a.o.CanHold != nil {
			err = a.o.CanHold(r)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		ans, err := a.sourcer.Source(ctx, req)
		var notHeld *sourcing.NotHeldError
		if errors.As(err, &notHeld) {
			p := httpx.ProblemOf(err)
			p.Extra["plans"], p.Extra["skipped"], p.Extra["candidates"] = notHeld.Answer.Plans, notHeld.Answer.Skipped, notHeld.Answer.Candidates
			httpx.WriteProblem(w, p)
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		status := http.StatusOK
		if ans.Held != nil && !ans.Held.Again {
			status = http.StatusCreated
		}
		httpx.WriteJSON(w, status, ans)
	})
}
