package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

var (
	_ inventory.ChangeFeed  = (*Feed)(nil)
	_ inventory.Snapshotter = (*Store)(nil)
)

// Wait implements inventory.ChangeFeed for the live tail: one XREAD BLOCK per shard group
// (a group's day streams share its slot, so one command covers them), in parallel, each
// from the cursor's position in that stream; it returns as soon as any answers with an
// entry, or after timeout. A wake-up may be spurious, never missed for long: the caller
// reads the feed after it either way.
func (f *Feed) Wait(ctx context.Context, cursor string, timeout time.Duration) error {
	cur, err := ParseCursor(cursor)
	if err != nil {
		return err
	}
	now := f.opts.Now()
	subs := f.subStreams(&Cursor{From: max(cur.From, now.Add(-f.opts.ClockSkew).UnixMilli()), To: cur.To, Pos: cur.Pos}, now.Add(f.opts.ClockSkew))
	byGroup := map[int][]*subStream{}
	for _, s := range subs {
		byGroup[s.g] = append(byGroup[s.g], s)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	woke := make(chan error, len(byGroup))
	for _, group := range byGroup {
		keys := make([]string, len(group))
		ids := make([]string, len(group))
		for i, s := range group {
			keys[i] = s.key
			ids[i] = strings.TrimPrefix(s.after, "(")
			if !strings.Contains(ids[i], "-") {
				ms, _ := strconv.ParseInt(ids[i], 10, 64)
				ids[i] = strconv.FormatInt(ms-1, 10) + "-18446744073709551615" // everything from ms on
			}
		}
		go func() {
			cmd := f.s.client.B().Xread().Count(1).Block(timeout.Milliseconds()).Streams().Key(keys...).Id(ids...).Build()
			err := f.s.client.Do(ctx, cmd).Error()
			if rueidis.IsRedisNil(err) {
				err = nil // timed out with nothing new
			}
			woke <- err
		}()
	}
	for range byGroup {
		if err := <-woke; err != nil && ctx.Err() == nil {
			return err
		}
		// The first group to answer wakes the reader; the others are cancelled on return.
		return nil
	}
	return nil
}

var _ inventory.TailFeed = (*Feed)(nil)

// effective is where a cursor stands on stream sub ("<g>/<day>"): its position there, or
// just before its range start when it has read nothing of that stream.
func (c *Cursor) effective(sub string) (ms, seq uint64) {
	if id, ok := c.Pos[sub]; ok {
		ms, seq, _ = parseID(id)
		return ms, seq
	}
	return startOf(c.From)
}

// startOf is where a cursor whose range starts at from stands on a stream it has read
// nothing of: just before from.
func startOf(from int64) (ms, seq uint64) {
	if from <= 0 {
		return 0, 0
	}
	return uint64(from - 1), ^uint64(0)
}

// Behind implements inventory.TailFeed: a is behind b when, on some stream, b has passed
// an entry a has not.
func (f *Feed) Behind(a, b string) (bool, error) {
	ca, err := ParseCursor(a)
	if err != nil {
		return false, err
	}
	cb, err := ParseCursor(b)
	if err != nil {
		return false, err
	}
	for sub := range cb.Pos {
		ams, aseq := ca.effective(sub)
		bms, bseq := cb.effective(sub)
		if ams < bms || ams == bms && aseq < bseq {
			return true, nil
		}
	}
	return false, nil
}

// Follows implements inventory.TailFeed: only an open-ended cursor follows the feed.
func (f *Feed) Follows(cursor string) error {
	c, err := ParseCursor(cursor)
	if err != nil {
		return err
	}
	if time.UnixMilli(c.To).Before(f.opts.Now().Add(open / 2)) {
		return &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor",
			Detail: "this cursor is of a range with an end (a /v1/changes read given to); a live tail follows an open range: a cursor from /v1/changes without to, a snapshot's, or a stream's"}
	}
	return nil
}

// Watcher tells a live-tail hub when the feed may have new changes, with one blocking read
// per shard group that stays open (design §4: one reader per group per process): the Redis
// connections of a process's live tail are G, whatever its subscribers and change rate.
// (Feed.Wait opens G reads per call and cancels them: fine for a poll, not for a hub woken
// fifty times a second.)
type Watcher struct {
	f  *Feed
	mu sync.Mutex
	ch chan struct{}
}

// NewWatcher returns a watcher of f's streams; Run watches.
func NewWatcher(f *Feed) *Watcher { return &Watcher{f: f, ch: make(chan struct{})} }

// Changed is closed when a change arrives after the call.
func (w *Watcher) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *Watcher) fire() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}

// Run watches every group until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for g := range w.f.s.keys.Groups() {
		wg.Go(func() { w.watch(ctx, g) })
	}
	wg.Wait()
}

// watch blocks on group g's streams of the days around now, from the last entry it saw of
// each (an unseen stream: from its current end).
func (w *Watcher) watch(ctx context.Context, g int) {
	c := w.f.s.client
	last := map[string]string{}
	for ctx.Err() == nil {
		now := w.f.opts.Now()
		var keys, ids []string
		for _, t := range []time.Time{now.Add(-w.f.opts.ClockSkew), now, now.Add(w.f.opts.ClockSkew)} {
			k := w.f.s.keys.StreamOn(g, t)
			if slices.Contains(keys, k) {
				continue
			}
			if _, ok := last[k]; !ok {
				id := "0-0"
				if e, err := c.Do(ctx, c.B().Xrevrange().Key(k).End("+").Start("-").Count(1).Build()).AsXRange(); err == nil && len(e) == 1 {
					id = e[0].ID
				} else if err != nil && !rueidis.IsRedisNil(err) {
					break
				}
				last[k] = id
			}
			keys, ids = append(keys, k), append(ids, last[k])
		}
		if len(keys) == 0 {
			sleepCtx(ctx, time.Second)
			continue
		}
		res, err := c.Do(ctx, c.B().Xread().Count(100).Block(5000).Streams().Key(keys...).Id(ids...).Build()).AsXRead()
		if err != nil && !rueidis.IsRedisNil(err) {
			sleepCtx(ctx, time.Second)
			continue
		}
		woke := false
		for k, entries := range res {
			if len(entries) > 0 {
				last[k], woke = entries[len(entries)-1].ID, true
			}
		}
		if woke {
			w.fire()
		}
		for k := range last { // forget the days that passed
			if !slices.Contains(keys, k) {
				delete(last, k)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// CursorAt is an open-ended cursor that starts at t: it follows every change applied at or
// after t (webhook.Feed).
func (f *Feed) CursorAt(t time.Time) string {
	return NewCursor(t, inventory.OpenEnd(t)).String()
}
