package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// The store-order routes of design §12.

func (a *API) registerReservations(mux httpx.Mux) {
	mux.Handle("POST /v1/reservations", a.hold())
	mux.Handle("GET /v1/reservations", a.listReservations())
	mux.Handle("GET /v1/reservations/{id}", a.getReservation())
	mux.Handle("POST /v1/reservations/{id}/confirm", a.endReservation(a.reservations.Confirm))
	mux.Handle("POST /v1/reservations/{id}/cancel", a.endReservation(a.reservations.Cancel))
	mux.Handle("POST /v1/availability", a.availability())
}

type holdBody struct {
	ReservationID string           `json:"reservation_id"`
	Store         string           `json:"store"`
	Items         []inventory.Item `json:"items"`
	Hold          string           `json:"hold"`
}

func (a *API) hold() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b holdBody
		if err := decodeBody(w, r, &b); err != nil {
			a.fail(w, r, err)
			return
		}
		req := inventory.HoldRequest{ID: b.ReservationID, Store: b.Store, Items: b.Items}
		if b.Hold != "" {
			d, err := time.ParseDuration(b.Hold)
			if err != nil {
				a.fail(w, r, jaego.Invalidf("hold", "hold %q is not a duration (e.g. 15m, 90s)", b.Hold))
				return
			}
			if err := inventory.CheckHold(d); err != nil { // "0s" is not the default: it is refused
				a.fail(w, r, err)
				return
			}
			req.Hold = d
		}
		if err := req.Validate(); err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		res, again, err := a.reservations.Hold(ctx, req)
		var short *inventory.ShortError
		if errors.As(err, &short) {
			p := httpx.ProblemOf(err)
			p.Extra["short"] = short.Short
			p.Extra["reservation_id"] = req.ID
			httpx.WriteProblem(w, p)
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		status := http.StatusCreated
		if again {
			status = http.StatusOK
		}
		httpx.WriteJSON(w, status, res)
	})
}

// listReservations is GET /v1/reservations?store=&status=&limit=&cursor=: a store's
// reservations, oldest first, in pages.
func (a *API) listReservations() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		store, status := q.Get("store"), inventory.ReservationStatus(q.Get("status"))
		if store == "" {
			a.fail(w, r, jaego.Invalidf("store", "store is required"))
			return
		}
		limit := 100
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				a.fail(w, r, jaego.Invalidf("limit", "limit must be 1..1000, got %q", v))
				return
			}
			limit = n
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		list, next, err := a.reservations.List(ctx, store, status, q.Get("cursor"), limit)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if list == nil {
			list = []inventory.Reservation{}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"reservations": list, "next_cursor": next})
	})
}

func (a *API) getReservation() http.Handler {
	return a.endReservation(a.reservations.Reservation)
}

// endReservation answers one reservation step on the path's id: the reservation, or the
// problem (a reservation that is no longer held comes with it, so the caller sees why).
func (a *API) endReservation(step func(ctx context.Context, id string) (inventory.Reservation, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := inventory.CheckReservationID(id); err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		res, err := step(ctx, id)
		if jaego.CodeOf(err) == jaego.CodeNotHeld {
			p := httpx.ProblemOf(err)
			p.Extra["reservation"] = res
			httpx.WriteProblem(w, p)
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, res)
	})
}

type availabilityBody struct {
	Items  []inventory.Item `json:"items"`
	Stores []string         `json:"stores"`
}

func (a *API) availability() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b availabilityBody
		if err := decodeBody(w, r, &b); err != nil {
			a.fail(w, r, err)
			return
		}
		err := inventory.CheckBasket(b.Items)
		if err == nil && (len(b.Stores) == 0 || len(b.Stores) > MaxLookup) {
			err = jaego.Invalidf("stores", "give 1 to %d stores, got %d", MaxLookup, len(b.Stores))
		}
		seen := map[string]bool{}
		for _, s := range b.Stores {
			if err == nil {
				err = jaego.CheckStore(s)
			}
			if err == nil && seen[s] {
				err = jaego.Invalidf("stores", "store %s is given twice", s)
			}
			seen[s] = true
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		stores, err := a.reservations.Availability(ctx, b.Items, b.Stores)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"stores": stores})
	})
}

// decodeBody reads a JSON body strictly (design §3: unknown fields, names given twice and
// more than 1 MiB are refused).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := httpx.ReadBody(w, r)
	if err != nil {
		return err
	}
	return jaego.StrictUnmarshal(body, v)
}
