package sourcing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Request is one sourcing query (POST /v1/sourcing).
type Request struct {
	Items      []inventory.Item
	Lat, Lon   float64
	RadiusKm   float64
	Capability string
	MaxStores  int
	Plans      int
	Hold       *HoldSpec // nil: plans only
}

// HoldSpec asks for the best complete plan to be held: one reservation per store, ids
// <ReservationID>-1, -2, … (numbered on across the plans tried).
type HoldSpec struct {
	ReservationID string
	Hold          time.Duration
}

// maxSourcingID leaves room for the parts' "-<n>" in a reservation id of 100.
const maxSourcingID = 90

// Validate checks a request and fills its defaults: radius 10 km, 1 store, 3 plans, the
// default hold.
func (r *Request) Validate() error {
	if err := inventory.CheckBasket(r.Items); err != nil {
		return err
	}
	if err := CheckPoint(r.Lat, r.Lon); err != nil {
		return err
	}
	if r.RadiusKm == 0 {
		r.RadiusKm = DefaultRadiusKm
	}
	if math.IsNaN(r.RadiusKm) || r.RadiusKm <= 0 || r.RadiusKm > MaxRadiusKm {
		return jaego.Invalidf("radius_km", "radius_km must be above 0 and at most %v, got %v", MaxRadiusKm, r.RadiusKm)
	}
	if r.Capability != "" {
		if err := CheckCapability(r.Capability); err != nil {
			return err
		}
	}
	if r.MaxStores == 0 {
		r.MaxStores = 1
	}
	if r.MaxStores < 1 || r.MaxStores > MaxStoresPerPlan {
		return jaego.Invalidf("max_stores", "max_stores must be 1..%d, got %d", MaxStoresPerPlan, r.MaxStores)
	}
	if r.Plans == 0 {
		r.Plans = DefaultPlans
	}
	if r.Plans < 1 || r.Plans > MaxPlans {
		return jaego.Invalidf("plans", "plans must be 1..%d, got %d", MaxPlans, r.Plans)
	}
	if h := r.Hold; h != nil {
		if err := inventory.CheckReservationID(h.ReservationID); err != nil {
			return err
		}
		if len(h.ReservationID) > maxSourcingID {
			return jaego.Invalidf("reservation_id", "a sourcing hold's reservation_id is at most %d characters (its parts add -<n>)", maxSourcingID)
		}
		if h.Hold == 0 {
			h.Hold = inventory.DefaultHold
		}
		return inventory.CheckHold(h.Hold)
	}
	return nil
}

// Held is what a sourcing hold holds: the plan, one reservation per store of it.
type Held struct {
	ReservationID string                  `json:"reservation_id"`
	Again         bool                    `json:"again"` // a retry: the hold of an earlier call under this id
	Plan          Plan                    `json:"plan"`
	Reservations  []inventory.Reservation `json:"reservations"`
}

// Answer is a sourcing answer.
type Answer struct {
	Plans      []Plan `json:"plans"`
	Skipped    []Skip `json:"skipped"`
	Candidates int    `json:"candidates"` // stores whose stock was read
	Held       *Held  `json:"held,omitempty"`
}

// NotHeldError is a hold refused: no complete plan could be held whole (every one tried
// was refused by a store of it, or there was none). Nothing is held.
type NotHeldError struct{ Answer Answer }

func (e *NotHeldError) Error() string {
	return "no store, or set of stores, within reach can hold the whole basket now; nothing was held"
}

// Unwrap makes a NotHeldError an insufficient_stock error.
func (e *NotHeldError) Unwrap() error {
	return &jaego.Error{Code: jaego.CodeInsufficientStock, Detail: e.Error()}
}

// Options are what a Sourcer reads and holds with.
type Options struct {
	Directory    Directory
	Stock        inventory.StockReader
	Reservations inventory.Reservations
	Sagas        Sagas
	// CallBound is the longest one call may hold parts (its request's timeout, and the 4 s
	// its release and record may take after it); default 30 s. A call's record is busy
	// for its hold time and this much longer: by then every part it held has expired.
	CallBound  time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Sourcer answers sourcing queries (design §15).
type Sourcer struct {
	o          Options
	plans      *prometheus.CounterVec
	candidates prometheus.Histogram
	holds      *prometheus.CounterVec
	seconds    *prometheus.HistogramVec
}

// New returns a Sourcer.
func New(o Options) *Sourcer {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CallBound <= 0 {
		o.CallBound = 30 * time.Second
	}
	f := promauto.With(o.Registerer)
	return &Sourcer{o: o,
		plans: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_sourcing_total",
			Help: "Sourcing queries answered, by their best plan (complete, partial, none)."}, []string{"best"}),
		candidates: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_sourcing_candidates",
			Help: "Stores whose stock one sourcing query read.", Buckets: []float64{1, 2, 5, 10, 20, 30, 50}}),
		holds: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_sourcing_holds_total",
			Help: "Sourcing holds by outcome (held, again, not_held, busy, failed)."}, []string{"outcome"}),
		seconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "jaego_sourcing_seconds",
			Help: "Latency of a sourcing query, plans only or with its hold.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"hold"}),
	}
}

// Source answers a validated request: the plans, the stores passed over, and with Hold the
// best complete plan held all or nothing (a *NotHeldError when none could be). A retry
// of an answered hold answers what that call held, as it is now.
func (s *Sourcer) Source(ctx context.Context, req Request) (Answer, error) {
	start := time.Now()
	if req.Hold == nil {
		defer func() { s.seconds.WithLabelValues("false").Observe(time.Since(start).Seconds()) }()
		return s.plan(ctx, req)
	}
	defer func() { s.seconds.WithLabelValues("true").Observe(time.Since(start).Seconds()) }()
	ans, outcome, err := s.hold(ctx, req)
	s.holds.WithLabelValues(outcome).Inc()
	return ans, err
}

// plan reads the stores around the point (nearest first, a fifth more than MaxCandidates
// for the closed ones among them, and the 2×MaxCandidates nearest when that is too few
// candidates) and ranks; Choose reads the candidates' stock.
func (s *Sourcer) plan(ctx context.Context, req Request) (Answer, error) {
	limit := MaxCandidates + MaxCandidates/5
	near, err := s.o.Directory.Near(ctx, req.Lat, req.Lon, req.RadiusKm, limit)
	if err == nil && len(near) == limit && len(Eligible(near, req.Capability)) < MaxCandidates {
		near, err = s.o.Directory.Near(ctx, req.Lat, req.Lon, req.RadiusKm, 2*MaxCandidates)
	}
	if err != nil {
		return Answer{}, err
	}
	read := func(stores []Near) ([][]int64, error) { return s.available(ctx, req.Items, stores) }
	plans, skips, n, err := Choose(req.Items, near, read, req.Capability, req.MaxStores, req.Plans)
	if err != nil {
		return Answer{}, err
	}
	s.candidates.Observe(float64(n))
	switch {
	case len(plans) == 0:
		s.plans.WithLabelValues("none").Inc()
	case plans[0].Complete:
		s.plans.WithLabelValues("complete").Inc()
	default:
		s.plans.WithLabelValues("partial").Inc()
	}
	if plans == nil {
		plans = []Plan{}
	}
	return Answer{Plans: plans, Skipped: skips, Candidates: n}, nil
}

// available reads every line's available stock at each store, in one read.
func (s *Sourcer) available(ctx context.Context, items []inventory.Item, stores []Near) ([][]int64, error) {
	keys := make([]inventory.Key, 0, len(stores)*len(items))
	for _, n := range stores {
		for _, it := range items {
			keys = append(keys, inventory.Key{Store: n.ID, SKU: it.SKU})
		}
	}
	found, err := s.o.Stock.GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([][]int64, len(stores))
	for i := range stores {
		out[i] = make([]int64, len(items))
		for j := range items {
			if l := found[i*len(items)+j]; l.Found {
				out[i][j] = l.Stock.Available
			}
		}
	}
	return out, nil
}

// hold takes the id's record, plans, and holds the best complete plan that every store of
// it accepts, store by store; a refused part releases the parts already held and the next
// plan is tried. A call that dies in the middle leaves parts that expire by themselves,
// and its record busy until they have.
func (s *Sourcer) hold(ctx context.Context, req Request) (Answer, string, error) {
	id := req.Hold.ReservationID
	// The record is taken while the plans are made: they need nothing of each other, and
	// the hold is a round trip shorter. Plans made for a retry or a busy id are dropped.
	var ans Answer
	var planErr error
	var planning sync.WaitGroup
	planning.Go(func() { ans, planErr = s.plan(ctx, req) })
	b, err := s.o.Sagas.Begin(ctx, id, time.Now().Add(req.Hold.Hold+s.o.CallBound), MaxPlans*MaxStoresPerPlan)
	planning.Wait()
	if err != nil {
		return Answer{}, "failed", err
	}
	switch b.State {
	case SagaHeld:
		ans, err := s.again(ctx, id, b.Plan)
		return ans, "again", err
	case SagaBusy:
		return Answer{}, "busy", jaego.Errorf(jaego.CodeReservationConflict,
			"a sourcing hold under reservation_id %s is under way, or its call ended without an answer: its parts are released by %s at the latest", id, b.Until.UTC().Format(time.RFC3339))
	}
	if planErr != nil {
		s.finishReleased(ctx, id, b.Token)
		return ans, "failed", planErr
	}
	n := b.First
	for _, p := range ans.Plans {
		if !p.Complete {
			break
		}
		held, err := s.holdPlan(ctx, req, p, &n)
		if errors.Is(err, errRefused) {
			continue
		}
		if errors.Is(err, errRecordLost) {
			return s.recover(ctx, id, b.Token, ans)
		}
		if err == nil {
			ans.Held = &Held{ReservationID: id, Plan: p, Reservations: held}
			if err = s.finishHeld(ctx, id, b.Token, ans.Held); err == nil {
				return ans, "held", nil
			}
			ans.Held = nil
			s.release(ctx, held)
		}
		s.finishReleased(ctx, id, b.Token)
		return ans, "failed", err
	}
	s.finishReleased(ctx, id, b.Token)
	return ans, "not_held", &NotHeldError{Answer: ans}
}

// finishHeld records what the call holds; an error when the record is not the call's.
func (s *Sourcer) finishHeld(ctx context.Context, id, token string, h *Held) error {
	record, err := json.Marshal(h)
	if err != nil {
		return err
	}
	ours, err := s.o.Sagas.Finish(ctx, id, token, true, record)
	if err == nil && !ours {
		err = jaego.Errorf(jaego.CodeReservationConflict, "the sourcing hold under %s was taken over by another call", id)
	}
	return err
}

// errRefused: a store of the plan refused its part; the parts held were released.
var errRefused = errors.New("a part was refused")

// errRecordLost: a part's id was taken already, by a call under the same id whose record
// is gone (Redis lost its data and was restored: the copy keeps reservations, not these
// records). The parts this call held were released.
var errRecordLost = errors.New("the sourcing record of the id is gone; its parts are not")

// holdPlan holds each store's part of p under the next ids; on a refusal (short stock, a
// store at its hold limit) it releases what it held and answers errRefused; on a failure,
// it releases them too (and the part whose outcome is unknown) and answers the failure.
func (s *Sourcer) holdPlan(ctx context.Context, req Request, p Plan, n *int) ([]inventory.Reservation, error) {
	var held []inventory.Reservation
	for _, part := range p.Stores {
		*n++
		hr := inventory.HoldRequest{ID: fmt.Sprintf("%s-%d", req.Hold.ReservationID, *n), Store: part.Store, Items: part.Items, Hold: req.Hold.Hold}
		r, again, err := s.o.Reservations.Hold(ctx, hr)
		if err == nil && !again {
			held = append(held, r)
			continue
		}
		if again || jaego.CodeOf(err) == jaego.CodeReservationConflict {
			s.release(ctx, held)
			return nil, errRecordLost
		}
		switch jaego.CodeOf(err) {
		case jaego.CodeInsufficientStock, jaego.CodeTooManyHolds:
			s.release(ctx, held)
			return nil, errRefused
		}
		s.release(ctx, append(held, inventory.Reservation{ID: hr.ID}))
		return nil, err
	}
	return held, nil
}

// release cancels the parts held, on a context of its own (the request's may be done): a
// part it cannot cancel is released by its expiry.
func (s *Sourcer) release(ctx context.Context, held []inventory.Reservation) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, r := range held {
		if _, err := s.o.Reservations.Cancel(ctx, r.ID); err != nil && jaego.CodeOf(err) != jaego.CodeNotFound {
			s.o.Logger.WarnContext(ctx, "sourcing: a part not released; its hold expires by itself", "reservation_id", r.ID, "err", err)
		}
	}
}

func (s *Sourcer) finishReleased(ctx context.Context, id, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := s.o.Sagas.Finish(ctx, id, token, false, nil); err != nil {
		s.o.Logger.WarnContext(ctx, "sourcing: hold record not released; the id is busy until its parts expire", "reservation_id", id, "err", err)
	}
}

// recover answers a call whose id's record was lost but whose parts were not: the parts an
// earlier call holds (every one not cancelled: a released part is cancelled), recorded
// now as held, so that this and every later retry answer them and nothing is held twice.
func (s *Sourcer) recover(ctx context.Context, id, token string, ans Answer) (Answer, string, error) {
	dist := map[string]float64{}
	for _, p := range ans.Plans {
		for _, part := range p.Stores {
			dist[part.Store] = part.DistanceKm
		}
	}
	h := &Held{ReservationID: id, Plan: Plan{Stores: []Part{}, Complete: true}, Reservations: []inventory.Reservation{}}
	for n := 1; n <= 2*MaxPlans*MaxStoresPerPlan; n++ {
		r, err := s.o.Reservations.Reservation(ctx, fmt.Sprintf("%s-%d", id, n))
		if jaego.CodeOf(err) == jaego.CodeNotFound || (err == nil && r.Status == inventory.Cancelled) {
			continue
		}
		if err != nil {
			s.finishReleased(ctx, id, token)
			return Answer{}, "failed", err
		}
		h.Reservations = append(h.Reservations, r)
		h.Plan.Stores = append(h.Plan.Stores, Part{Store: r.Store, DistanceKm: dist[r.Store], Items: r.Items})
	}
	if err := s.finishHeld(ctx, id, token, h); err != nil {
		return Answer{}, "failed", err
	}
	s.o.Logger.InfoContext(ctx, "sourcing: a hold's record was gone (Redis restored); its parts are recorded again", "reservation_id", id, "parts", len(h.Reservations))
	h.Again = true
	return Answer{Plans: []Plan{h.Plan}, Skipped: []Skip{}, Held: h}, "again", nil
}

// again answers a retry of an answered hold: its plan, and its parts as they are now.
func (s *Sourcer) again(ctx context.Context, id string, record []byte) (Answer, error) {
	var h Held
	if err := json.Unmarshal(record, &h); err != nil {
		return Answer{}, fmt.Errorf("sourcing hold %s: record: %w", id, err)
	}
	for i, r := range h.Reservations {
		now, err := s.o.Reservations.Reservation(ctx, r.ID)
		if err != nil {
			return Answer{}, err
		}
		h.Reservations[i] = now
	}
	h.Again = true
	return Answer{Plans: []Plan{h.Plan}, Skipped: []Skip{}, Held: &h}, nil
}
