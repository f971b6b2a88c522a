package inventory

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ProjectorLock is the lock (design §7) that lets one instance at a time project.
const ProjectorLock = "stock-projector"

// ProjectorOptions configures a Projector. Feed, Snapshots, Copy and Locker are required.
type ProjectorOptions struct {
	Feed      ChangeFeed
	Snapshots Snapshotter
	Copy      CopyStore
	Locker    Locker
	// Batch is the most changes one commit holds; default 5,000.
	Batch int
	// Idle is how long the projector waits for new changes once caught up before it
	// re-reads (a change wakes it at once); default 1s.
	Idle time.Duration
	// Changed, when set, is how the projector waits for new changes: a channel closed when
	// one arrives after the call (the process's Watcher, shared with the live tail, so the
	// wait costs no Redis connection of its own); without it, the feed's Wait (which opens a
	// blocking read per shard group at every wait).
	Changed func() <-chan struct{}
	// LedgerRetention is how long the ledger keeps changes; default 90 days.
	LedgerRetention time.Duration
	// Lost, when set, says the stock store lost its data (Redis came back empty): the
	// projector then commits nothing, so the copy's as-of stays at the loss instead of
	// claiming an empty feed is up to date, until the store is restored.
	Lost   func(ctx context.Context) (bool, error)
	Now    func() time.Time
	Logger *slog.Logger
	// Observer hears what the projector does (the metrics are the edge's: inventory/prom);
	// default: nobody.
	Observer ProjectorObserver
	// Tracer, when set (tracing on), makes a span of every commit that copies changes.
	Tracer trace.Tracer
}

// ProjectorObserver hears what a Projector does, for metrics kept outside the domain.
type ProjectorObserver interface {
	Active(bool)                               // it took (true) or left (false) the projector lock
	Committed(changes int, took time.Duration) // one commit of the copy
	Behind(lag time.Duration)                  // how far the copy is behind now (0 when not projecting)
	Failed()                                   // a run failed and starts over
}

type noProjectorObserver struct{}

func (noProjectorObserver) Active(bool)                  {}
func (noProjectorObserver) Committed(int, time.Duration) {}
func (noProjectorObserver) Behind(time.Duration)         {}
func (noProjectorObserver) Failed()                      {}

// Projector is the use case that keeps the durable copy (design §8): it follows the change
// feed and commits every change, with the feed position after it, in one transaction of
// the copy. It starts from a snapshot when the copy is empty. One instance projects at a
// time (ProjectorLock); its fencing token guards every commit, so a projector whose lease
// ran out while it was paused cannot write over its successor.
type Projector struct {
	o ProjectorOptions
	m ProjectorObserver
}

// NewProjector returns a Projector.
func NewProjector(o ProjectorOptions) *Projector {
	if o.Batch <= 0 {
		o.Batch = 5000
	}
	if o.Idle <= 0 {
		o.Idle = time.Second
	}
	if o.LedgerRetention <= 0 {
		o.LedgerRetention = 90 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = noProjectorObserver{}
	}
	return &Projector{o: o, m: o.Observer}
}

// Run projects until ctx ends: it waits for the projector lock, projects while it holds
// it, and starts over (after a second) when the feed, the copy or the lock fails.
func (p *Projector) Run(ctx context.Context) {
	for ctx.Err() == nil {
		token, release, err := p.o.Locker.Hold(ctx, ProjectorLock, 0)
		if err == nil {
			p.m.Active(true)
			err = p.project(ctx, token)
			p.m.Active(false)
			p.m.Behind(0)
			_ = release(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return
		}
		p.m.Failed()
		p.o.Logger.Warn("stock projector stopped; starting over", "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (p *Projector) project(ctx context.Context, token int64) error {
	pos, err := p.o.Copy.Claim(ctx, token)
	if err != nil {
		return err
	}
	cursor := pos.Cursor
	if cursor == "" {
		if cursor, err = p.bootstrap(ctx, token); err != nil {
			return err
		}
	}
	p.o.Logger.Info("stock projector running", "token", token, "changes_so_far", pos.Changes)
	// The feed is read ahead: the next page is fetched while the last one commits, so
	// Redis, the decoding and PostgreSQL work at once (a page's cursor is known as soon as
	// it is read).
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	pages := make(chan fetchedPage, 1)
	go p.read(rctx, cursor, pages)
	lastAsOf, lastPrune := pos.AsOf, time.Time{}
	for f := range pages {
		if f.err != nil {
			return f.err
		}
		if p.o.Lost != nil && len(f.page.Changes) == 0 {
			if lost, err := p.o.Lost(ctx); err != nil || lost {
				continue // nothing to copy, and no as-of to claim
			}
		}
		asOf := f.start // caught up: the copy holds every change applied before the read
		if len(f.page.Changes) == p.o.Batch {
			asOf = f.page.Changes[len(f.page.Changes)-1].At
		}
		// An idle copy still moves its as-of forward, once a second at most.
		if len(f.page.Changes) > 0 || asOf.Sub(lastAsOf) >= time.Second {
			t := time.Now()
			if err := p.commit(ctx, token, Projection{Changes: f.page.Changes, Cursor: f.page.Next, AsOf: asOf}); err != nil {
				return err
			}
			p.m.Committed(len(f.page.Changes), time.Since(t))
			lastAsOf = asOf
		}
		p.m.Behind(max(0, p.o.Now().Sub(lastAsOf)))
		if now := p.o.Now(); now.Sub(lastPrune) >= time.Hour {
			if n, err := p.o.Copy.Prune(ctx, now.Add(-p.o.LedgerRetention)); err != nil {
				p.o.Logger.Warn("ledger retention failed; retried in an hour", "err", err)
			} else if n > 0 {
				p.o.Logger.Info("ledger retention", "dropped", n)
			}
			lastPrune = now
		}
	}
	return ctx.Err()
}

// commit commits pr to the copy, in a span when tracing is on and pr copies changes (the
// once-a-second as-of moves of an idle copy make none).
func (p *Projector) commit(ctx context.Context, token int64, pr Projection) error {
	if p.o.Tracer == nil || len(pr.Changes) == 0 {
		return p.o.Copy.Commit(ctx, token, pr)
	}
	ctx, span := p.o.Tracer.Start(ctx, "projector commit", trace.WithAttributes(
		attribute.Int("jaego.changes", len(pr.Changes)), attribute.Int64("jaego.fencing_token", token),
		attribute.String("jaego.first_change", pr.Changes[0].ID), attribute.String("jaego.cursor", pr.Cursor)))
	defer span.End()
	err := p.o.Copy.Commit(ctx, token, pr)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// fetchedPage is one read of the feed, with the time it began.
type fetchedPage struct {
	page  ChangePage
	start time.Time
	err   error
}

// read follows the feed from cursor into pages until ctx ends or a read fails (its error is
// the last page); once caught up it waits for new changes, Idle at most, between reads.
func (p *Projector) read(ctx context.Context, cursor string, pages chan<- fetchedPage) {
	defer close(pages)
	for ctx.Err() == nil {
		start := p.o.Now()
		var changed <-chan struct{}
		if p.o.Changed != nil {
			changed = p.o.Changed() // before the read: a change during it wakes the wait
		}
		page, err := p.o.Feed.Changes(ctx, time.Time{}, time.Time{}, cursor, p.o.Batch)
		select {
		case pages <- fetchedPage{page: page, start: start, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		cursor = page.Next
		if len(page.Changes) < p.o.Batch && changed != nil {
			t := time.NewTimer(p.o.Idle)
			select {
			case <-changed:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		} else if len(page.Changes) < p.o.Batch {
			if err := p.o.Feed.Wait(ctx, cursor, p.o.Idle); err != nil && ctx.Err() == nil {
				select {
				case pages <- fetchedPage{err: err}:
				case <-ctx.Done():
				}
				return
			}
		}
	}
}

// Start makes sure the copy has a feed position before the server takes traffic: when the
// copy is empty it takes the projector lock and fills it from a snapshot (another instance
// doing it at the same moment makes this one wait, then find the position). From then on
// every event applied is a change the copy will hold with its ledger entry, so a restore can
// remember it as applied; an event applied before the copy existed is only in its records.
func (p *Projector) Start(ctx context.Context) error {
	if pos, err := p.o.Copy.Position(ctx); err != nil || pos.Cursor != "" {
		return err
	}
	token, release, err := p.o.Locker.Hold(ctx, ProjectorLock, 0)
	if err != nil {
		return err
	}
	defer func() { _ = release(context.WithoutCancel(ctx)) }()
	pos, err := p.o.Copy.Claim(ctx, token)
	if err != nil || pos.Cursor != "" {
		return err
	}
	_, err = p.bootstrap(ctx, token)
	return err
}

// bootstrap fills an empty copy from a snapshot: the feed position first, then every
// record (only-if-higher, so a record read late is fine), then the position is committed;
// an interrupted bootstrap starts over from scratch and changes nothing twice.
func (p *Projector) bootstrap(ctx context.Context, token int64) (string, error) {
	cursor, err := p.o.Feed.Position(ctx)
	if err != nil {
		return "", err
	}
	p.o.Logger.Info("stock projector: empty copy, starting from a snapshot")
	n := 0
	for page := ""; ; {
		est, err := p.o.Snapshots.Estate(ctx, page)
		if err != nil {
			return "", err
		}
		if len(est.Items) > 0 {
			if err := p.o.Copy.Commit(ctx, token, Projection{Records: est.Items}); err != nil {
				return "", err
			}
			n += len(est.Items)
		}
		if page = est.Next; page == "" {
			break
		}
	}
	if err := p.o.Copy.Commit(ctx, token, Projection{Cursor: cursor}); err != nil {
		return "", err
	}
	p.o.Logger.Info("stock projector: snapshot copied", "records", n)
	return cursor, nil
}
