package breaker

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/jaego/jaego/internal/inventory"
)

// Copy is the fallback of reads: the durable copy (inventory/db).
type Copy interface {
	inventory.StockReader
	Position(ctx context.Context) (inventory.CopyPosition, error)
}

// Store is the stock store of the request paths: every call to the primary (Redis) goes
// through the breaker. While it is open, writes fail at once with an *OpenError (503 with
// Retry-After; never applied anywhere else) and reads come from the copy, marked
// "fallback". A read the primary fails is answered from the copy too.
type Store struct {
	primary  inventory.StockStore
	copy     Copy // nil: no fallback, reads fail like writes
	b        *Breaker
	fallback *prometheus.CounterVec
}

var _ inventory.StockStore = (*Store)(nil)

// NewStore guards primary with b, falling back to copy (which may be nil) for reads.
func NewStore(primary inventory.StockStore, copy Copy, b *Breaker, reg prometheus.Registerer) *Store {
	return &Store{primary: primary, copy: copy, b: b,
		fallback: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "jaego_fallback_reads_total",
			Help: "Stock reads answered from the durable copy, by why (open: the breaker was open or lost; failed: Redis failed the read; lost: the read found Redis without its data)."}, []string{"why"})}
}

// Breaker is the store's breaker.
func (s *Store) Breaker() *Breaker { return s.b }

// Apply implements inventory.StockStore: the primary's, or an *OpenError (or overloaded)
// at once.
func (s *Store) Apply(ctx context.Context, events []inventory.Event) ([]inventory.Result, error) {
	if err := s.b.Enter(); err != nil {
		return nil, err
	}
	defer s.b.Leave()
	if err := s.b.Allow(); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := s.primary.Apply(ctx, events)
	// A script call applies up to 64 events: a consumer's batch of 2,000 is 32 pipelined
	// calls, and is slow only if a call of it is, on average.
	s.b.Record(err, time.Since(start)/time.Duration(max(1, (len(events)+63)/64)))
	lostIf(s.b, err)
	return res, err
}

// lostIf puts b in its lost state when err says Redis lost its data.
func lostIf(b *Breaker, err error) {
	if errors.Is(err, inventory.ErrLost) {
		b.MarkLost()
	}
}

// fallBack reports whether a read the primary answered with err is to be answered from the
// copy instead: Redis failed it, or Redis lost its data (then the breaker is lost from now
// on: an empty Redis is never served as the truth).
func (s *Store) fallBack(ctx context.Context, err error) (string, bool) {
	if errors.Is(err, inventory.ErrLost) {
		s.b.MarkLost()
		return "lost", s.copy != nil
	}
	return "failed", Failed(err) && s.copy != nil && ctx.Err() == nil
}

// Get implements inventory.StockStore.
func (s *Store) Get(ctx context.Context, store, sku string) (inventory.Stock, error) {
	if err := s.b.Enter(); err != nil {
		return inventory.Stock{}, err
	}
	defer s.b.Leave()
	if err := s.b.Allow(); err != nil {
		if s.copy == nil {
			return inventory.Stock{}, err
		}
		s.fallback.WithLabelValues("open").Inc()
		return s.copy.Get(ctx, store, sku)
	}
	start := time.Now()
	pctx, cancel := s.primaryBudget(ctx)
	st, err := s.primary.Get(pctx, store, sku)
	cancel()
	s.b.Record(err, time.Since(start))
	if why, ok := s.fallBack(ctx, err); ok {
		s.fallback.WithLabelValues(why).Inc()
		return s.copy.Get(ctx, store, sku)
	}
	return st, err
}

// GetMany implements inventory.StockStore.
func (s *Store) GetMany(ctx context.Context, keys []inventory.Key) ([]inventory.Lookup, error) {
	if err := s.b.Enter(); err != nil {
		return nil, err
	}
	defer s.b.Leave()
	if err := s.b.Allow(); err != nil {
		if s.copy == nil {
			return nil, err
		}
		s.fallback.WithLabelValues("open").Inc()
		return s.copy.GetMany(ctx, keys)
	}
	start := time.Now()
	pctx, cancel := s.primaryBudget(ctx)
	ls, err := s.primary.GetMany(pctx, keys)
	cancel()
	s.b.Record(err, time.Since(start))
	if why, ok := s.fallBack(ctx, err); ok {
		s.fallback.WithLabelValues(why).Inc()
		return s.copy.GetMany(ctx, keys)
	}
	return ls, err
}

// primaryBudget bounds a read from the primary to three quarters of what is left of ctx
// when there is a copy, so that a hung Redis leaves time to answer from the copy within the
// caller's deadline.
func (s *Store) primaryBudget(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || s.copy == nil {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)*3/4))
}

// Ping implements inventory.StockStore: the primary's.
func (s *Store) Ping(ctx context.Context) error { return s.primary.Ping(ctx) }

// AsOf is the time up to which the copy holds every change: what a fallback answer is as
// of. Zero without a copy or before its first catch-up.
func (s *Store) AsOf(ctx context.Context) (time.Time, error) {
	if s.copy == nil {
		return time.Time{}, nil
	}
	p, err := s.copy.Position(ctx)
	return p.AsOf, err
}
