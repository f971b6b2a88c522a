package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/tracing"
)

// Options configures a Dispatcher. Store, Feed, Hub, Locker, Sealer and Sender are required.
type Options struct {
	Store  Store
	Feed   Feed
	Hub    *inventory.Hub // a hub of its own: the deliveries of a process read the feed once
	Ledger LedgerReader   // nil: no replay beyond the Redis retention
	Prior  PriorReader    // nil: the level before a reserve, release or set_safety is only known from the feed
	Locker inventory.Locker
	Sealer *Sealer
	Sender *Sender
	// Retention is the Redis feed's (--changes-retention).
	Retention time.Duration
	// RetryMin and RetryMax bound the backoff between attempts of a message (5 s, 1 h);
	// GiveUp is how long a message is retried before the subscription turns failing (24 h).
	RetryMin, RetryMax, GiveUp time.Duration
	// Fill is how long a stock.changed message waits to fill (1 s).
	Fill time.Duration
	// Poll is how often the subscriptions are re-read for changes made elsewhere (2 s).
	Poll time.Duration
	// LogRetention is how long the delivery log keeps attempts (7 days).
	LogRetention time.Duration
	Observer     Observer
	Logger       *slog.Logger
	Now          func() time.Time
	// Tracer, when set (tracing on), makes a client span of every attempt and sends its
	// context on in a traceparent header (with Propagator).
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
}

// Observer hears what the deliveries do, for metrics kept outside the domain.
type Observer interface {
	Attempted(outcome string, took time.Duration) // one attempt: delivered, failed (an answer), error (none)
	Lag(sub string, lag time.Duration)            // how old the oldest undelivered change is
	Failing(sub string, since time.Duration)      // how long the current message has failed (0: fine)
	Gone(sub string)                              // the subscription is no longer delivered here
	Partitions(delta int)                         // partitions this process delivers
	GaveUp(partition, n int)                      // subscriptions of a held partition that are failing (−1: no longer held)
	Pended(took time.Duration)                    // one transaction that kept messages pending
}

type noObserver struct{}

func (noObserver) Attempted(string, time.Duration) {}
func (noObserver) Lag(string, time.Duration)       {}
func (noObserver) Failing(string, time.Duration)   {}
func (noObserver) Gone(string)                     {}
func (noObserver) Partitions(int)                  {}
func (noObserver) GaveUp(int, int)                 {}
func (noObserver) Pended(time.Duration)            {}

// Partitions is how many delivery locks there are: a subscription belongs to one (by a hash
// of its id), and the instance that holds a partition's lock delivers all its
// subscriptions. 1,000 subscriptions cost 16 locks, not 1,000.
const Partitions = 16

// PartitionOf is the partition of subscription id.
func PartitionOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % Partitions)
}

// Dispatcher is the use case of design §14's delivery: for every partition it can lock, it
// runs one deliverer per active subscription, each from the subscription's own position.
type Dispatcher struct {
	o    Options
	kick chan struct{}
	gens atomic.Pointer[map[string]Generation] // the last poll of the subscriptions
}

// NewDispatcher returns a Dispatcher.
func NewDispatcher(o Options) *Dispatcher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RetryMin, 5*time.Second)
	def(&o.RetryMax, time.Hour)
	def(&o.GiveUp, 24*time.Hour)
	def(&o.Fill, time.Second)
	def(&o.Poll, 2*time.Second)
	def(&o.LogRetention, 7*24*time.Hour)
	def(&o.Retention, 48*time.Hour)
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Dispatcher{o: o, kick: make(chan struct{}, 1)}
}

// Kick makes the partitions this process holds re-read the subscriptions now (an admin
// change made here).
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. It reads the subscriptions' generations once per Poll (or
// at a Kick) for every partition, so the poll costs one query whatever the partitions.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	kicks := make([]chan struct{}, Partitions)
	for p := range Partitions {
		kicks[p] = make(chan struct{}, 1)
		wg.Go(func() { d.partition(ctx, p, kicks[p]) })
	}
	wg.Go(func() { d.prune(ctx) })
	var lastLog time.Time
	for ctx.Err() == nil {
		if gens, err := d.o.Store.Generations(ctx); err != nil {
			if ctx.Err() == nil && time.Since(lastLog) > 10*time.Second {
				d.o.Logger.Warn("webhook subscriptions could not be read; retrying", "err", err)
				lastLog = time.Now()
			}
		} else {
			d.gens.Store(&gens)
			for _, k := range kicks {
				select {
				case k <- struct{}{}:
				default:
				}
			}
		}
		t := time.NewTimer(d.o.Poll)
		select {
		case <-ctx.Done():
		case <-d.kick:
		case <-t.C:
		}
		t.Stop()
	}
	wg.Wait()
}

func (d *Dispatcher) prune(ctx context.Context) {
	for {
		if n, err := d.o.Store.Prune(ctx, d.o.Now().Add(-d.o.LogRetention)); err != nil && ctx.Err() == nil {
			d.o.Logger.Warn("webhook delivery log retention failed; retried in an hour", "err", err)
		} else if n > 0 {
			d.o.Logger.Info("webhook delivery log retention", "dropped", n)
		}
		if !sleep(ctx, time.Hour) {
			return
		}
	}
}

// partition holds partition p's lock and delivers its subscriptions while it holds it.
func (d *Dispatcher) partition(ctx context.Context, p int, kick <-chan struct{}) {
	for ctx.Err() == nil {
		token, release, err := d.o.Locker.Hold(ctx, fmt.Sprintf("webhooks-%d", p), 0)
		if err == nil {
			d.o.Observer.Partitions(1)
			err = d.serve(ctx, p, token, kick)
			d.o.Observer.Partitions(-1)
			d.o.Observer.GaveUp(p, -1)
			_ = release(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return
		}
		d.o.Logger.Warn("webhook partition stopped; starting over", "partition", p, "err", err)
		sleep(ctx, time.Second)
	}
}

type running struct {
	gen    int64
	cancel context.CancelFunc
	done   chan struct{}
	err    error     // why it ended (nil: it ended because the subscription is not active)
	retry  time.Time // when an ended run with an error starts again
}

// serve runs the deliverers of partition p under token until ctx ends or a deliverer finds
// itself fenced (another instance took the partition).
func (d *Dispatcher) serve(ctx context.Context, p int, token int64, kick <-chan struct{}) error {
	runs := map[string]*running{}
	defer func() {
		for id, r := range runs {
			r.cancel()
			<-r.done
			d.o.Observer.Gone(id)
		}
	}()
	for {
		var gens map[string]Generation
		if g := d.gens.Load(); g != nil {
			gens = *g
		}
		now := d.o.Now()
		for id, r := range runs {
			select {
			case <-r.done:
				if errors.Is(r.err, ErrFenced) {
					return r.err
				}
			default:
			}
			if gen, ok := gens[id]; !ok || gen.Generation != r.gen {
				r.cancel()
				<-r.done
				delete(runs, id)
				d.o.Observer.Gone(id)
			}
		}
		failing := 0
		for id, gen := range gens {
			if PartitionOf(id) != p {
				continue
			}
			if gen.Status == Failing {
				failing++
			}
			if r, ok := runs[id]; ok {
				select {
				case <-r.done:
					if r.err == nil || now.Before(r.retry) {
						continue
					}
				default:
					continue
				}
			}
			rctx, cancel := context.WithCancel(ctx)
			r := &running{gen: gen.Generation, cancel: cancel, done: make(chan struct{})}
			runs[id] = r
			go func() {
				defer close(r.done)
				if r.err = d.deliver(rctx, id, token); errors.Is(r.err, ErrStale) {
					r.err = nil // changed since it was claimed: the next poll starts the new generation
				}
				if r.err != nil && rctx.Err() == nil {
					r.retry = d.o.Now().Add(time.Second)
					if !errors.Is(r.err, ErrFenced) {
						d.o.Logger.Warn("webhook delivery stopped; starting over", "subscription", id, "err", r.err)
					}
				}
			}()
		}
		d.o.Observer.GaveUp(p, failing)
		// Woken by the next poll; a second besides, to retry runs that ended with an error.
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// run is one deliverer's state: the subscription as it was claimed and what it sends with.
// Three goroutines share it, one after the other on each message. The follower (follow)
// reads the feed, judges levels and forms messages; the pender (pendLoop) keeps them
// pending; the sender (sendLoop) sends them and writes what was delivered. So a backlog's
// reading, its PostgreSQL writes and its HTTP requests overlap instead of taking turns.
type run struct {
	d       *Dispatcher
	id      string
	grant   Grant
	sub     Subscription
	secrets []string
	// The follower's: seq of the last message formed; ready, the messages formed and not
	// yet handed on.
	seq   int64
	judge *judge
	ready []Message
	// group is how many formed messages the follower gathers before it hands them on while
	// the reader has more at hand (a backlog): 1 at first, twice as many after each group,
	// up to window; handing on what it holds because the feed caught up starts it at 1
	// again. So a backlog's first message goes out as soon as it is formed instead of after
	// a window of them (a batch-100 backlog's first delivery came 25 ms later). A batch of a
	// live feed is handed on whole at its end, as before.
	group int
	// Under mu: done, the messages delivered and not yet written (through seq through; the
	// position after them doneAfter, its last change applied at doneAt); writes counts the
	// writes of done (linger runs from the first delivery after the last). mu is held only
	// to read or change them: a write takes what is done under it, and drops what it wrote
	// once written. The writes themselves (a pend carries the deliveries, the sender writes
	// them) take turns under wmu, so no two carry the same delivery and the position never
	// moves back; the sender goes on delivering while a pend is written.
	wmu       sync.Mutex
	mu        sync.Mutex
	done      []Attempt
	through   int64
	doneAfter Position
	doneAt    time.Time
	writes    int
}

// handoff is what the follower hands on: messages formed (kept pending, then sent), and,
// when the follower holds nothing more (no changes gathered, no message formed), clear: the
// position up to which every change is in these messages or carries none, its last change
// applied at clearAt.
type handoff struct {
	msgs    []Message
	clear   Position
	clearAt time.Time
}

// While the reader has more at hand (a backlog), a deliverer gathers up to window formed
// messages, or windowChanges changes, or those of Fill, before it hands them on, to be
// written pending and sent while the follower reads on (a group is what is left to write
// and send once the reading is done: large ones make the last of a backlog late; batch
// 1000's 64 messages were a third of a 200,000-change backlog). What it delivered is
// written with the next of those writes, after recordEvery messages, or linger after the
// first of them: a live feed costs about one transaction a message, a backlog one for
// many, and GET is behind by at most linger. linger is longer than two Fills, so a subscription sending a message a
// second (one that fills for a second each time) writes each delivery with the next pend,
// not alone in between (that second transaction per message was most of what 100
// subscriptions cost PostgreSQL: docs/benchmarks.md).
const (
	window        = 64
	windowChanges = 8000
	recordEvery   = 256
	linger        = 2500 * time.Millisecond
	// gather is how long ready messages wait for the page after a full one (it comes at
	// once in a backlog; when it does not, the feed ended exactly at a page's end).
	gather = 100 * time.Millisecond
	// advanceEvery is how often a position that only passed changes no message carries is
	// written (a restart reads them again, and passes them again).
	advanceEvery = 5 * time.Second
)

// deliver runs one subscription: the messages left pending first, then the feed from its
// position. It returns nil when the subscription is not (or no longer) active.
func (d *Dispatcher) deliver(ctx context.Context, id string, token int64) error {
	st, err := d.o.Store.Claim(ctx, id, token)
	if err != nil || st.Sub.Status != Active {
		return err
	}
	sealed, err := d.o.Store.Secrets(ctx, id, d.o.Now())
	if err != nil {
		return err
	}
	r := &run{d: d, id: id, grant: st.Grant, sub: st.Sub, seq: st.Seq, judge: newJudge(d.o.Prior), group: 1}
	for _, s := range sealed {
		plain, err := d.o.Sealer.Open(id, s)
		if err != nil {
			return err
		}
		r.secrets = append(r.secrets, plain)
	}
	defer d.o.Observer.Failing(id, 0)
	// What was delivered and not yet written is written on the way out, once the sender has
	// stopped (a fenced or stale grant changes nothing; a crash leaves it to be sent again,
	// with its id).
	defer func() {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = r.write(wctx)
	}()
	for _, m := range st.Pending {
		if done, err := r.send(ctx, m); err != nil || !done {
			return err
		}
	}
	pos := st.Position
	if n := len(st.Pending); n > 0 {
		pos = st.Pending[n-1].After
	}
	pos = caughtUpFrom(pos, st.AsOf, d.o.Now(), d.o.Retention)
	rctx, stop := context.WithCancel(ctx)
	batches := make(chan batch, 4)
	go d.read(rctx, pos, batches)
	handoffs, pended := make(chan handoff, 1), make(chan handoff, 1)
	var pendErr, sendErr error
	pending, sending := make(chan struct{}), make(chan struct{}) // closed when each stops
	go func() {
		defer close(pending)
		pendErr = r.pendLoop(rctx, handoffs, pended, sending)
	}()
	go func() {
		defer close(sending)
		sendErr = r.sendLoop(rctx, pos, pended)
	}()
	err = r.follow(ctx, pos, batches, handoffs, pending)
	stop()
	<-pending
	<-sending
	err = cmp.Or(err, pendErr, sendErr)
	if errors.Is(err, errStopped) || errors.Is(err, ErrStale) {
		return nil // failing, or changed: the dispatcher starts the new generation
	}
	return err
}

// follow turns the feed's batches into messages and hands them on, until ctx ends, the feed
// fails or the pender stops (pending closed: its error, or the sender's, is the run's).
func (r *run) follow(ctx context.Context, pos Position, batches <-chan batch, handoffs chan<- handoff, pending <-chan struct{}) error {
	var acc []inventory.Change
	fill := time.NewTimer(time.Hour)
	fill.Stop()
	defer fill.Stop()
	held := time.NewTimer(time.Hour) // armed when ready messages wait for the page after a full one
	held.Stop()
	defer held.Stop()
	holding := false
	var lastAt, readySince time.Time
	// hand hands on the messages ready, and, when past says pos is past all of them and
	// nothing is gathered, pos. It answers false when the run is over. A position alone
	// never waits: a later one says as much.
	hand := func(past bool) bool {
		h := handoff{msgs: r.ready}
		if past && len(acc) == 0 {
			h.clear, h.clearAt = pos, lastAt
		}
		if len(h.msgs) == 0 {
			if h.clear != "" {
				select {
				case handoffs <- h:
				default:
				}
			}
			return true
		}
		select {
		case handoffs <- h:
			r.ready = nil
			return true
		case <-ctx.Done():
		case <-pending:
		}
		return false
	}
	for {
		var fillC <-chan time.Time
		if len(acc) > 0 {
			fillC = fill.C
		}
		var heldC <-chan time.Time
		if holding && len(r.ready) > 0 {
			heldC = held.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-pending:
			return nil
		case <-heldC: // the page after a full one did not come: the feed ended there
			holding, r.group = false, 1
			if !hand(true) {
				return nil
			}
		case <-fillC:
			r.group = 1 // a message a Fill: a live feed
			r.form(&acc, nil, pos)
			if !hand(true) {
				return nil
			}
		case b, ok := <-batches:
			if !ok {
				return nil
			}
			if b.err != nil {
				return b.err
			}
			for i, c := range b.changes {
				var alerts []Alert
				if r.sub.Matches(c) {
					if r.sub.Levels() {
						var err error
						if alerts, err = r.judge.judge(ctx, r.sub, c); err != nil {
							return err
						}
					}
					if r.sub.Wants(StockChanged) {
						if len(acc) == 0 {
							fill.Reset(r.d.o.Fill)
						}
						acc = append(acc, c)
					}
				}
				if len(acc) >= r.sub.Batch || len(alerts) > 0 {
					at, err := b.after(i)
					if err != nil {
						return err
					}
					if len(r.ready) == 0 {
						readySince = time.Now()
					}
					r.form(&acc, alerts, at)
					if full(r.ready, window) || b.more && full(r.ready, r.group) || time.Since(readySince) >= r.d.o.Fill {
						if !hand(false) {
							return nil
						}
						if b.more {
							r.group = min(2*r.group, window)
						}
					}
				}
				lastAt = c.At
			}
			pos = b.end
			if !b.more {
				r.group = 1 // caught up, for now: the next backlog starts small
			}
			// Messages formed are handed on when the reader has nothing more at hand and the
			// feed nothing more right after (a backlog hands on its growing groups above, up
			// to a window, or a Fill's worth, per pend). With nothing held, the position past this batch goes
			// on, for the sender to write now and then.
			switch {
			case len(acc) == 0 && len(r.ready) == 0:
				hand(true)
			case len(batches) > 0:
			case !b.more:
				holding = false
				if !hand(true) {
					return nil
				}
			case len(r.ready) > 0 && !holding:
				held.Reset(gather)
				holding = true
			}
		}
	}
}

// pendLoop is the pender: it keeps the messages of each handoff pending (with what was
// delivered before them, in one write; handoffs waiting together in one) and passes the
// handoffs to the sender, until ctx ends or the sender stops.
func (r *run) pendLoop(ctx context.Context, handoffs <-chan handoff, pended chan<- handoff, sending <-chan struct{}) error {
	for {
		var h handoff
		select {
		case h = <-handoffs:
		case <-ctx.Done():
			return nil
		case <-sending:
			return nil
		}
		for more := true; more && !full(h.msgs, window); {
			select {
			case next := <-handoffs:
				h.msgs, h.clear, h.clearAt = append(h.msgs, next.msgs...), next.clear, next.clearAt
			default:
				more = false
			}
		}
		if err := r.pend(ctx, h.msgs); err != nil {
			return err
		}
		select {
		case pended <- h:
		case <-ctx.Done():
			return nil
		case <-sending:
			return nil
		}
	}
}

// full reports whether msgs make a group to hand on: n messages, or windowChanges changes.
func full(msgs []Message, n int) bool {
	if len(msgs) >= n {
		return true
	}
	changes := 0
	for _, m := range msgs {
		changes += m.Changes
	}
	return changes >= windowChanges
}

// pend keeps msgs pending, with what was delivered before them, so that a restart sends
// them again with the same ids.
func (r *run) pend(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	return r.record(ctx, msgs)
}

// sendLoop is the sender: it sends each handoff's messages (pending by then) in order, and
// writes what was delivered linger after the first delivery not yet written, with the
// position past changes no message carries when the follower said it held none; such a
// position alone is written every advanceEvery. It returns nil when ctx ends.
func (r *run) sendLoop(ctx context.Context, pos Position, pended <-chan handoff) error {
	idle := time.NewTimer(time.Hour) // armed from the first delivery not yet written
	idle.Stop()
	defer idle.Stop()
	armed, armedAt := false, 0 // armedAt: r.writes when it was armed
	var clear Position         // the latest position past everything handed on and delivered
	var clearAt time.Time
	saved, savedAt := pos, time.Now()
	for {
		r.mu.Lock()
		if len(r.done) == 0 {
			armed = false
		} else if !armed || armedAt != r.writes {
			idle.Reset(linger) // the deliveries it was armed for were written since
			armed, armedAt = true, r.writes
		}
		r.mu.Unlock()
		var idleC <-chan time.Time
		if armed {
			idleC = idle.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-idleC:
			// linger since the first delivery not yet written: write it, with the position
			// past what no message carries.
			armed = false
			r.mu.Lock()
			if clear != "" && len(r.done) > 0 {
				r.doneAfter, r.doneAt = clear, clearAt
				saved, savedAt = clear, time.Now()
			}
			r.mu.Unlock()
			if err := r.write(ctx); err != nil {
				return err
			}
		case h := <-pended:
			clear = ""
			for _, m := range h.msgs {
				if done, err := r.send(ctx, m); err != nil || !done {
					if err == nil {
						err = errStopped
					}
					return err
				}
				r.mu.Lock()
				full := len(r.done) >= recordEvery
				r.mu.Unlock()
				if full {
					if err := r.write(ctx); err != nil {
						return err
					}
				}
			}
			r.d.o.Observer.Lag(r.id, 0) // everything handed on so far is delivered
			if len(h.msgs) > 0 {
				saved = h.msgs[len(h.msgs)-1].After
			}
			if h.clear == "" {
				continue
			}
			clear, clearAt = h.clear, h.clearAt
			// A position past changes no message carries is saved now and then, so a
			// restart does not read them again.
			r.mu.Lock()
			nothingDone := len(r.done) == 0
			r.mu.Unlock()
			if nothingDone && clear != saved && time.Since(savedAt) >= advanceEvery {
				if err := r.d.o.Store.Advance(ctx, r.id, r.grant, clear, clearAt); err != nil {
					return err
				}
				saved, savedAt = clear, time.Now()
			}
		}
	}
}

// form makes the messages of what acc holds (one stock.changed message), then of alerts,
// each after position at, and adds them to those ready to send.
func (r *run) form(acc *[]inventory.Change, alerts []Alert, at Position) {
	now := r.d.o.Now()
	if len(*acc) > 0 {
		r.seq++
		m := changedMessage(messageID(r.id, r.seq), *acc, at, now)
		m.Seq = r.seq
		r.ready = append(r.ready, m)
		*acc = (*acc)[:0] // the body holds the changes: acc is kept for the next (grown anew, it was 40 KiB of garbage a batch-100 message)
	}
	for _, a := range alerts {
		r.seq++
		m := alertMessage(messageID(r.id, r.seq), a, at, now)
		m.Seq = r.seq
		r.ready = append(r.ready, m)
	}
}

// write writes what was delivered and not yet written.
func (r *run) write(ctx context.Context) error { return r.record(ctx, nil) }

// record writes what was delivered and not yet written, with pend kept pending (if any),
// under wmu, and drops from done what it wrote.
func (r *run) record(ctx context.Context, pend []Message) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	p := Progress{Delivered: slices.Clone(r.done), Through: r.through, After: r.doneAfter, At: r.doneAt}
	r.mu.Unlock()
	n := len(p.Delivered)
	if n == 0 && len(pend) == 0 {
		return nil
	}
	if len(pend) > 0 {
		p.Pend, p.Seq = pend, pend[len(pend)-1].Seq
	}
	start := time.Now()
	if err := r.d.o.Store.Progress(ctx, r.id, r.grant, p); err != nil {
		return err
	}
	if len(pend) > 0 {
		r.d.o.Observer.Pended(time.Since(start))
	}
	if n > 0 {
		r.mu.Lock()
		r.done = r.done[:copy(r.done, r.done[n:])]
		r.writes++
		r.mu.Unlock()
	}
	return nil
}

var errStopped = errors.New("webhook: the subscription turned failing")

// send attempts m until it is delivered (true), the subscription gives up on it (false), or
// ctx ends.
func (r *run) send(ctx context.Context, m Message) (bool, error) {
	o := r.d.o
	for ctx.Err() == nil {
		now := o.Now()
		if m.FirstAttempt.IsZero() {
			m.FirstAttempt = now
		}
		if m.Attempts > 0 && now.Sub(m.FirstAttempt) >= o.GiveUp {
			if err := r.write(ctx); err != nil {
				return false, err
			}
			o.Logger.Warn("webhook failing: a message failed for the give-up time; the subscription waits for an operator",
				"subscription", r.id, "message_id", m.ID, "attempts", m.Attempts)
			return false, o.Store.GiveUp(ctx, r.id, r.grant, fmt.Sprintf("message %s failed for %s", m.ID, o.GiveUp))
		}
		m.Attempts++
		headers, err := Headers(r.secrets, m.ID, now, m.Body)
		if err != nil {
			return false, err
		}
		o.Observer.Lag(r.id, now.Sub(m.First))
		start := time.Now()
		status, sendErr := r.attempt(ctx, m, headers)
		took := time.Since(start)
		if ctx.Err() != nil {
			return false, nil // stopped mid-attempt: the message stays pending
		}
		a := Attempt{Message: m.ID, Type: m.Type, At: now, Attempt: m.Attempts, Status: status, Latency: took, Changes: m.Changes}
		if sendErr == nil {
			o.Observer.Attempted("delivered", took)
			o.Observer.Failing(r.id, 0)
			r.mu.Lock()
			r.done = append(r.done, a)
			r.through, r.doneAfter, r.doneAt = m.Seq, m.After, m.First
			r.mu.Unlock()
			return true, nil
		}
		a.Error = sendErr.Error()
		outcome := "failed"
		if status == 0 {
			outcome = "error"
		}
		o.Observer.Attempted(outcome, took)
		o.Observer.Failing(r.id, o.Now().Sub(m.FirstAttempt))
		if err := r.write(ctx); err != nil { // the log in order, and a the first pending
			return false, err
		}
		if err := o.Store.Attempted(ctx, r.id, r.grant, a); err != nil {
			return false, err
		}
		if m.Attempts == 1 || m.Attempts%10 == 0 {
			o.Logger.Info("webhook attempt failed; retrying", "subscription", r.id, "message_id", m.ID, "attempt", m.Attempts, "status", status, "err", sendErr)
		}
		if !sleep(ctx, r.backoff(m.Attempts)) {
			return false, nil
		}
	}
	return false, nil
}

// attempt sends m once, in a span when tracing is on.
func (r *run) attempt(ctx context.Context, m Message, headers map[string]string) (int, error) {
	o := r.d.o
	if o.Tracer == nil {
		return o.Sender.Send(ctx, r.sub.URL, headers, m.Body)
	}
	ctx, span := o.Tracer.Start(ctx, "webhook deliver", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("jaego.webhook", r.id), attribute.String("jaego.message_id", m.ID), attribute.String("jaego.message_type", m.Type),
		attribute.Int("jaego.attempt", m.Attempts), attribute.Int("jaego.changes", m.Changes), attribute.String("url.full", r.sub.URL)))
	if o.Propagator != nil && span.SpanContext().IsSampled() {
		carrier := propagation.MapCarrier{}
		o.Propagator.Inject(ctx, carrier)
		for k, v := range carrier {
			headers[k] = v
		}
	}
	status, err := o.Sender.Send(ctx, r.sub.URL, headers, m.Body)
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	tracing.End(span, err)
	return status, err
}

// backoff is the wait after the n-th failed attempt: RetryMin doubling up to RetryMax,
// with jitter (a random point in its upper half), so receivers that come back are not hit by
// every subscription at once.
func (r *run) backoff(n int) time.Duration {
	d := r.d.o.RetryMin
	for i := 1; i < n && d < r.d.o.RetryMax; i++ {
		d *= 2
	}
	d = min(d, r.d.o.RetryMax)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// batch is a run of changes read in feed order: they come after position start, and end is
// the position after all of them.
type batch struct {
	changes    []inventory.Change
	start, end Position
	more       bool                          // the feed held more right after these (inventory.TailBatch.More)
	at         func(i int) (Position, error) // the position right after changes[i]
	err        error
}

func (b batch) after(i int) (Position, error) {
	if i == len(b.changes)-1 {
		return b.end, nil
	}
	return b.at(i)
}

var errDropped = errors.New("dropped by the hub")

// read reads from pos into out until ctx ends or a read fails (its error is the last
// batch): the ledger first when pos is in it, then the feed through the hub (one read of the
// feed for every subscription of the process; one that falls behind the hub reads on its
// own until it catches up, and one the hub drops, because its deliveries are slow, follows
// again from where it was).
func (d *Dispatcher) read(ctx context.Context, pos Position, out chan<- batch) {
	defer close(out)
	put := func(b batch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if pos.ledger() {
		next, err := d.readLedger(ctx, pos, put)
		if err != nil {
			put(batch{err: err})
			return
		}
		if next == "" {
			return
		}
		pos = next
	}
	for ctx.Err() == nil {
		err := d.o.Hub.Follow(ctx, string(pos), func() {}, func(tb inventory.TailBatch) error {
			if tb.Dropped {
				pos = Position(tb.Cursor)
				return errDropped
			}
			if len(tb.Changes) == 0 {
				return nil // a keep-alive
			}
			start, changes := pos, tb.Changes
			// The positions inside a batch are asked for in rising order (one per message
			// formed): each moves on from the one before, not from the batch's start.
			var mover inventory.Mover
			lastI := -1
			b := batch{changes: changes, start: start, end: Position(tb.Cursor), more: tb.More, at: func(i int) (Position, error) {
				if mover == nil || i < lastI {
					m, err := d.o.Feed.Mover(string(start))
					if err != nil {
						return "", err
					}
					mover, lastI = m, -1
				}
				c, err := mover.Past(changes[lastI+1 : i+1])
				if err != nil {
					return "", err
				}
				lastI = i
				return Position(c), nil
			}}
			pos = b.end
			if !put(b) {
				return ctx.Err()
			}
			return nil
		})
		if errors.Is(err, errDropped) {
			continue
		}
		if err != nil && ctx.Err() == nil {
			put(batch{err: err})
		}
		return
	}
}

// readLedger reads a ledger position's changes and answers the feed position that follows
// them ("" when ctx ended).
func (d *Dispatcher) readLedger(ctx context.Context, pos Position, put func(batch) bool) (Position, error) {
	if d.o.Ledger == nil {
		return "", errors.New("webhook: a replay beyond the Redis retention needs the durable copy's ledger")
	}
	l, err := parseLedger(pos)
	if err != nil {
		return "", err
	}
	const page = 1000
	for ctx.Err() == nil {
		changes, err := d.o.Ledger.LedgerChanges(ctx, l.from, l.until, l.after, page)
		if err != nil {
			return "", err
		}
		if len(changes) == 0 {
			return Position(d.o.Feed.CursorAt(l.until)), nil
		}
		kept := changes
		if l.passed != "" { // a cursor that fell behind: what it passed was delivered
			kept = kept[:0:0]
			for _, c := range changes {
				if k, _, err := d.o.Feed.Advance(l.passed, []inventory.Change{c}); err != nil {
					return "", err
				} else if len(k) == 1 {
					kept = append(kept, c)
				}
			}
		}
		start := l.position()
		l.after = changes[len(changes)-1].ID
		if len(kept) > 0 {
			base := l
			b := batch{changes: kept, start: start, end: l.position(), at: func(i int) (Position, error) {
				p := base
				p.after = kept[i].ID
				return p.position(), nil
			}}
			if !put(b) {
				return "", nil
			}
		}
	}
	return "", nil
}
