package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

//go:embed reservation.lua
var reservationBody string

var _ inventory.Reservations = (*Store)(nil)

// Reservation is the hash of reservation id of a store's group.
func (k Keyspace) Reservation(g int, id string) string { return k.tagged("rsv", g) + ":" + id }

// Expiries is group g's expiry queue: a sorted set of <store>:<id> by expiry (unix ms).
func (k Keyspace) Expiries(g int) string { return k.tagged("rsvexp", g) }

// reservationStep runs one op of reservation.lua for id at store.
func (s *Store) reservationStep(ctx context.Context, op, store, id string, extra ...string) ([]rueidis.RedisMessage, error) {
	g := s.keys.Group(store)
	now := s.opts.Now()
	requireEpoch := "0"
	if s.opts.RequireEpoch {
		requireEpoch = "1"
	}
	args := append([]string{op, strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatInt(int64(s.opts.Retention/time.Second), 10),
		requireEpoch, strconv.FormatInt(s.opts.IdempotencyTTL.Milliseconds(), 10), id}, extra...)
	keys := []string{s.keys.StreamOn(g, now), s.keys.LastChange(g), s.keys.Epoch(g), s.keys.Stock(store), s.keys.Reservation(g, id), s.keys.Expiries(g)}
	start := time.Now()
	out, err := s.reserve.Exec(ctx, s.client, keys, args).ToArray()
	s.metrics.applyCalls.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.redisErrors.WithLabelValues("reservation").Inc()
		if strings.HasPrefix(err.Error(), "REDISLOST") {
			return nil, inventory.ErrLost
		}
		return nil, s.unavailable("reservation "+op, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("reservation %s: empty answer", op)
	}
	return out, nil
}

// parseReservation reads {outcome, store, items, status, expires, created, updated}.
func parseReservation(id string, m []rueidis.RedisMessage) (inventory.Reservation, error) {
	if len(m) != 7 {
		return inventory.Reservation{}, fmt.Errorf("reservation %s: malformed answer of %d fields", id, len(m))
	}
	f := make([]string, 6)
	for i := range f {
		f[i], _ = m[1+i].ToString()
	}
	r := inventory.Reservation{ID: id, Store: f[0], Status: inventory.ReservationStatus(f[2])}
	for _, part := range strings.Split(f[1], ",") {
		sku, q, ok := strings.Cut(part, ":")
		n, err := strconv.ParseInt(q, 10, 64)
		if !ok || err != nil {
			return inventory.Reservation{}, fmt.Errorf("reservation %s: malformed items %q", id, f[1])
		}
		r.Items = append(r.Items, inventory.Item{SKU: sku, Qty: n})
	}
	for i, t := range []*time.Time{&r.ExpiresAt, &r.CreatedAt, &r.UpdatedAt} {
		ms, err := strconv.ParseInt(f[3+i], 10, 64)
		if err != nil {
			return inventory.Reservation{}, fmt.Errorf("reservation %s: malformed time %q", id, f[3+i])
		}
		*t = time.UnixMilli(ms).UTC()
	}
	return r, nil
}

func (s *Store) countReservation(op, outcome string) {
	s.metrics.reservations.WithLabelValues(op, outcome).Inc()
}

// Hold implements inventory.Reservations.
func (s *Store) Hold(ctx context.Context, req inventory.HoldRequest) (inventory.Reservation, bool, error) {
	if err := req.Validate(); err != nil {
		return inventory.Reservation{}, false, err
	}
	// An id answers one reservation: the same id at another store is in another group.
	if other, err := s.Reservation(ctx, req.ID); err == nil && other.Store != req.Store {
		s.countReservation("hold", "conflict")
		return other, false, jaego.Errorf(jaego.CodeReservationConflict, "reservation %s is a basket at store %s", req.ID, other.Store)
	} else if err != nil && !errors.Is(err, jaego.ErrNotFound) {
		return inventory.Reservation{}, false, err
	}
	extra := []string{req.Store, strconv.FormatInt(s.opts.Now().Add(req.Hold).UnixMilli(), 10)}
	for _, it := range req.Items {
		extra = append(extra, it.SKU, strconv.FormatInt(it.Qty, 10))
	}
	out, err := s.reservationStep(ctx, "hold", req.Store, req.ID, extra...)
	if err != nil {
		return inventory.Reservation{}, false, err
	}
	outcome, _ := out[0].ToString()
	if outcome == "short" {
		se := &inventory.ShortError{}
		for i := 1; i+2 < len(out); i += 3 {
			sku, _ := out[i].ToString()
			q, _ := out[i+1].AsInt64()
			a, _ := out[i+2].AsInt64()
			se.Short = append(se.Short, inventory.Short{SKU: sku, Qty: q, Available: a})
		}
		s.countReservation("hold", "short")
		return inventory.Reservation{}, false, se
	}
	r, err := parseReservation(req.ID, out)
	if err != nil {
		return r, false, err
	}
	if outcome == "again" && !slices.Equal(r.Items, req.Items) {
		s.countReservation("hold", "conflict")
		return r, false, jaego.Errorf(jaego.CodeReservationConflict, "reservation %s holds another basket", req.ID)
	}
	s.countReservation("hold", outcome)
	return r, outcome == "again", nil
}

// Reservation implements inventory.Reservations: the id is looked for in every shard
// group at once (one pipelined HMGET each).
func (s *Store) Reservation(ctx context.Context, id string) (inventory.Reservation, error) {
	if err := inventory.CheckReservationID(id); err != nil {
		return inventory.Reservation{}, err
	}
	cmds := make(rueidis.Commands, s.keys.Groups())
	for g := range cmds {
		cmds[g] = s.client.B().Hmget().Key(s.keys.Reservation(g, id)).Field("store", "items", "status", "expires", "created", "updated").Build()
	}
	for _, res := range s.client.DoMulti(ctx, cmds...) {
		vals, err := res.ToArray()
		if err != nil {
			return inventory.Reservation{}, s.unavailable("reservation", err)
		}
		if len(vals) == 6 && !vals[0].IsNil() {
			return parseReservation(id, append([]rueidis.RedisMessage{{}}, vals...))
		}
	}
	return inventory.Reservation{}, &jaego.Error{Code: jaego.CodeNotFound, Detail: "no reservation " + id}
}

// end runs confirm or cancel: the reservation's store first, then the step there.
func (s *Store) end(ctx context.Context, op, id string) (inventory.Reservation, error) {
	r, err := s.Reservation(ctx, id)
	if err != nil {
		return r, err
	}
	out, err := s.reservationStep(ctx, op, r.Store, id)
	if err != nil {
		return r, err
	}
	outcome, _ := out[0].ToString()
	if outcome == "missing" {
		return r, &jaego.Error{Code: jaego.CodeNotFound, Detail: "no reservation " + id}
	}
	if r, err = parseReservation(id, out); err != nil {
		return r, err
	}
	s.countReservation(op, outcome)
	if outcome == "not_held" {
		return r, jaego.Errorf(jaego.CodeNotHeld, "reservation %s is %s, not held", id, r.Status)
	}
	if outcome == "done" && r.Status == inventory.Expired {
		s.metrics.expired.Inc()
	}
	return r, nil
}

// Confirm implements inventory.Reservations.
func (s *Store) Confirm(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.end(ctx, "confirm", id)
}

// Cancel implements inventory.Reservations.
func (s *Store) Cancel(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.end(ctx, "cancel", id)
}

// ExpireDue releases the held reservations whose time is up, as of the store's clock: a
// pipelined look at every group's expiry queue (at most limit each), then one expire step
// per due reservation. The step checks again, atomically, so any number of instances may
// sweep at once and each reservation expires exactly once. It returns how many expired.
func (s *Store) ExpireDue(ctx context.Context, limit int) (int, error) {
	now := s.opts.Now()
	cmds := make(rueidis.Commands, s.keys.Groups())
	for g := range cmds {
		cmds[g] = s.client.B().Zrangebyscore().Key(s.keys.Expiries(g)).Min("-inf").Max(strconv.FormatInt(now.UnixMilli(), 10)).
			Withscores().Limit(0, int64(limit)).Build()
	}
	expired := 0
	for _, res := range s.client.DoMulti(ctx, cmds...) {
		due, err := res.AsZScores()
		if err != nil {
			return expired, s.unavailable("reservation expiry", err)
		}
		for _, d := range due {
			store, id, ok := strings.Cut(d.Member, ":")
			if !ok {
				continue
			}
			out, err := s.reservationStep(ctx, "expire", store, id)
			if err != nil {
				return expired, err
			}
			if outcome, _ := out[0].ToString(); outcome == "done" {
				expired++
				s.metrics.expired.Inc()
				s.countReservation("expire", outcome)
				s.metrics.expiryDelay.Observe(now.Sub(time.UnixMilli(int64(d.Score))).Seconds())
			}
		}
	}
	return expired, nil
}

// Held counts the reservations held now, in every group's expiry queue.
func (s *Store) Held(ctx context.Context) (int64, error) {
	cmds := make(rueidis.Commands, s.keys.Groups())
	for g := range cmds {
		cmds[g] = s.client.B().Zcard().Key(s.keys.Expiries(g)).Build()
	}
	var n int64
	for _, res := range s.client.DoMulti(ctx, cmds...) {
		c, err := res.AsInt64()
		if err != nil {
			return 0, s.unavailable("reservations held", err)
		}
		n += c
	}
	return n, nil
}

// Availability implements inventory.Reservations: one HMGET of the basket's SKUs per store,
// all pipelined (on a Cluster, one batch per node, in parallel).
func (s *Store) Availability(ctx context.Context, items []inventory.Item, stores []string) ([]inventory.StoreAvailability, error) {
	skus := make([]string, len(items))
	for i, it := range items {
		skus[i] = it.SKU
	}
	cmds := make(rueidis.Commands, len(stores))
	for i, st := range stores {
		cmds[i] = s.client.B().Hmget().Key(s.keys.Stock(st)).Field(skus...).Build()
	}
	out := make([]inventory.StoreAvailability, len(stores))
	for i, res := range s.client.DoMulti(ctx, cmds...) {
		vals, err := res.ToArray()
		if err == nil && len(vals) != len(items) {
			err = fmt.Errorf("HMGET answered %d values for %d SKUs", len(vals), len(items))
		}
		if err != nil {
			s.metrics.redisErrors.WithLabelValues("availability").Inc()
			return nil, s.unavailable("availability", err)
		}
		a := inventory.StoreAvailability{Store: stores[i], Short: []inventory.Short{}}
		for j, v := range vals {
			var available int64
			if !v.IsNil() {
				raw, _ := v.ToString()
				st, err := unpackStock(stores[i], items[j].SKU, raw)
				if err != nil {
					return nil, s.unavailable("availability", err)
				}
				available = st.Available
			}
			if available < items[j].Qty {
				a.Short = append(a.Short, inventory.Short{SKU: items[j].SKU, Qty: items[j].Qty, Available: available})
			}
		}
		a.Complete = len(a.Short) == 0
		out[i] = a
	}
	// Complete stores first, then the others, each in the order given.
	slices.SortStableFunc(out, func(x, y inventory.StoreAvailability) int {
		switch {
		case x.Complete == y.Complete:
			return 0
		case x.Complete:
			return -1
		}
		return 1
	})
	return out, nil
}

// RunExpiry sweeps expired reservations every period until ctx ends (a worker of every
// jaego serve: they may all run it), and keeps jaego_reservations_held current. Failures
// are logged at most every 10 s; the next sweep retries.
func (s *Store) RunExpiry(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for {
			n, err := s.ExpireDue(ctx, 500)
			if err == nil {
				var held int64
				if held, err = s.Held(ctx); err == nil {
					s.metrics.held.Set(float64(held))
				}
			}
			if err != nil && ctx.Err() == nil && time.Since(lastLog) > 10*time.Second {
				s.opts.Logger.Warn("reservation expiry sweep failed; retrying", "err", err)
				lastLog = time.Now()
			}
			if err != nil || n < 500 {
				break
			}
		}
	}
}
