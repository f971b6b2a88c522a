package promo

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// Source is where a rebuild reads promotions from: the SQL store (promo/db).
type Source interface {
	// Candidates are the active promotions whose period overlaps [from, to).
	Candidates(ctx context.Context, from, to time.Time) ([]Promotion, error)
}

// Publisher is the versioned cache a rebuild publishes to (promo/redis).
type Publisher interface {
	// Publish writes ps as a new version and serves it, unless a builder with a newer
	// fencing token claimed the cache first (ErrStaleToken); it returns the version.
	Publish(ctx context.Context, token int64, meta Meta, ps []Promotion) (int64, error)
	// Current is the catalog of the version served now.
	Current(ctx context.Context) (*Catalog, error)
}

// Locker serialises rebuilds across instances: the distributed lock of design §7.
type Locker interface {
	// Hold blocks until it holds name (lease 0: until released) and returns the fencing
	// token of this holding and the function that releases it.
	Hold(ctx context.Context, name string, lease time.Duration) (token int64, release func(context.Context) error, err error)
}

// Meta describes one cache version.
type Meta struct {
	Count   int       `json:"count"`
	Day     string    `json:"day"`
	From    time.Time `json:"from"` // the version holds the promotions active somewhere in [From, To)
	To      time.Time `json:"to"`
	BuiltAt time.Time `json:"built_at"`
}

// ErrStaleToken is a publication refused because a builder with a newer fencing token
// claimed the cache: this builder's lock lease ran out while it worked.
var ErrStaleToken = errors.New("promotion cache: a builder with a newer fencing token took over")

// RebuildLock is the lock (design §7) that serialises rebuilds across instances.
const RebuildLock = "promo-rebuild"

// Overlap is how far past the next midnight a version reaches, so that a daily batch that
// runs late still finds the promotions starting at midnight in the version before it.
const Overlap = time.Hour

// Window is the span a version built at now covers: from now to Overlap past the next
// midnight in loc, and the day it is for.
func Window(now time.Time, loc *time.Location) (from, to time.Time, day string) {
	return now, NextMidnight(now, loc).Add(Overlap), now.In(loc).Format(time.DateOnly)
}

// NextMidnight is the first 00:00 in loc after now (a DST change that skips midnight gives
// the first instant of the next day).
func NextMidnight(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
}

// RebuilderOptions configures a Rebuilder. Source, Publisher and Locker are required.
type RebuilderOptions struct {
	Source    Source
	Publisher Publisher
	Locker    Locker
	// Location is the time zone whose days the daily batch follows; default UTC.
	Location *time.Location
	// Lease is the lock lease; 0 (default) keeps the lock until the rebuild is done.
	Lease time.Duration
	// Now is the one clock of windows, days and the wait for midnight; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Rebuilt hears every rebuild: why, how it ended (published, error, stale_token) and how
	// long it took, lock wait included; the metrics are the edge's. Default: nobody.
	Rebuilt func(reason, outcome string, took time.Duration)
}

// Rebuilder is the use case that builds and publishes cache versions: after every admin
// change, at each midnight of its time zone, and by hand (`jaego promo rebuild`).
type Rebuilder struct {
	o    RebuilderOptions
	kick chan struct{}
}

// NewRebuilder returns a Rebuilder.
func NewRebuilder(o RebuilderOptions) *Rebuilder {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Rebuilt == nil {
		o.Rebuilt = func(string, string, time.Duration) {}
	}
	return &Rebuilder{o: o, kick: make(chan struct{}, 1)}
}

// Rebuild takes the rebuild lock, reads the candidates of the window from the source and
// publishes them as a new version, returning it. reason labels the metrics and logs.
func (r *Rebuilder) Rebuild(ctx context.Context, reason string) (int64, error) {
	start := r.o.Now()
	v, err := r.rebuild(ctx)
	took := r.o.Now().Sub(start)
	outcome := "published"
	if err != nil {
		outcome = "error"
		if errors.Is(err, ErrStaleToken) {
			outcome = "stale_token"
		}
		r.o.Logger.Error("promotion cache rebuild failed", "reason", reason, "err", err)
	} else {
		r.o.Logger.Info("promotion cache rebuilt", "reason", reason, "version", v, "took_ms", took.Milliseconds())
	}
	r.o.Rebuilt(reason, outcome, took)
	return v, err
}

func (r *Rebuilder) rebuild(ctx context.Context) (int64, error) {
	token, release, err := r.o.Locker.Hold(ctx, RebuildLock, r.o.Lease)
	if err != nil {
		return 0, err
	}
	defer func() { _ = release(context.WithoutCancel(ctx)) }()
	// The window starts after the lock is held: everything committed before this rebuild
	// was asked for is read below.
	now := r.o.Now()
	from, to, day := Window(now, r.o.Location)
	ps, err := r.o.Source.Candidates(ctx, from, to)
	if err != nil {
		return 0, err
	}
	return r.o.Publisher.Publish(ctx, token, Meta{Day: day, From: from, To: to, BuiltAt: now}, ps)
}

// Soon asks Run for a rebuild now (an admin change whose own rebuild failed: the change is
// committed, so the next successful rebuild serves it).
func (r *Rebuilder) Soon() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// notBuiltCheck is how often Run looks whether the cache lost its version (Redis came back
// empty, then `jaego restore`): a cheap read of the version pointer.
const notBuiltCheck = 5 * time.Second

// Run is the daily batch: it rebuilds at once when the version served was not built for
// today (a fresh Redis, or an instance that missed midnight), then at every midnight, and
// when Soon asks; and within notBuiltCheck of the cache losing its version (a restored
// Redis serves gifts again with no manual step). A failed rebuild is retried with backoff
// (up to a minute). It returns when ctx ends.
func (r *Rebuilder) Run(ctx context.Context) {
	check := time.NewTicker(notBuiltCheck)
	defer check.Stop()
	for {
		now := r.o.Now()
		reason, wait := "daily", NextMidnight(now, r.o.Location).Sub(now)
		if stale, err := r.stale(ctx); err != nil || stale {
			reason, wait = "startup", 0
		}
		for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
			t := time.NewTimer(wait)
		waiting:
			for {
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-r.kick:
					t.Stop()
					reason = "retry"
					break waiting
				case <-check.C:
					if _, err := r.o.Publisher.Current(ctx); jaego.CodeOf(err) == jaego.CodeNotBuilt {
						t.Stop()
						reason = "not_built"
						break waiting
					}
				case <-t.C:
					break waiting
				}
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
	_, _, day := Window(r.o.Now(), r.o.Location)
	return day
}

// stale reports whether the version served was built for another day than today.
func (r *Rebuilder) stale(ctx context.Context) (bool, error) {
	cat, err := r.o.Publisher.Current(ctx)
	if err != nil {
		return true, err
	}
	return cat.Day != r.Day(), nil
}
