package inventory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RestoreSource is what a restore reads: the durable copy (inventory/db).
type RestoreSource interface {
	// Records hands every record to emit in pages of n.
	Records(ctx context.Context, n int, emit func([]Stock) error) error
	// ChangesSince hands the changes applied at or after since, whole and in change-id
	// order, to emit in pages of n.
	ChangesSince(ctx context.Context, since time.Time, n int, emit func([]Change) error) error
	// KafkaOffsets is the range of Kafka offsets the copy holds changes of, per partition.
	KafkaOffsets(ctx context.Context) (map[int32]OffsetRange, error)
	// Position is the copy's position, with the fencing token of its last projector.
	Position(ctx context.Context) (CopyPosition, error)
	// Reservations hands the reservations the copy holds that are held, or ended at or
	// after since, to emit in pages of n.
	Reservations(ctx context.Context, since time.Time, n int, emit func([]Reservation) error) error
	// LoadMarks is every load mark the copy holds.
	LoadMarks(ctx context.Context) ([]LoadMark, error)
	// Fence raises the copy's fencing token above above (and past its own), so that a
	// projector holding any lower token commits nothing more; it returns the new token.
	Fence(ctx context.Context, above int64) (int64, error)
}

// LoadMark is how far a stock snapshot load got in a shard group: Line is the last line it
// applied there, at At.
type LoadMark struct {
	Group int
	Load  string
	Line  int64
	At    time.Time
}

// OffsetRange is the lowest and highest offset of a Kafka partition whose events the copy
// holds: records before First were applied before the copy existed (they are in its first
// snapshot, with no idempotency marks in the ledger) and must never be consumed again.
type OffsetRange struct{ First, Last int64 }

// ResumeAt is where a consumer group resumes after a restore: margin records before the
// last offset the copy holds (the changes of one poll reach the copy in feed order, not
// offset order), but never before its first.
func (r OffsetRange) ResumeAt(margin int64) int64 { return max(r.First, r.Last+1-margin) }

// RestoreTarget is the Redis being rebuilt (inventory/redis).
type RestoreTarget interface {
	// Marked reports whether any shard group of the target has its epoch mark: it is (at
	// least partly) whole, not a Redis that lost its data or a restore that did not finish.
	Marked(ctx context.Context) (bool, error)
	// PutRecords writes records with their versions, and indexes them for snapshots.
	PutRecords(ctx context.Context, records []Stock) error
	// MarkApplied remembers the events of changes as applied until at + window.
	MarkApplied(ctx context.Context, changes []Change, window time.Duration) error
	// RaiseChangeIDs makes the next change id of each shard group rise above ids (change
	// ids as the feed gives them).
	RaiseChangeIDs(ctx context.Context, ids []string) error
	// AppendChanges writes changes back into their change streams, with their ids.
	AppendChanges(ctx context.Context, changes []Change) error
	// PutReservations writes reservations back as they were: a held one in its group's
	// expiry queue, each in its store's list and under its id's claim, an ended one kept
	// until keep after its end.
	PutReservations(ctx context.Context, rs []Reservation, keep time.Duration) error
	// SetHeldCounts sets how many reservations each store holds (the hold quota's counts),
	// for every store, stores not in held at zero.
	SetHeldCounts(ctx context.Context, held map[string]int64) error
	// PutLoadMarks writes load marks back, each kept until window after its At.
	PutLoadMarks(ctx context.Context, marks []LoadMark, window time.Duration) error
	// MarkEpoch marks the target whole again: writes are accepted from then on.
	MarkEpoch(ctx context.Context, onlyNew bool) error
}

// FenceRaiser raises a lock's token counter (the lock of design §7): after a restore the
// projector's next token must be above the one the copy holds, or it could never commit.
type FenceRaiser interface {
	RaiseFence(ctx context.Context, name string, min int64) (counter int64, err error)
}

// RestoreOptions configures a restore.
type RestoreOptions struct {
	// Window is how long applied event ids are remembered (the idempotency window);
	// default 7 days.
	Window time.Duration
	// Retention is how far back the change feed reaches (JAEGO_CHANGES_RETENTION): the
	// ledger's changes of that span go back into the streams; default 48h.
	Retention time.Duration
	// Force writes into a target that is not empty.
	Force bool
	// Locks raises the projector lock's token counter above the copy's token; required.
	Locks FenceRaiser
	// Progress, when set, is told what was done so far.
	Progress func(stage string, n int64)
	// BeforeWhole, when set, runs with the copy's Kafka offsets just before the target is
	// marked whole (writes accepted again): where the consumer group is moved back.
	BeforeWhole func(ctx context.Context, kafkaOffsets map[int32]OffsetRange) error
	Now         func() time.Time
}

// RestoreReport says what a restore wrote.
type RestoreReport struct {
	Records, Marks, Changes int64
	Reservations, Held      int64 // reservations written back, and those of them held
	LoadMarks               int64
	KafkaOffsets            map[int32]OffsetRange // the offsets the copy holds per partition
}

// ErrTargetWhole refuses a restore into a Redis that has its epoch marks (without Force).
// A Redis without them is one that lost its data, or one whose restore was interrupted:
// every step of a restore writes what the copy says whatever is there, so running it again
// finishes it exactly; the marks are written last.
var ErrTargetWhole = fmt.Errorf("the target Redis is whole (its epoch marks are there): restore rebuilds a Redis that lost its data, or finishes one whose restore was interrupted (use --force to write over a whole one)")

// Restore rebuilds a Redis from the durable copy (design §8): every record with its
// version and index sets, the idempotency marks still inside their window (from the
// ledger), change ids that keep rising above every id the copy holds, and the projector
// lock's token counter above the copy's token. It returns the Kafka offsets the copy holds,
// from which the consumer group resumes.
func Restore(ctx context.Context, src RestoreSource, dst RestoreTarget, o RestoreOptions) (RestoreReport, error) {
	if o.Window <= 0 {
		o.Window = 7 * 24 * time.Hour
	}
	if o.Retention <= 0 {
		o.Retention = 48 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = func(string, int64) {}
	}
	var rep RestoreReport
	if whole, err := dst.Marked(ctx); err != nil {
		return rep, err
	} else if whole && !o.Force {
		return rep, ErrTargetWhole
	}
	// The copy is read in many queries (records, ledger, reservations) while jaego serve's
	// projector may still run (the runbook restores beside it). A page it read before the
	// loss and committed half-way through the reading was restored in part: in TestChaos, a
	// reservation confirmed whose stock was not taken. So the copy is fenced first, above
	// the projector's token and above any the lock's counter gives while the restore runs:
	// such commits are refused (a restore is as of its start), and only a projector that
	// takes the lock after the restore (above the fence, raised at the end) goes on.
	// (Fence also goes past the copy's own token, the last projector's.)
	counter, err := o.Locks.RaiseFence(ctx, ProjectorLock, 0)
	if err != nil {
		return rep, err
	}
	fence, err := src.Fence(ctx, counter+fenceMargin)
	if err != nil {
		return rep, err
	}
	if err := readAhead(ctx, func(emit func([]Stock) error) error { return src.Records(ctx, 1000, emit) }, func(page []Stock) error {
		if err := dst.PutRecords(ctx, page); err != nil {
			return err
		}
		rep.Records += int64(len(page))
		o.Progress("records", rep.Records)
		return nil
	}); err != nil {
		return rep, err
	}
	// One pass over the ledger of the idempotency window, in change-id order: every event is
	// remembered as applied, each group's highest change id is found, and the changes of the
	// feed's retention go back into their streams (in id order, as a stream needs).
	maxID := map[string]string{} // group → highest change id
	recentFrom := o.Now().Add(-o.Retention)
	readChanges := func(emit func([]Change) error) error {
		return src.ChangesSince(ctx, o.Now().Add(-o.Window), 1000, emit)
	}
	if err := readAhead(ctx, readChanges, func(page []Change) error {
		var recent []Change
		for _, c := range page {
			id, group, ok := strings.Cut(c.ID, "/")
			if g, _, _ := strings.Cut(group, "/"); ok && idAfter(id, maxID[g]) {
				maxID[g] = id
			}
			if !c.At.Before(recentFrom) {
				recent = append(recent, c)
			}
		}
		if err := dst.MarkApplied(ctx, page, o.Window); err != nil {
			return err
		}
		if err := dst.AppendChanges(ctx, recent); err != nil {
			return err
		}
		rep.Marks += int64(len(page))
		rep.Changes += int64(len(recent))
		o.Progress("changes read from the ledger", rep.Marks)
		return nil
	}); err != nil {
		return rep, err
	}
	if err := restoreNotes(ctx, src, dst, o, &rep); err != nil {
		return rep, err
	}
	ids := make([]string, 0, len(maxID))
	for g, id := range maxID {
		ids = append(ids, id+"/"+g)
	}
	if err := dst.RaiseChangeIDs(ctx, ids); err != nil {
		return rep, err
	}
	if _, err := o.Locks.RaiseFence(ctx, ProjectorLock, fence); err != nil {
		return rep, err
	}
	offsets, err := src.KafkaOffsets(ctx)
	if err != nil {
		return rep, err
	}
	rep.KafkaOffsets = offsets
	if o.BeforeWhole != nil {
		if err := o.BeforeWhole(ctx, offsets); err != nil {
			return rep, err
		}
	}
	return rep, dst.MarkEpoch(ctx, false)
}

// fenceMargin is how many tokens the projector lock may give while a restore runs (one a
// second at most, to a projector that lost its lock with the data) and still stay below the
// restore's fence.
const fenceMargin = 1 << 20

// readAhead runs read (which hands its pages to emit) in a goroutine of its own, a few
// pages ahead of write: the copy reads the next page while Redis takes the last one,
// instead of the two taking turns. A write's error stops the read.
func readAhead[T any](ctx context.Context, read func(emit func(T) error) error, write func(T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan T, 4)
	done := make(chan error, 1)
	go func() {
		defer close(pages)
		done <- read(func(page T) error {
			select {
			case pages <- page:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for page := range pages {
		if err := write(page); err != nil {
			cancel()
			for range pages { // the reader ends at its next page
			}
			<-done
			return err
		}
	}
	return <-done
}

// restoreNotes writes back the reservations held or ended inside the window (the time an
// ended one is kept: the idempotency window, as in Redis), the held counts, and the load
// marks still inside the window.
func restoreNotes(ctx context.Context, src RestoreSource, dst RestoreTarget, o RestoreOptions, rep *RestoreReport) error {
	held := map[string]int64{}
	if err := src.Reservations(ctx, o.Now().Add(-o.Window), 1000, func(page []Reservation) error {
		if err := dst.PutReservations(ctx, page, o.Window); err != nil {
			return err
		}
		for _, r := range page {
			if r.Status == Held {
				held[r.Store]++
				rep.Held++
			}
		}
		rep.Reservations += int64(len(page))
		o.Progress("reservations", rep.Reservations)
		return nil
	}); err != nil {
		return err
	}
	if err := dst.SetHeldCounts(ctx, held); err != nil {
		return err
	}
	marks, err := src.LoadMarks(ctx)
	if err != nil {
		return err
	}
	live := marks[:0]
	for _, m := range marks {
		if m.At.Add(o.Window).After(o.Now()) {
			live = append(live, m)
		}
	}
	rep.LoadMarks = int64(len(live))
	return dst.PutLoadMarks(ctx, live, o.Window)
}

// idAfter reports whether stream id a ("ms-seq") is after b ("" is before everything).
func idAfter(a, b string) bool {
	if b == "" {
		return true
	}
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		return x > y
	}
	p, _ := strconv.ParseUint(as, 10, 64)
	q, _ := strconv.ParseUint(bs, 10, 64)
	return p > q
}
