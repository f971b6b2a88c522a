package redis

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/promo"
)

// Source is where a rebuild reads promotions from: the SQL store (promo/db.DB).
type Source interface {
	Candidates(ctx context.Context, from, to time.Time) ([]promo.Promotion, error)
}

// LockName is the lock (design §7) that serialises rebuilds across instances.
const LockName = "promo-rebuild"

// Rebuilder builds and publishes cache versions: after every admin change, at each
// midnight of its time zone, and by hand (`jaego promo rebuild`).
type Rebuilder struct {
	Cache  *Cache
	Source Source
	Locker *lock.Locker
	// Location is the time zone whose days the daily batch follows; default UTC.
	Location *time.Location
	// Lease is the lock lease; 0 (default) keeps the lock with the watchdog until done.
	Lease  time.Duration
	Now    func() time.Time
	Logger *slog.Logger

	m    rebuildMetrics
	kick chan struct{}
}

type rebuildMetrics struct {
	runs *prometheus.CounterVec
	took prometheus.Histogram
}

// Overlap is how far past the next midnight a version reaches, so that a daily batch that
// runs late still finds the promotions starting at midnight in the version before it.
const Overlap = time.Hour

// NewRebuilder returns a Rebuilder; its metrics register on reg.
func NewRebuilder(c *Cache, src Source, l *lock.Locker, loc *time.Location, reg prometheus.Registerer) *Rebuilder {
	f := promauto.With(reg)
	if loc == nil {
		loc = time.UTC
	}
	return &Rebuilder{Cache: c, Source: src, Locker: l, Location: loc, Now: time.Now, Logger: slog.Default(),
		kick: make(chan struct{}, 1),
		m: rebuildMetrics{
			runs: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_promo_rebuilds_total",
				Help: "Promotion cache rebuilds by reason (admin, daily, startup, manual) and outcome."}, []string{"reason", "outcome"}),
			took: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_promo_rebuild_seconds",
				Help: "Time of one rebuild, lock wait included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		}}
}

// Window is the span a version built at now covers: from now to Overlap past the next
// midnight in loc, and the day it is for.
func Window(now time.Time, loc *time.Location) (from, to time.Time, day string) {
	local := now.In(loc)
	return now, NextMidnight(now, loc).Add(Overlap), local.Format(time.DateOnly)
}

// NextMidnight is the first 00:00 in loc after now (a DST change that skips midnight gives
// the first instant of the next day).
func NextMidnight(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
}

// Rebuild takes the rebuild lock, reads the candidates of the window from the source and
// publishes them as a new version, returning it. reason labels the metrics and logs.
func (r *Rebuilder) Rebuild(ctx context.Context, reason string) (int64, error) {
	start := time.Now()
	v, err := r.rebuild(ctx)
	outcome := "published"
	if err != nil {
		outcome = "error"
		if errors.Is(err, ErrStaleToken) {
			outcome = "stale_token"
		}
		r.Logger.Error("promotion cache rebuild failed", "reason", reason, "err", err)
	} else {
		r.Logger.Info("promotion cache rebuilt", "reason", reason, "version", v, "took", time.Since(start))
	}
	r.m.runs.WithLabelValues(reason, outcome).Inc()
	r.m.took.Observe(time.Since(start).Seconds())
	return v, err
}

func (r *Rebuilder) rebuild(ctx context.Context) (int64, error) {
	l, err := r.Locker.Lock(ctx, LockName, r.Lease)
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Unlock(context.WithoutCancel(ctx)) }()
	// The window starts after the lock is held: everything committed before this rebuild
	// was asked for is read below.
	now := r.Now()
	from, to, day := Window(now, r.Location)
	ps, err := r.Source.Candidates(ctx, from, to)
	if err != nil {
		return 0, err
	}
	return r.Cache.Publish(ctx, l.Token, Meta{Day: day, From: from, To: to, BuiltAt: now}, ps)
}

// Soon asks Run for a rebuild now (an admin change whose own rebuild failed: the change is
// committed, so the next successful rebuild serves it).
func (r *Rebuilder) Soon() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run is the daily batch: it rebuilds at once when the version served was not built for
// today (a fresh Redis, or an instance that missed midnight), then at every midnight, and
// when Soon asks; a failed rebuild is retried with backoff (up to a minute). It returns
// when ctx ends.
func (r *Rebuilder) Run(ctx context.Context) {
	for {
		reason, wait := "daily", time.Until(NextMidnight(r.Now(), r.Location))
		if stale, err := r.stale(ctx); err != nil || stale {
			reason, wait = "startup", 0
		}
		for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-r.kick:
				t.Stop()
				reason = "retry"
			case <-t.C:
			}
			if reason == "daily" {
				// Every instance wakes at midnight; the first one's version serves them all.
				if stale, err := r.stale(ctx); err == nil && !stale {
					break
				}
			}
			if _, err := r.Rebuild(ctx, reason); err == nil || ctx.Err() != nil {
				break
			}
			wait = backoff
		}
	}
}

// Day is today in the rebuilder's time zone: the day a version built now is for.
func (r *Rebuilder) Day() string {
	_, _, day := Window(r.Now(), r.Location)
	return day
}

// stale reports whether the version served was built for another day than today.
func (r *Rebuilder) stale(ctx context.Context) (bool, error) {
	cat, err := r.Cache.Current(ctx)
	if err != nil {
		return true, err
	}
	return cat.Day != r.Day(), nil
}
