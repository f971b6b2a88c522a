package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jaego/jaego/internal/jaego"
)

// The live tail (design §4): a Hub reads the change feed once for all its subscribers and
// hands each the changes after its own position. A subscriber too slow to take them is
// dropped, told where to resume, and never slows the others.

// TailFeed is a change feed a Hub can serve: besides reading, it compares and moves
// cursors, so that subscribers that join from their own cursors neither miss nor repeat a
// change.
type TailFeed interface {
	ChangeFeed
	// Behind reports whether cursor a has not yet passed everything cursor b has.
	Behind(a, b string) (bool, error)
	// Advance moves cursor past changes (read after some cursor, in feed order): the
	// changes it was not yet past, and the cursor after them.
	Advance(cursor string, changes []Change) ([]Change, string, error)
	// Mover is cursor, to be moved past the changes read after it, batch after batch:
	// Advance without the changes, and without reading the cursor again for each batch.
	Mover(cursor string) (Mover, error)
	// Follows is nil when cursor is open-ended (it can follow the feed forever).
	Follows(cursor string) error
}

// Mover moves a cursor past the changes read after it, in feed order.
type Mover interface {
	// Past moves the cursor past changes and answers it.
	Past(changes []Change) (string, error)
}

// TailBatch is what a subscriber receives: changes and the cursor after them. The last
// batch of a dropped subscriber has Dropped set, no changes, and the cursor to resume from.
// More is set when the read that gave these filled its page: the feed held more right after
// them, and the next batch is coming at once (a catch-up, a burst), not at the next change.
type TailBatch struct {
	Changes []Change
	Cursor  string
	Dropped bool
	More    bool
	json    *sharedJSON // the changes as JSON, encoded once for every subscriber that gets them all
}

type sharedJSON struct {
	once sync.Once
	b    []byte
	err  error
}

// JSON is {"changes":[…]}, encoded once per batch however many subscribers it goes to.
func (b TailBatch) JSON() ([]byte, error) {
	enc := b.json
	if enc == nil {
		enc = &sharedJSON{}
	}
	enc.once.Do(func() { enc.b, enc.err = json.Marshal(map[string]any{"changes": b.Changes}) })
	return enc.b, enc.err
}

// ErrTooManyStreams refuses a subscriber beyond the hub's cap.
var ErrTooManyStreams = &jaego.Error{Code: jaego.CodeTooManyStreams,
	Detail: "this instance serves as many live streams as it may (--max-streams); retry later or on another instance"}

// keepAlive is how often an idle stream hears from the hub: proxies close silent streams,
// and a subscriber whose client left is noticed at its second write after that (the first
// one to a closed socket is buffered), so within 2 × keepAlive. A comment line is a few
// bytes; a thousand subscribers cost 200 writes a second.
const keepAlive = 5 * time.Second

// HubOptions configures a Hub. The zero value of every field means its default.
type HubOptions struct {
	MaxStreams int           // subscribers at most; default 256
	MaxPerKey  int           // subscribers of one API key (jaego.Caller) at most; default MaxStreams/4
	Buffer     int           // batches queued for a subscriber before it is dropped; default 64
	Page       int           // changes the hub reads at once; default 1000
	Wait       time.Duration // how long one wait for new changes blocks; default 5s
	// Changed, when set, is how the hub waits for new changes: a channel closed when one
	// arrives after the call (a Redis feed's Watcher); without it, the feed's Wait.
	Changed func() <-chan struct{}
	// Coalesce, when set, is how long the hub lets changes gather after it is woken before
	// it reads: fewer, larger batches for its subscribers, each later by up to that much
	// (webhook deliveries, which wait up to a second to fill a message anyway, use it; the
	// live tail does not).
	Coalesce time.Duration
	// Observer hears what the hub does (the metrics are the edge's: inventory/prom); default:
	// nobody.
	Observer HubObserver
	Logger   *slog.Logger
}

// HubObserver hears what a Hub does, for metrics kept outside the domain.
type HubObserver interface {
	Subscribers(delta int) // a subscriber joined (+1) or left (−1)
	Dropped()              // a subscriber too slow was dropped
	Read()                 // one read of the feed, for every subscriber
	// CaughtUp: a subscriber read changes on its own before joining, paged or streamed.
	CaughtUp(streamed bool, changes int)
}

type noHubObserver struct{}

func (noHubObserver) Subscribers(int)    {}
func (noHubObserver) Dropped()           {}
func (noHubObserver) Read()              {}
func (noHubObserver) CaughtUp(bool, int) {}

// Hub is the live tail of one process.
type Hub struct {
	feed TailFeed
	o    HubOptions
	open atomic.Int64
	kick chan struct{}

	mu    sync.Mutex
	head  string // the cursor after the last batch read ("" until the first subscriber)
	subs  map[*subscriber]struct{}
	byKey map[string]int // open streams per API key
}

type subscriber struct {
	c      chan TailBatch
	cursor string // after the last batch queued (under Hub.mu)
}

// NewHub returns a hub on feed; Run reads for it.
func NewHub(feed TailFeed, o HubOptions) *Hub {
	if o.MaxStreams <= 0 {
		o.MaxStreams = 256
	}
	if o.MaxPerKey <= 0 {
		o.MaxPerKey = max(1, o.MaxStreams/4)
	}
	if o.Buffer <= 0 {
		o.Buffer = 64
	}
	if o.Page <= 0 {
		o.Page = 1000
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = noHubObserver{}
	}
	return &Hub{feed: feed, o: o, kick: make(chan struct{}, 1), subs: map[*subscriber]struct{}{}, byKey: map[string]int{}}
}

// Follow streams the changes after cursor ("" = from now) to emit until ctx ends, emit
// fails, or the subscriber is dropped (then its last batch has Dropped set). started is
// called once the subscriber is admitted (under the cap, its cursor good): errors before
// it are the request's, after it the stream's. An idle stream gets an empty batch every
// keepAlive. It first reads on its own from an older cursor, then joins the hub's reads; it
// runs in the caller's goroutine: a subscriber costs no goroutine of its own.
func (h *Hub) Follow(ctx context.Context, cursor string, started func(), emit func(TailBatch) error) error {
	if h.open.Add(1) > int64(h.o.MaxStreams) {
		h.open.Add(-1)
		return ErrTooManyStreams
	}
	defer h.open.Add(-1)
	if key := jaego.Caller(ctx); key != "" {
		h.mu.Lock()
		if h.byKey[key] >= h.o.MaxPerKey {
			h.mu.Unlock()
			return &jaego.Error{Code: jaego.CodeTooManyStreams, Detail: fmt.Sprintf(
				"key %s has as many live streams on this instance as one key may (--max-streams-per-key %d); close one, or retry later", key, h.o.MaxPerKey)}
		}
		h.byKey[key]++
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			if h.byKey[key]--; h.byKey[key] == 0 {
				delete(h.byKey, key)
			}
			h.mu.Unlock()
		}()
	}
	h.o.Observer.Subscribers(1)
	defer h.o.Observer.Subscribers(-1)
	s := &subscriber{c: make(chan TailBatch, h.o.Buffer)}
	if cursor == "" {
		// From now: it joins at the hub's head before it is told it started, so that
		// whatever is applied after the client heard "started" reaches it.
		if _, err := h.join(ctx, s, ""); err != nil {
			return err
		}
		started()
	} else {
		if err := h.feed.Follows(cursor); err != nil {
			return err
		}
		// The first page is read before the stream starts, so that a cursor the feed no
		// longer holds (ErrExpired) is refused as the request's error, not a stream's end.
		first, err := h.feed.Changes(ctx, time.Time{}, time.Time{}, cursor, h.o.Page)
		if err != nil {
			return err
		}
		started() // from its own cursor: nothing after it can be missed
		if err := h.catchUp(ctx, s, cursor, first, emit); err != nil {
			return err
		}
	}
	defer h.leave(s)
	alive := time.NewTicker(keepAlive)
	defer alive.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-alive.C:
			if err := emit(TailBatch{}); err != nil {
				return err
			}
		case b, ok := <-s.c:
			if !ok {
				h.mu.Lock()
				resume := s.cursor
				h.mu.Unlock()
				return emit(TailBatch{Cursor: resume, Dropped: true})
			}
			if err := emit(b); err != nil {
				return err
			}
		}
	}
}

// catchUp reads on its own from cursor (page is its first read) until s can join the hub
// there. It goes on as long as it makes progress, however far behind it starts; only a
// cursor that stays behind the hub with nothing left to read, maxIdle times in a row, is
// given up on. A full page says a backlog: what the feed holds after it is streamed
// (catchUpStream) rather than paged, since every page of an open cursor reads its streams
// afresh.
func (h *Hub) catchUp(ctx context.Context, s *subscriber, cursor string, page ChangePage, emit func(TailBatch) error) error {
	const maxIdle = 100
	for idle := 0; ; {
		if len(page.Changes) > 0 {
			h.o.Observer.CaughtUp(false, len(page.Changes))
			if err := emit(TailBatch{Changes: page.Changes, Cursor: page.Next, More: len(page.Changes) >= h.o.Page}); err != nil {
				return err
			}
			idle = 0
		} else if idle++; idle > maxIdle {
			return errors.New("live tail: the cursor does not catch up with the feed")
		}
		if page.Next != "" {
			cursor = page.Next
		}
		joined, err := h.join(ctx, s, cursor)
		if err != nil || joined {
			return err
		}
		if len(page.Changes) >= h.o.Page {
			if cursor, err = h.catchUpStream(ctx, cursor, emit); err != nil {
				return err
			}
			if joined, err := h.join(ctx, s, cursor); err != nil || joined {
				return err
			}
		}
		if page, err = h.feed.Changes(ctx, time.Time{}, time.Time{}, cursor, h.o.Page); err != nil {
			return err
		}
	}
}

// catchUpStream emits every change the feed holds now after cursor, as the feed streams
// them (its reads of every stream ahead of the merge), each batch with the cursor after it;
// it answers the cursor after the last. A batch goes out once the next one is read, so
// that the last says it is the last (More unset).
func (h *Hub) catchUpStream(ctx context.Context, cursor string, emit func(TailBatch) error) (string, error) {
	var held TailBatch
	mover, err := h.feed.Mover(cursor)
	if err != nil {
		return "", err
	}
	_, err = h.feed.StreamChanges(ctx, time.Time{}, time.Time{}, cursor, func(changes []Change) error {
		next, err := mover.Past(changes)
		if err != nil {
			return err
		}
		cursor = next
		h.o.Observer.CaughtUp(true, len(changes))
		if len(held.Changes) > 0 {
			if err := emit(held); err != nil {
				return err
			}
		}
		held = TailBatch{Changes: changes, Cursor: next, More: true}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(held.Changes) > 0 {
		held.More = false
		if err := emit(held); err != nil {
			return "", err
		}
	}
	return cursor, nil
}

// join adds s at cursor when cursor has passed all the hub has read; "" joins at the
// hub's head. A hub without subscribers starts at the current end of the feed.
func (h *Hub) join(ctx context.Context, s *subscriber, cursor string) (bool, error) {
	h.mu.Lock()
	head := h.head
	h.mu.Unlock()
	if head == "" {
		pos, err := h.feed.Position(ctx)
		if err != nil {
			return false, err
		}
		h.mu.Lock()
		if h.head == "" {
			h.head = pos
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cursor == "" {
		cursor = h.head
	} else if behind, err := h.feed.Behind(cursor, h.head); err != nil {
		return false, err
	} else if behind {
		return false, nil
	}
	s.cursor = cursor
	h.subs[s] = struct{}{}
	select {
	case h.kick <- struct{}{}:
	default:
	}
	return true, nil
}

func (h *Hub) leave(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// Run reads the feed for the subscribers until ctx ends: a page from the head, handed to
// every subscriber; when the feed has no more, one wait for new changes (on a Redis feed,
// one blocking read per shard group). Nothing is read while nobody subscribes.
func (h *Hub) Run(ctx context.Context) {
	var lastLog time.Time
	for ctx.Err() == nil {
		h.mu.Lock()
		n, head := len(h.subs), h.head
		h.mu.Unlock()
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-h.kick:
			}
			continue
		}
		if head == "" { // lost (its range fell out of the retention): start again at the end
			pos, err := h.feed.Position(ctx)
			if err != nil {
				sleepOrDone(ctx, time.Second)
				continue
			}
			h.mu.Lock()
			h.head, head = pos, pos
			h.mu.Unlock()
		}
		var changed <-chan struct{}
		if h.o.Changed != nil {
			changed = h.o.Changed() // before the read: a change during it wakes the wait
		}
		h.o.Observer.Read()
		page, err := h.feed.Changes(ctx, time.Time{}, time.Time{}, head, h.o.Page)
		if err == nil && len(page.Changes) > 0 {
			h.broadcast(head, page)
		}
		if err == nil && len(page.Changes) < h.o.Page {
			if changed == nil {
				err = h.feed.Wait(ctx, page.Next, h.o.Wait)
			} else {
				t := time.NewTimer(h.o.Wait)
				select {
				case <-changed:
					if h.o.Coalesce > 0 {
						sleepOrDone(ctx, h.o.Coalesce)
					}
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
		}
		if err != nil && ctx.Err() == nil {
			if time.Since(lastLog) > 10*time.Second {
				h.o.Logger.Warn("live tail read failed; retrying", "err", err)
				lastLog = time.Now()
			}
			if errors.Is(err, ErrExpired) || jaego.CodeOf(err) == jaego.CodeInvalidCursor {
				h.mu.Lock()
				h.head = "" // start again at the end of the feed
				h.mu.Unlock()
			}
			sleepOrDone(ctx, time.Second)
		}
	}
}

func sleepOrDone(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// broadcast hands the page read after from to every subscriber, each from its own cursor;
// one whose queue is full is dropped.
func (h *Hub) broadcast(from string, page ChangePage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	whole, more := &sharedJSON{}, len(page.Changes) >= h.o.Page
	for s := range h.subs {
		b := TailBatch{Changes: page.Changes, Cursor: page.Next, More: more, json: whole}
		if s.cursor != from { // joined from its own cursor: it may be past some of these
			kept, next, err := h.feed.Advance(s.cursor, page.Changes)
			if err != nil { // cannot be for a cursor the feed made; resume from where it is
				h.o.Logger.Error("live tail: a subscriber's cursor does not advance; dropping it", "err", err)
				delete(h.subs, s)
				close(s.c)
				h.o.Observer.Dropped()
				continue
			}
			// Once the hub's cursor has passed all the subscriber has, the two are at the
			// same place: the subscriber takes the hub's cursor, and every later batch goes to
			// it as is (no cursor of its own to parse and move at each batch: with a hundred
			// subscribers that joined from their own cursors, that was most of the hub's work).
			if ahead, err := h.feed.Behind(page.Next, next); err == nil && !ahead {
				next = page.Next
			}
			if len(kept) == 0 {
				s.cursor = next
				continue
			}
			b = TailBatch{Changes: kept, Cursor: next, More: more}
		}
		select {
		case s.c <- b:
			s.cursor = b.Cursor
		default:
			delete(h.subs, s)
			close(s.c) // it takes what is queued, then resumes from s.cursor
			h.o.Observer.Dropped()
		}
	}
	h.head = page.Next
}
