// Package breaker is the circuit breaker of design §8 around the Redis stock store: it
// opens when Redis fails or slows down, serves reads from the durable copy while open,
// refuses writes at once (503 with Retry-After) and closes by itself once trial calls
// succeed.
//
// The state machine (open for a delay, then half-open with a fixed number of trial
// permits, closed again when enough of them succeed) is failsafe-go's circuit breaker.
// failsafe-go has no slow-call rate and no minimum number of calls in a count window, both
// of which the original system's Resilience4j breaker had, so the closed state's decision
// is this package's: a ring of the last Window calls, each a failure, slow, or fine; once it
// holds MinCalls calls, a failure rate or slow-call rate at its threshold opens the breaker.
package breaker

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Options configures a Breaker; zero fields take the original system's defaults.
type Options struct {
	FailureRate   float64       // fraction of failed calls that opens it; default 0.10
	SlowCall      time.Duration // a call at least this long is slow; default 500ms
	SlowRate      float64       // fraction of slow calls that opens it; default 0.10
	Window        int           // calls the rates are taken over; default 100
	MinCalls      int           // calls the window must hold before it can open; default 50
	OpenFor       time.Duration // how long it stays open before trial calls; default 30s
	HalfOpenCalls int           // trial calls while half-open; default 30
	// MaxInFlight bounds the calls to Redis under way at once; one more is refused at once
	// (503 overloaded) and counts for nothing: a burst is not a failing Redis, and without a
	// bound its calls wait in the client's queue until they look slow and open the breaker
	// on a healthy Redis. Default 256.
	MaxInFlight int
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// The states, as operators and metrics name them.
const (
	Closed     = "closed"
	Open       = "open"
	HalfOpen   = "half_open"
	ForcedOpen = "forced_open"
	// Lost: Redis answers but lost its data (design §8): reads come from the copy, writes are
	// refused, and only a finished restore ends it. It is kept apart from forced_open.
	Lost = "lost"
)

// DevSlowCall is jaego dev's slow-call threshold: its embedded Redis-protocol server runs
// in the process under one lock, and a burst there is slow without anything failing.
const DevSlowCall = 5 * time.Second

// Breaker decides whether a call may go to Redis.
type Breaker struct {
	o        Options
	cb       circuitbreaker.CircuitBreaker[any]
	inFlight chan struct{} // a slot per call under way (MaxInFlight)

	mu                    sync.Mutex
	ring                  []uint8 // per call: bit 1 failed, bit 2 slow
	next, n, fails, slows int
	forced                bool
	lost                  bool
	lostSince             time.Time
	since                 time.Time
	lossCh, wholeCh       chan struct{} // closed when lost (open while whole), and the reverse
	needPings             int           // answered pings that end an open wait early (Probe)
	earlyEnd              bool          // the half-open state came from an early end

	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	calls       *prometheus.CounterVec
}

// New returns a closed Breaker.
func New(o Options) *Breaker {
	if o.FailureRate <= 0 {
		o.FailureRate = 0.10
	}
	if o.SlowCall <= 0 {
		o.SlowCall = 500 * time.Millisecond
	}
	if o.SlowRate <= 0 {
		o.SlowRate = 0.10
	}
	if o.Window <= 0 {
		o.Window = 100
	}
	if o.MinCalls <= 0 {
		o.MinCalls = 50
	}
	o.MinCalls = min(o.MinCalls, o.Window)
	if o.OpenFor <= 0 {
		o.OpenFor = 30 * time.Second
	}
	if o.HalfOpenCalls <= 0 {
		o.HalfOpenCalls = 30
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := promauto.With(o.Registerer)
	b := &Breaker{o: o, ring: make([]uint8, o.Window), since: time.Now(), inFlight: make(chan struct{}, o.MaxInFlight),
		lossCh: make(chan struct{}), wholeCh: make(chan struct{}), needPings: 3,
		state: f.NewGaugeVec(prometheus.GaugeOpts{Name: "jaego_breaker_state",
			Help: "1 for the Redis breaker's current state (closed, open, half_open, forced_open, lost), 0 for the others."}, []string{"state"}),
		transitions: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_breaker_transitions_total",
			Help: "Redis breaker state changes, by the state entered."}, []string{"to"}),
		calls: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_breaker_calls_total",
			Help: "Calls the Redis breaker saw, by outcome (ok, failed, slow, refused: not sent because it was open or lost, overloaded: not sent because --breaker-max-in-flight calls were under way)."}, []string{"outcome"}),
	}
	// Trial calls: closed again when all but the failure rate's share of them succeed.
	success := uint(o.HalfOpenCalls - int(math.Floor(float64(o.HalfOpenCalls)*o.FailureRate)))
	b.cb = circuitbreaker.NewBuilder[any]().
		// The closed state's decision is the ring's: failsafe-go's own count (2 failures of
		// the last 1) can never be reached, and costs one bit (a count of math.MaxUint32
		// allocated a 512 MiB bitset at every return to closed).
		WithFailureThresholdRatio(2, 1).
		WithDelay(o.OpenFor).
		WithSuccessThresholdRatio(max(success, 1), uint(o.HalfOpenCalls)).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) { b.changed(e.NewState) }).
		Build()
	close(b.wholeCh)
	b.setGauge(Closed)
	return b
}

func stateName(s circuitbreaker.State) string {
	switch s {
	case circuitbreaker.OpenState:
		return Open
	case circuitbreaker.HalfOpenState:
		return HalfOpen
	}
	return Closed
}

func (b *Breaker) changed(to circuitbreaker.State) {
	b.mu.Lock()
	name := stateName(to)
	if b.forced && to == circuitbreaker.OpenState {
		name = ForcedOpen
	}
	b.since = time.Now()
	if to == circuitbreaker.ClosedState {
		clear(b.ring)
		b.next, b.n, b.fails, b.slows = 0, 0, 0, 0
		b.needPings, b.earlyEnd = 3, false
	}
	b.mu.Unlock()
	b.setGauge(name)
	b.transitions.WithLabelValues(name).Inc()
	if to == circuitbreaker.ClosedState {
		b.o.Logger.Info("redis breaker closed: calls go to Redis again")
	} else {
		b.o.Logger.Warn("redis breaker "+name, "open_for", b.o.OpenFor)
	}
}

func (b *Breaker) setGauge(name string) {
	for _, s := range []string{Closed, Open, HalfOpen, ForcedOpen, Lost} {
		v := 0.0
		if s == name {
			v = 1
		}
		b.state.WithLabelValues(s).Set(v)
	}
}

// OpenError is a call refused because the breaker is open; RetryAfter says when to retry.
type OpenError struct{ after time.Duration }

func (e *OpenError) Error() string {
	return "the stock store (Redis) is failing: calls are refused until the breaker closes"
}

// Unwrap makes errors.Is(err, jaego.ErrUnavailable) hold: a 503 store_unavailable.
func (e *OpenError) Unwrap() error { return jaego.ErrUnavailable }

// RetryAfter is when the breaker lets the next trial call through.
func (e *OpenError) RetryAfter() time.Duration { return e.after }

// LostError is a call refused because Redis lost its data: a write waits for the restore
// (503 store_lost), a read is answered from the copy.
type LostError struct{}

func (LostError) Error() string {
	return "the stock store (Redis) lost its data: writes wait for `jaego restore`; reads come from the durable copy"
}

// Unwrap makes errors.Is(err, inventory.ErrLost) hold: a 503 store_lost, and the signal for
// the Kafka consumers to leave their group until the restore.
func (LostError) Unwrap() error { return inventory.ErrLost }

// RetryAfter: a restore takes minutes; a second keeps clients polite without guessing.
func (LostError) RetryAfter() time.Duration { return time.Second }

// ErrOverloaded refuses a call beyond MaxInFlight: at once, and without counting against
// Redis.
var ErrOverloaded = jaego.Errorf(jaego.CodeOverloaded,
	"this instance has as many calls to the stock store under way as it allows; retry in a moment")

// Enter takes a slot for one call to Redis, or answers ErrOverloaded when MaxInFlight
// calls are under way; Leave gives the slot back.
func (b *Breaker) Enter() error {
	select {
	case b.inFlight <- struct{}{}:
		return nil
	default:
		b.calls.WithLabelValues("overloaded").Inc()
		return ErrOverloaded
	}
}

// Leave gives back the slot of Enter.
func (b *Breaker) Leave() { <-b.inFlight }

// Allow takes a permit for one call, or answers an *OpenError (or a LostError) when none
// may go.
func (b *Breaker) Allow() error {
	b.mu.Lock()
	forced, lost := b.forced, b.lost
	b.mu.Unlock()
	if lost {
		b.calls.WithLabelValues("refused").Inc()
		return LostError{}
	}
	if !forced && b.cb.TryAcquirePermit() {
		return nil
	}
	b.calls.WithLabelValues("refused").Inc()
	after := b.cb.RemainingDelay()
	if forced || after <= 0 {
		after = time.Second
	}
	return &OpenError{after: after}
}

// Failed reports whether err means the store failed (rather than refused or rejected the
// call): it counts against the breaker. A lost store is not a failing one (it answers, and
// fast): it has a state of its own (MarkLost).
func Failed(err error) bool {
	return err != nil && !errors.Is(err, inventory.ErrLost) && (errors.Is(err, jaego.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded))
}

// Record gives back the permit of a call that was allowed, with how it went.
func (b *Breaker) Record(err error, took time.Duration) {
	failed, slow := Failed(err), took >= b.o.SlowCall
	switch {
	case failed:
		b.calls.WithLabelValues("failed").Inc()
	case slow:
		b.calls.WithLabelValues("slow").Inc()
	default:
		b.calls.WithLabelValues("ok").Inc()
	}
	if !b.cb.IsClosed() {
		if failed || slow {
			b.cb.RecordFailure()
		} else {
			b.cb.RecordSuccess()
		}
		return
	}
	b.cb.RecordSuccess() // releases the permit; the decision is the ring's
	b.mu.Lock()
	old := b.ring[b.next]
	b.fails -= int(old & 1)
	b.slows -= int(old >> 1 & 1)
	var v uint8
	if failed {
		v |= 1
	}
	if slow {
		v |= 2
	}
	b.ring[b.next] = v
	b.fails += int(v & 1)
	b.slows += int(v >> 1 & 1)
	b.next = (b.next + 1) % len(b.ring)
	b.n = min(b.n+1, len(b.ring))
	trip := b.n >= b.o.MinCalls &&
		(float64(b.fails) >= b.o.FailureRate*float64(b.n) || float64(b.slows) >= b.o.SlowRate*float64(b.n))
	b.mu.Unlock()
	if trip {
		b.cb.Open()
	}
}

// Status returns the breaker's state and its window's rates. A loss shows over everything
// else (a forced_open under it comes back when the loss ends).
func (b *Breaker) Status() inventory.BreakerStatus {
	state := stateName(b.cb.State())
	b.mu.Lock()
	defer b.mu.Unlock()
	since := b.since
	if b.forced {
		state = ForcedOpen
	}
	if b.lost {
		state, since = Lost, b.lostSince
	}
	st := inventory.BreakerStatus{State: state, Since: since.UTC(), WindowCalls: b.n}
	if b.n > 0 {
		st.FailureRate, st.SlowRate = float64(b.fails)/float64(b.n), float64(b.slows)/float64(b.n)
	}
	return st
}

// Force opens the breaker and keeps it open until Auto (maintenance of Redis).
func (b *Breaker) Force() {
	b.mu.Lock()
	b.forced = true
	b.mu.Unlock()
	if b.cb.IsOpen() {
		b.changed(circuitbreaker.OpenState) // already open: now forced
		return
	}
	b.cb.Open()
}

// ErrLostAuto refuses {"state":"auto"} while Redis is lost: nothing but a finished restore
// ends a loss.
var ErrLostAuto = jaego.Errorf(jaego.CodeBreakerLost,
	"Redis lost its data: the breaker stays lost until `jaego restore` finishes (reads come from the durable copy meanwhile); auto cannot end a loss")

// Auto hands the breaker back to its rules: from forced open it goes half-open, so trial
// calls decide. During a loss it is refused (ErrLostAuto) and changes nothing.
func (b *Breaker) Auto() error {
	b.mu.Lock()
	if b.lost {
		b.mu.Unlock()
		return ErrLostAuto
	}
	was := b.forced
	b.forced = false
	b.mu.Unlock()
	if was {
		b.cb.HalfOpen()
	}
	return nil
}

// MarkLost puts the breaker in the lost state (a read found an epoch mark gone, or the
// guard did), from this call on: reads go to the copy, writes are refused.
func (b *Breaker) MarkLost() {
	b.mu.Lock()
	if b.lost {
		b.mu.Unlock()
		return
	}
	b.lost, b.lostSince = true, time.Now()
	close(b.lossCh)
	b.wholeCh = make(chan struct{})
	b.mu.Unlock()
	b.setGauge(Lost)
	b.transitions.WithLabelValues(Lost).Inc()
	b.o.Logger.Error("Redis lost its data (an epoch mark is gone): reads come from the durable copy and writes are refused until `jaego restore`")
}

// Loss is closed once Redis is lost (at once when it is now): a worker that has nothing to
// call Redis with (a consumer waiting for records) learns of the loss from it.
func (b *Breaker) Loss() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lossCh
}

// WaitWhole returns once Redis is not lost (at once when it is not), or with ctx's error.
func (b *Breaker) WaitWhole(ctx context.Context) error {
	b.mu.Lock()
	whole := b.wholeCh
	b.mu.Unlock()
	select {
	case <-whole:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restored ends a loss (the epoch marks are back: a restore finished). An operator's
// forced_open, if any, holds on; otherwise the breaker follows its rules from closed.
func (b *Breaker) Restored() {
	b.mu.Lock()
	if !b.lost {
		b.mu.Unlock()
		return
	}
	b.lost = false
	close(b.wholeCh)
	b.lossCh = make(chan struct{})
	forced := b.forced
	b.mu.Unlock()
	b.o.Logger.Info("Redis is whole again (epoch marks back): the breaker follows its rules again")
	if forced {
		b.setGauge(ForcedOpen)
		b.transitions.WithLabelValues(ForcedOpen).Inc()
		return
	}
	b.cb.Close()
	b.changed(circuitbreaker.ClosedState)
}

// IsLost reports whether the breaker is in the lost state.
func (b *Breaker) IsLost() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lost
}

// Probe keeps the breaker honest when no traffic comes: every period it pings Redis
// (ping, bounded by the period) and
//   - half-open, it spends a trial permit on the ping, so the breaker closes within
//     HalfOpenCalls periods of an operator's auto or of recovery, with no request at all;
//   - open, answered pings in a row end the wait early (it goes half-open): three at
//     first, so a Redis that came back (a Cluster's failover done in 3 s) gets writes again
//     within a few periods, not after the whole OpenFor. Each time the trials after an early
//     end fail (Redis answers pings but not calls), the answered pings needed double, up to
//     OpenFor's worth; closing resets them to three. While pings fail it waits OpenFor.
//
// Forced open and lost are left alone: an operator or a restore ends those.
func (b *Breaker) Probe(ctx context.Context, ping func(context.Context) error, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	most := max(3, int(b.o.OpenFor/every))
	answered := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		hands := b.forced || b.lost
		b.mu.Unlock()
		if hands {
			answered = 0
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		switch {
		case b.cb.IsHalfOpen():
			if b.Allow() == nil {
				start := time.Now()
				err := ping(pctx)
				b.Record(err, time.Since(start))
			}
		case b.cb.IsOpen():
			b.mu.Lock()
			if b.earlyEnd { // the trials after an early end failed: ask for longer next time
				b.earlyEnd, b.needPings = false, min(2*b.needPings, most)
			}
			need := b.needPings
			b.mu.Unlock()
			if ping(pctx) == nil {
				answered++
			} else {
				answered = 0
			}
			if answered >= need {
				answered = 0
				b.mu.Lock()
				b.earlyEnd = true
				b.mu.Unlock()
				b.o.Logger.Info("redis breaker: Redis answers again; trial calls start before the open time is over", "answered_pings", need)
				b.cb.HalfOpen()
			}
		default:
			answered = 0
		}
		cancel()
	}
}
