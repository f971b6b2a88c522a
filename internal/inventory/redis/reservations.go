package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/tracing"
)

//go:embed reservation.lua
var reservationBody string

var _ inventory.Reservations = (*Store)(nil)

// Reservation is the hash of reservation id of a store's group.
func (k Keyspace) Reservation(g int, id string) string { return k.tagged("rsv", g) + ":" + id }

// Expiries is group g's expiry queue: a sorted set of <store>:<id> by expiry (unix ms).
func (k Keyspace) Expiries(g int) string { return k.tagged("rsvexp", g) }

// StoreReservations is the list of a store's reservations: ids by creation time.
func (k Keyspace) StoreReservations(store string) string {
	return k.tagged("rsvs", k.Group(store)) + ":" + store
}

// HeldCounts is group g's count of held reservations per store (the hold quota).
func (k Keyspace) HeldCounts(g int) string { return k.tagged("rsvheld", g) }

// ReservationClaim is the claim of reservation id, in the group of the id itself (not of a
// store): its value is the store that holds (or last tried to hold) the id. One claim per
// id makes ids unique across the deployment, and finds a reservation by id in one read of
// the claim and one of the reservation, whatever G.
func (k Keyspace) ReservationClaim(id string) string {
	return k.tagged("rsvid", k.Group(id)) + ":" + id
}

// reservationStep runs one op of reservation.lua for id at store.
func (s *Store) reservationStep(ctx context.Context, op, store, id string, extra ...string) ([]rueidis.RedisMessage, error) {
	g := s.keys.Group(store)
	now := s.opts.Now()
	requireEpoch := "0"
	if s.opts.RequireEpoch {
		requireEpoch = "1"
	}
	args := append([]string{op, strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatInt(int64(s.opts.Retention/time.Second), 10),
		requireEpoch, strconv.FormatInt(s.opts.IdempotencyTTL.Milliseconds(), 10), id, strconv.Itoa(s.opts.MaxHoldsPerStore)}, extra...)
	keys := []string{s.keys.StreamOn(g, now), s.keys.LastChange(g), s.keys.Epoch(g), s.keys.Stock(store), s.keys.Reservation(g, id),
		s.keys.Expiries(g), s.keys.HeldCounts(g), s.keys.StoreReservations(store)}
	spans := scriptSpans(s, ctx, "reservation "+op, []int{g}, func(g int) (int, int) { return g, 1 })
	start := time.Now()
	var out []rueidis.RedisMessage
	var err error
	if s.opts.AckReplicas {
		var res []rueidis.RedisResult
		if res, err = s.execAcked(ctx, s.reserveSc, []rueidis.LuaExec{{Keys: keys, Args: args}}, []int{g}); err != nil {
			endSpans(spans, nil, err)
			return nil, err
		}
		out, err = res[0].ToArray()
	} else {
		out, err = s.reserve.Exec(ctx, s.client, keys, args).ToArray()
	}
	tracing.Observe(s.metrics.applyCalls, ctx, time.Since(start).Seconds())
	endSpans(spans, nil, err)
	if err != nil {
		s.metrics.redisErrors.WithLabelValues("reservation").Inc()
		return nil, s.scriptError("reservation "+op, err)
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

// Hold implements inventory.Reservations. The id is claimed first, on the id's own key, so
// that concurrent holds of one id at stores of different shard groups cannot both keep a
// hold. A claim is "store|nonce" while a hold is being tried and "store" (sealed) once the
// store holds the id:
//   - a new id is claimed with SET NX; a claim of the same store lets the hold go on (the
//     step itself serializes holds at one store);
//   - a claim of another store that holds nothing under the id (its hold was short, is in
//     flight, or its holder died) is taken over with a compare-and-set of its exact value;
//     one whose store holds the id is a reservation_conflict;
//   - after a step that leaves the id held, the claim is sealed, only if it still names this
//     store; if it was taken over meanwhile, the hold is released and the answer is a
//     conflict.
//
// A takeover needs its victim's claim unsealed and its reservation absent, and a seal needs
// the claim unmoved, so at most one store keeps a hold of an id.
func (s *Store) Hold(ctx context.Context, req inventory.HoldRequest) (inventory.Reservation, bool, error) {
	if err := req.Validate(); err != nil {
		return inventory.Reservation{}, false, err
	}
	items := inventory.SortedBasket(req.Items) // the same basket in any order is the same basket
	if other, err := s.claim(ctx, req); err != nil {
		return other, false, err
	}
	extra := []string{req.Store, strconv.FormatInt(s.opts.Now().Add(req.Hold).UnixMilli(), 10)}
	for _, it := range items {
		extra = append(extra, it.SKU, strconv.FormatInt(it.Qty, 10))
	}
	out, err := s.reservationStep(ctx, "hold", req.Store, req.ID, extra...)
	if err != nil {
		return inventory.Reservation{}, false, err
	}
	outcome, _ := out[0].ToString()
	switch outcome {
	case "short":
		se := &inventory.ShortError{}
		for i := 1; i+2 < len(out); i += 3 {
			sku, _ := out[i].ToString()
			q, _ := out[i+1].AsInt64()
			a, _ := out[i+2].AsInt64()
			se.Short = append(se.Short, inventory.Short{SKU: sku, Qty: q, Available: a})
		}
		s.countReservation("hold", "short")
		return inventory.Reservation{}, false, se
	case "too_many":
		s.countReservation("hold", "too_many")
		return inventory.Reservation{}, false, jaego.Errorf(jaego.CodeTooManyHolds,
			"store %s holds %d reservations, as many as a store may (--max-holds-per-store); confirm or cancel some first", req.Store, s.opts.MaxHoldsPerStore)
	}
	r, err := parseReservation(req.ID, out)
	if err != nil {
		return r, false, err
	}
	if r.Status == inventory.Held {
		sealed, err := s.seal(ctx, req)
		if err != nil {
			return r, false, err
		}
		if sealed == 0 { // taken over between the claim and the step: give back what was held
			if _, err := s.end(ctx, "cancel", req.ID, req.Store); err != nil {
				return r, false, fmt.Errorf("reservation %s: held at %s after its claim moved, and not released: %w", req.ID, req.Store, err)
			}
			s.countReservation("hold", "conflict")
			return r, false, jaego.Errorf(jaego.CodeReservationConflict, "reservation %s was claimed for another store while it was held here; it was released", req.ID)
		}
	}
	if outcome == "again" && !slices.Equal(inventory.SortedBasket(r.Items), items) {
		s.countReservation("hold", "conflict")
		return r, false, jaego.Errorf(jaego.CodeReservationConflict, "reservation %s holds another basket", req.ID)
	}
	s.countReservation("hold", outcome)
	return r, outcome == "again", nil
}

// Claim scripts: newClaim sets a claim unless there is one (answering the one there is),
// refusing when required epoch mark of the id's group is gone (a lost Redis gets no claim
// either: a restore wants it empty); takeOver moves a claim only from its exact value;
// sealClaim (sealBody) seals it for ARGV[1] only if it names that store (sealed or not),
// keeping its TTL.
var (
	newClaim = rueidis.NewLuaScript(`if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('` + lostPrefix + ` this Redis has no epoch mark: it lost its data; run jaego restore') end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'PX', ARGV[2])`)
	takeOver = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0`)
	sealClaim   = rueidis.NewLuaScript(sealBody)
	sealClaimSc = newScript(sealBody)
)

// sealBody seals claim KEYS[1] for store ARGV[1] (KEYS[2] the id group's epoch mark, ARGV[2]
// '1' to require it, ARGV[3] the TTL of a claim written afresh, ms). A claim that is gone
// was lost with its node's data (a flush, a failover that dropped an unreplicated write)
// while the store held the id: no other store claims the id, so the seal writes it again,
// as if it had never gone. Cancelling the hold instead would end, with no one asking, a
// reservation whose retried hold then answers "held before", as it is: cancelled.
const sealBody = `if ARGV[2] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.error_reply('` + lostPrefix + ` this Redis has no epoch mark: it lost its data; run jaego restore') end
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) return 1 end
if v == ARGV[1] or string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') return 1 end
return 0`

// seal seals req.ID's claim for req.Store (sealBody): 1 sealed, 0 taken over by another
// store. With Options.AckReplicas a replica confirms the seal before it counts: a claim
// lost in a failover would let another store hold the same id.
func (s *Store) seal(ctx context.Context, req inventory.HoldRequest) (int64, error) {
	g := s.keys.Group(req.ID)
	keys := []string{s.keys.ReservationClaim(req.ID), s.keys.Epoch(g)}
	require := "0"
	if s.opts.RequireEpoch {
		require = "1"
	}
	args := []string{req.Store, require, strconv.FormatInt(s.claimTTL(req).Milliseconds(), 10)}
	var res rueidis.RedisResult
	if s.opts.AckReplicas {
		out, err := s.execAcked(ctx, sealClaimSc, []rueidis.LuaExec{{Keys: keys, Args: args}}, []int{g})
		if err != nil {
			return 0, err
		}
		res = out[0]
	} else {
		res = sealClaim.Exec(ctx, s.client, keys, args)
	}
	sealed, err := res.AsInt64()
	if err != nil {
		return 0, s.scriptError("reservation claim", err)
	}
	return sealed, nil
}

// claimTTL is how long a claim of req lives: it outlives every state of the reservation,
// the hold, then the time an ended one is kept.
func (s *Store) claimTTL(req inventory.HoldRequest) time.Duration {
	return req.Hold + s.opts.IdempotencyTTL + time.Hour
}

// claimStore is the store a claim names.
func claimStore(v string) string {
	store, _, _ := strings.Cut(v, "|")
	return store
}

// claim makes req.Store the claim of req.ID (see Hold), or answers the reservation_conflict
// of the store that holds the id (with its reservation).
func (s *Store) claim(ctx context.Context, req inventory.HoldRequest) (inventory.Reservation, error) {
	key := s.keys.ReservationClaim(req.ID)
	ttl := strconv.FormatInt(s.claimTTL(req).Milliseconds(), 10)
	mine := req.Store + "|" + strconv.FormatUint(rand.Uint64(), 36)
	for range 3 {
		require := "0"
		if s.opts.RequireEpoch {
			require = "1"
		}
		prev, err := newClaim.Exec(ctx, s.client, []string{key, s.keys.Epoch(s.keys.Group(req.ID))}, []string{mine, ttl, require}).ToString()
		switch {
		case rueidis.IsRedisNil(err):
			return inventory.Reservation{}, nil // claimed
		case err != nil:
			return inventory.Reservation{}, s.scriptError("reservation claim", err)
		case claimStore(prev) == req.Store:
			return inventory.Reservation{}, nil
		}
		other, err := s.reservationAt(ctx, req.ID, claimStore(prev))
		if err == nil {
			s.countReservation("hold", "conflict")
			return other, jaego.Errorf(jaego.CodeReservationConflict, "reservation %s is a basket at store %s", req.ID, other.Store)
		}
		if !errors.Is(err, jaego.ErrNotFound) {
			return inventory.Reservation{}, err
		}
		moved, err := takeOver.Exec(ctx, s.client, []string{key}, []string{prev, mine, ttl}).AsInt64()
		if err != nil {
			return inventory.Reservation{}, s.unavailable("reservation claim", err)
		}
		if moved == 1 {
			return inventory.Reservation{}, nil
		}
	}
	return inventory.Reservation{}, &jaego.Error{Code: jaego.CodeReservationConflict, Detail: "reservation " + req.ID + " is being held at another store right now"}
}

// Reservation implements inventory.Reservations: the id's claim names its store, then one
// HMGET there. An id without a claim (held before claims existed) is looked for in every
// shard group at once.
func (s *Store) Reservation(ctx context.Context, id string) (inventory.Reservation, error) {
	if err := inventory.CheckReservationID(id); err != nil {
		return inventory.Reservation{}, err
	}
	claimed, err := s.client.Do(ctx, s.client.B().Get().Key(s.keys.ReservationClaim(id)).Build()).ToString()
	switch {
	case err == nil:
		return s.reservationAt(ctx, id, claimStore(claimed))
	case !rueidis.IsRedisNil(err):
		return inventory.Reservation{}, s.unavailable("reservation", err)
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

// reservationAt reads reservation id at store (not found if that store has none).
func (s *Store) reservationAt(ctx context.Context, id, store string) (inventory.Reservation, error) {
	vals, err := s.client.Do(ctx, s.client.B().Hmget().Key(s.keys.Reservation(s.keys.Group(store), id)).
		Field("store", "items", "status", "expires", "created", "updated").Build()).ToArray()
	if err != nil {
		return inventory.Reservation{}, s.unavailable("reservation", err)
	}
	if len(vals) != 6 || vals[0].IsNil() {
		return inventory.Reservation{}, &jaego.Error{Code: jaego.CodeNotFound, Detail: "no reservation " + id}
	}
	return parseReservation(id, append([]rueidis.RedisMessage{{}}, vals...))
}

// end runs confirm or cancel: at store, or (store "") at the reservation's store.
func (s *Store) end(ctx context.Context, op, id, store string) (inventory.Reservation, error) {
	var r inventory.Reservation
	if store == "" {
		var err error
		if r, err = s.Reservation(ctx, id); err != nil {
			return r, err
		}
		store = r.Store
	}
	out, err := s.reservationStep(ctx, op, store, id)
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
	return s.end(ctx, "confirm", id, "")
}

// Cancel implements inventory.Reservations.
func (s *Store) Cancel(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.end(ctx, "cancel", id, "")
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
	inventory.CompleteFirst(out)
	return out, nil
}

// RunExpiry sweeps expired reservations every period until ctx ends (a worker of every
// jaego serve: they may all run it), and keeps jaego_reservations_held current.
func (s *Store) RunExpiry(ctx context.Context, every time.Duration) {
	inventory.SweepExpiries(ctx, s, every, func(ctx context.Context) error {
		held, err := s.Held(ctx)
		if err == nil {
			s.metrics.held.Set(float64(held))
		}
		return err
	}, s.opts.Logger)
}

// List implements inventory.Reservations: the store's list (ids by creation) in pages, each
// page's reservations read in one pipelined round trip. The cursor is "<created ms>:<id>" of
// the last one returned. A filtered page reads on until it has limit or the list ends.
func (s *Store) List(ctx context.Context, store string, status inventory.ReservationStatus, cursor string, limit int) ([]inventory.Reservation, string, error) {
	if err := jaego.CheckStore(store); err != nil {
		return nil, "", err
	}
	if err := inventory.CheckStatus(status); err != nil {
		return nil, "", err
	}
	min := "-inf"
	after := ""
	if cursor != "" {
		ms, id, ok := strings.Cut(cursor, ":")
		if _, err := strconv.ParseInt(ms, 10, 64); !ok || err != nil || inventory.CheckReservationID(id) != nil {
			return nil, "", &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor", Detail: "malformed cursor"}
		}
		min, after = ms, id
	}
	g := s.keys.Group(store)
	var out []inventory.Reservation
	for skip := int64(0); ; {
		page, err := s.client.Do(ctx, s.client.B().Zrange().Key(s.keys.StoreReservations(store)).Min(min).Max("+inf").Byscore().
			Limit(skip, int64(limit+1)).Withscores().Build()).AsZScores()
		if err != nil {
			return nil, "", s.unavailable("reservations list", err)
		}
		full := len(page) == limit+1
		// Skip what the cursor already returned: the ids of its millisecond up to and including it.
		for len(page) > 0 && after != "" && strconv.FormatInt(int64(page[0].Score), 10) == min && page[0].Member <= after {
			page = page[1:]
		}
		if len(page) == 0 {
			if full { // a whole page of one millisecond, all returned before: look further
				skip += int64(limit + 1)
				continue
			}
			return out, "", nil
		}
		skip = 0
		cmds := make(rueidis.Commands, len(page))
		for i, z := range page {
			cmds[i] = s.client.B().Hmget().Key(s.keys.Reservation(g, z.Member)).Field("store", "items", "status", "expires", "created", "updated").Build()
		}
		for i, res := range s.client.DoMulti(ctx, cmds...) {
			vals, err := res.ToArray()
			if err != nil {
				return nil, "", s.unavailable("reservations list", err)
			}
			min, after = strconv.FormatInt(int64(page[i].Score), 10), page[i].Member
			if len(vals) != 6 || vals[0].IsNil() {
				continue // ended long ago and gone
			}
			r, err := parseReservation(page[i].Member, append([]rueidis.RedisMessage{{}}, vals...))
			if err != nil {
				return nil, "", err
			}
			if status == "" || r.Status == status {
				out = append(out, r)
			}
			if len(out) == limit {
				return out, min + ":" + after, nil
			}
		}
	}
}
