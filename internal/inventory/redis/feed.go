package redis

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// FeedOptions configures a Feed.
type FeedOptions struct {
	// Chunk is the largest COUNT of one XRANGE; default 2,000.
	Chunk int
	// ClockSkew is the largest difference between the clocks of jaego's servers and Redis:
	// a change may sit in the stream of the neighbouring day by that much; default 10 min.
	ClockSkew time.Duration
	// Settle is how long after its end a range is complete: no change with an id inside it
	// can still be appended. Default 2 s.
	Settle time.Duration
	// Continuations bounds the entries a Feed keeps read ahead for the next pages of complete
	// ranges (Read): default 100,000 (about 30 MiB); negative keeps none.
	Continuations int
	Now           func() time.Time
	Registerer    prometheus.Registerer
}

// Feed reads the change streams of a Store.
type Feed struct {
	s     *Store
	opts  FeedOptions
	calls prometheus.Counter
	// conts keeps, by the cursor a page returned, the streams that page read ahead: the
	// next page of that cursor continues from them instead of reading afresh.
	conts *otter.Cache[string, []*subStream]
	pages *prometheus.CounterVec
}

// NewFeed returns the change-feed reader of s.
func NewFeed(s *Store, opts FeedOptions) *Feed {
	if opts.Chunk <= 0 {
		opts.Chunk = 2000
	}
	if opts.ClockSkew <= 0 {
		opts.ClockSkew = 10 * time.Minute
	}
	if opts.Settle <= 0 {
		opts.Settle = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Continuations == 0 {
		opts.Continuations = 100_000
	}
	f := &Feed{s: s, opts: opts, calls: promauto.With(opts.Registerer).NewCounter(prometheus.CounterOpts{
		Name: "jaego_changes_redis_calls_total",
		Help: "XRANGE calls issued by change-feed reads.",
	}), pages: promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
		Name: "jaego_changes_page_continuations_total",
		Help: "Pages of complete ranges asked with a cursor, by whether they continued what the page before read ahead (hit) or read afresh (miss).",
	}, []string{"result"})}
	if opts.Continuations > 0 {
		f.conts = otter.Must(&otter.Options[string, []*subStream]{
			MaximumWeight:    uint64(opts.Continuations),
			Weigher:          func(_ string, subs []*subStream) uint32 { return uint32(held(subs)) },
			ExpiryCalculator: otter.ExpiryWriting[string, []*subStream](continuationTTL),
		})
	}
	return f
}

// continuationTTL is how long a page's read-ahead waits for the next page.
const continuationTTL = time.Minute

// held is the entries subs hold or have asked for.
func held(subs []*subStream) int {
	n := 0
	for _, s := range subs {
		n += len(s.buf)
		if s.pending != nil {
			n += s.pendingN
		}
	}
	return n
}

// Retention is how far back the feed reaches.
func (f *Feed) Retention() time.Duration { return f.s.opts.Retention }

// StreamChanges implements inventory.ChangeFeed with Stream.
func (f *Feed) StreamChanges(ctx context.Context, from, to time.Time, cursor string, emit func([]inventory.Change) error) (string, error) {
	cur, err := f.cursorFor(from, to, cursor)
	if err != nil {
		return "", err
	}
	next, err := f.Stream(ctx, cur, emit)
	if err != nil || next == nil {
		return "", err
	}
	return next.String(), nil
}

// Changes implements inventory.ChangeFeed. With a cursor, from and to may be zero (the
// cursor carries its range); if given they must be the cursor's.
func (f *Feed) Changes(ctx context.Context, from, to time.Time, cursor string, limit int) (inventory.ChangePage, error) {
	cur, err := f.cursorFor(from, to, cursor)
	if err != nil {
		return inventory.ChangePage{}, err
	}
	page, err := f.Read(ctx, cur, limit)
	if err != nil {
		return inventory.ChangePage{}, err
	}
	out := inventory.ChangePage{Changes: page.Changes}
	if page.Next != nil {
		out.Next = page.Next.String()
	}
	return out, nil
}

// cursorFor is the cursor of a request: the given one (from and to, when given, must be its
// range), or the start of [from, to).
func (f *Feed) cursorFor(from, to time.Time, cursor string) (*Cursor, error) {
	if cursor == "" {
		if !to.After(from) {
			return nil, jaego.Invalidf("to", "to must be after from")
		}
		return NewCursor(from, to), nil
	}
	c, err := ParseCursor(cursor)
	if err != nil {
		return nil, err
	}
	if (!from.IsZero() && from.UnixMilli() != c.From) || (!to.IsZero() && to.UnixMilli() != c.To) {
		return nil, &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor",
			Detail: "the cursor belongs to another range: pass the same from and to, or none"}
	}
	return c, nil
}

// Page is one read of the feed.
type Page struct {
	Changes []inventory.Change
	// Next resumes right after the last change; nil when the range is complete and read.
	Next *Cursor
}

// subStream is one (group, day) stream of a read and what has been fetched of it.
type subStream struct {
	g         int
	day       string
	dayIndex  int
	name      string // "<group>/<day>", its key in a cursor
	key       string
	after     string // exclusive start: "(id", or the range start "ms"
	buf       []streamEntry
	exhausted bool
	// The read in flight (paged): its reply, the COUNT it asked for; low is the buffer
	// length under which the next read starts.
	pending  chan fetched
	pendingN int
	low      int
}

// fetched is the reply of one XRANGE, decoded.
type fetched struct {
	entries []streamEntry
	err     error
}

// streamEntry is one change-stream entry, decoded straight from the XRANGE reply into its
// change: no per-entry field map (which rueidis's AsXRange would build, and which cost half
// of a feed read's time).
type streamEntry struct {
	ms, seq uint64
	id      string
	sub     string // "<group>/<day>"
	change  inventory.Change
}

// Read returns up to limit changes of the cursor's range after its position, in id order
// (and so, per store × SKU, in apply order).
//
// A page of a complete range (nothing can be appended to it any more) reads ahead past its
// end as a stream does, and leaves what it read ahead with the Feed under the cursor it
// returns: the next page of that cursor, if it comes to this process within a minute,
// continues from there instead of reading afresh. Any other page reads afresh, and only
// a little more than it returns.
func (f *Feed) Read(ctx context.Context, cur *Cursor, limit int) (Page, error) {
	now := f.opts.Now()
	cur, err := f.live(cur, now)
	if err != nil {
		return Page{}, err
	}
	complete := time.UnixMilli(cur.To).Add(f.opts.Settle).Before(now)
	park := complete && f.conts != nil
	var subs []*subStream
	if park && len(cur.Pos)+len(cur.Done) > 0 {
		var hit bool
		if subs, hit = f.conts.Invalidate(cur.String()); hit {
			f.pages.WithLabelValues("hit").Inc()
		} else {
			f.pages.WithLabelValues("miss").Inc()
		}
	}
	if subs == nil {
		subs = f.subStreams(cur, now)
	}
	next := cur.clone()
	var page Page
	page.Changes, err = f.readPaged(ctx, subs, limit, next, park)
	if err != nil {
		return Page{}, err
	}
	if len(page.Changes) < limit && complete {
		return page, nil // the range is over and everything in it was returned
	}
	if complete {
		// The range was complete before this read began, so a stream it read to the end
		// and returned whole will never have more: the next pages skip it (on a whole day,
		// two thirds of the streams are the neighbouring days', empty but for clock skew).
		subs = slices.DeleteFunc(subs, func(s *subStream) bool {
			if s.exhausted && len(s.buf) == 0 && s.pending == nil {
				next.Done = append(next.Done, s.name)
				delete(next.Pos, s.name)
				return true
			}
			return false
		})
	}
	page.Next = next
	if park {
		f.conts.Set(next.String(), subs)
	}
	return page, nil
}

// subStreams lists the streams a range may have entries in: every group, on every day from
// (from − skew) to (min(to, now) + skew).
func (f *Feed) subStreams(cur *Cursor, now time.Time) []*subStream {
	end := time.UnixMilli(min(cur.To, now.UnixMilli())).Add(f.opts.ClockSkew)
	var days []string
	for d := time.UnixMilli(cur.From).Add(-f.opts.ClockSkew).UTC().Truncate(24 * time.Hour); !d.After(end); d = d.Add(24 * time.Hour) {
		days = append(days, StreamDay(d))
	}
	var subs []*subStream
	for di, day := range days {
		for g := 0; g < f.s.keys.Groups(); g++ {
			k := strconv.Itoa(g) + "/" + day
			if slices.Contains(cur.Done, k) {
				continue
			}
			// A stream with no position has returned nothing yet: it is read from the range
			// start, so that an entry that reached it after another stream was read (fetches
			// are concurrent) is still returned, just later.
			after := strconv.FormatInt(cur.From, 10)
			if id, ok := cur.Pos[k]; ok {
				after = "(" + id
			}
			subs = append(subs, &subStream{g: g, day: day, dayIndex: di, name: k, after: after,
				key: f.s.keys.Stream(g, day)})
		}
	}
	return subs
}

// readAhead starts the next XRANGE of s (up to end, COUNT count) on its own goroutine.
// rueidis pipelines concurrent calls over its connections, so the reads of every stream go
// out together and their replies are parsed and decoded on every core while the merge runs.
func (f *Feed) readAhead(ctx context.Context, s *subStream, end string, count int) {
	f.calls.Inc()
	ch := make(chan fetched, 1)
	s.pending, s.pendingN = ch, count
	cmd := f.s.client.B().Xrange().Key(s.key).Start(s.after).End(end).Count(int64(count)).Build()
	name := s.name
	go func() {
		entries, err := decodeReply(f.s.client.Do(ctx, cmd), name)
		ch <- fetched{entries, err}
	}()
}

// await waits for the read in flight of s and takes its entries, or for ctx to end (the
// read, left in flight, is dropped with s).
func (s *subStream) await(ctx context.Context) error {
	var r fetched
	select {
	case r = <-s.pending:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.pending = nil
	if r.err != nil {
		return r.err
	}
	s.take(r.entries, s.pendingN)
	return nil
}

// take appends the reply of a read that asked for count entries to the buffer. A shorter
// reply is the end of the stream, as far as this read goes.
func (s *subStream) take(entries []streamEntry, count int) {
	if len(s.buf) == 0 {
		s.buf = entries
	} else {
		s.buf = append(s.buf, entries...)
	}
	if len(entries) < count {
		s.exhausted = true
	}
	if len(entries) > 0 {
		s.after = "(" + entries[len(entries)-1].id
	}
	s.low = count
}

// readPaged returns the next limit changes of the merged sub-streams and moves cur past
// them. With park, it reads ahead as a stream does and leaves its reads in flight with the
// streams (the caller keeps them for the next page).
func (f *Feed) readPaged(ctx context.Context, subs []*subStream, limit int, cur *Cursor, park bool) ([]inventory.Change, error) {
	// A page that discards what it fetched beyond limit fetches little more than its share
	// (the merge sizes refills the same way); one that keeps it, up to a stream's chunk.
	active := 0
	for _, s := range subs {
		if !s.exhausted {
			active++
		}
	}
	chunk := min(f.opts.Chunk, max(limit*5/4/max(active, 1), 16))
	if park {
		chunk = min(chunk, streamChunk(f.opts.Chunk))
	}
	out := make([]inventory.Change, 0, min(limit, 4096))
	err := f.merge(ctx, subs, cur.To, chunk, limit, park, func(batch []streamEntry) error {
		out = cur.advance(out, batch)
		return nil
	})
	return out, err
}

// merge merges the sub-streams in feed order with a heap and hands the entries to emit in
// batches of up to 1,000, until limit (0: no limit) or the end of every stream.
//
// Every stream reads ahead: once its buffer is down to the size of its last read, the next
// read goes out (readAhead), so Redis, the parsing of replies and the merge run at the same
// time, as in a raw loop over the streams, instead of taking turns. (At half of it, a read
// queued behind every other stream's in the pipeline arrived after its buffer ran dry, and
// the merge waited: docs/benchmarks.md, "Change feed".) A stream holds at most one
// read in flight, and a stream whose buffer runs dry is refilled before the next pick, so
// the order is the order of the ids. A page (limit > 0) reads ahead only what it may still
// need beyond what it holds, since it discards what it fetched past its end, unless it
// parks: then it reads ahead as a stream, and returns with its reads in flight (they are
// not tied to ctx), for the next page to take over the streams.
func (f *Feed) merge(ctx context.Context, subs []*subStream, to int64, chunk, limit int, park bool, emit func([]streamEntry) error) error {
	readCtx, cancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
	if !park {
		readCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	m := &merger{f: f, ctx: ctx, readCtx: readCtx, end: strconv.FormatInt(to-1, 10), chunk: chunk, limit: limit, park: park, active: len(subs)}
	err := m.run(subs, emit)
	if err == nil && park {
		return nil
	}
	cancel()
	if !park {
		for _, s := range subs {
			if s.pending != nil {
				<-s.pending // cancelled with ctx
				s.pending = nil
			}
		}
	}
	return err
}

// merger is the state of one merge.
type merger struct {
	f            *Feed
	ctx          context.Context // the read's: the merge waits no longer
	readCtx      context.Context // the XRANGEs': not ended by ctx when the merge parks
	end          string          // inclusive end of every XRANGE: the range end − 1 ms
	chunk, limit int
	park         bool // reads ahead past limit (a page whose streams are kept for the next)
	held         int  // entries buffered or asked for
	returned     int  // entries handed to emit
	active       int  // streams not exhausted
	heap         mergeHeap
}

// read sends the next XRANGE of s for count entries.
func (m *merger) read(s *subStream, count int) {
	m.f.readAhead(m.readCtx, s, m.end, count)
	m.held += count
}

// await takes the reply of s's read in flight.
func (m *merger) await(s *subStream) error {
	had := len(s.buf)
	err := s.await(m.ctx)
	m.held -= s.pendingN - (len(s.buf) - had)
	if s.exhausted {
		m.active--
	}
	return err
}

// refill is the COUNT of a stream's next read: a whole chunk for a streamed read; for a
// page, what it still needs spread over the streams left, plus a quarter.
func (m *merger) refill() int {
	if m.limit <= 0 || m.park {
		return m.chunk
	}
	need := m.limit - m.returned
	return min(m.f.opts.Chunk, max(need*5/4/max(m.active, 1), 16))
}

func (m *merger) run(subs []*subStream, emit func([]streamEntry) error) error {
	// Streams come fresh, or from the page before with what it read ahead.
	m.held = held(subs)
	for _, s := range subs {
		if s.exhausted {
			m.active--
		} else if len(s.buf) == 0 && s.pending == nil {
			m.read(s, m.chunk)
		}
	}
	for _, s := range subs {
		if len(s.buf) == 0 && s.pending != nil {
			if err := m.await(s); err != nil {
				return err
			}
		}
		if len(s.buf) > 0 {
			m.heap = append(m.heap, s)
		}
	}
	h := &m.heap
	heap.Init(h)
	batch := make([]streamEntry, 0, 1000)
	for (m.limit <= 0 || m.returned < m.limit) && h.Len() > 0 {
		s := m.heap[0]
		batch = append(batch, s.buf[0])
		s.buf = s.buf[1:]
		m.returned++
		m.held--
		if len(batch) == cap(batch) {
			if err := emit(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		if len(s.buf) > 0 {
			if s.pending == nil && !s.exhausted && len(s.buf) <= s.low && (m.limit <= 0 || m.park || m.limit-m.returned-m.held > 0) {
				m.read(s, m.refill())
			}
			heap.Fix(h, 0)
			continue
		}
		heap.Pop(h)
		if s.pending == nil {
			if s.exhausted {
				continue
			}
			// Dry with nothing in flight (a page that thought it held enough): read it, and
			// every other stream running low, at once.
			c := m.refill()
			m.read(s, c)
			for _, o := range m.heap {
				if o.pending == nil && !o.exhausted && len(o.buf) < c/4 {
					m.read(o, c)
				}
			}
		}
		if err := m.await(s); err != nil {
			return err
		}
		if len(s.buf) > 0 {
			heap.Push(h, s)
		}
	}
	if len(batch) > 0 {
		return emit(batch)
	}
	return nil
}

// Stream hands every change after the cursor to emit, in order and in batches, until the
// end of what the range holds now, with buffers kept across batches (no page boundary
// re-reads). It returns the cursor after the last change, or nil when the range is complete.
func (f *Feed) Stream(ctx context.Context, cur *Cursor, emit func([]inventory.Change) error) (*Cursor, error) {
	now := f.opts.Now()
	cur, err := f.live(cur, now)
	if err != nil {
		return nil, err
	}
	next := cur.clone()
	err = f.merge(ctx, f.subStreams(cur, now), cur.To, streamChunk(f.opts.Chunk), 0, false, func(batch []streamEntry) error {
		return emit(next.advance(nil, batch))
	})
	if err != nil {
		return nil, err
	}
	if time.UnixMilli(cur.To).Add(f.opts.Settle).Before(now) {
		return nil, nil
	}
	return next, nil
}

// streamChunk is the COUNT of a stream's reads in a streamed read: a quarter chunk per
// stream keeps the buffers (chunk × streams entries) small.
func streamChunk(chunk int) int { return max(chunk/4, 16) }

// open is how far ahead a range must end to be open-ended (Position's ranges end in a
// hundred years): such a cursor follows the feed forever.
const open = 365 * 24 * time.Hour

// live checks that the cursor's range is still inside the retention. An open-ended cursor
// never expires while it is read: once its start falls out of the retention it moves
// forward to an hour inside it (the streams of older days are gone or read), forgetting the
// positions of the days left behind; only a reader more than the retention behind loses
// changes, and the copy's lag alert fires long before that.
func (f *Feed) live(cur *Cursor, now time.Time) (*Cursor, error) {
	oldest := now.Add(-f.s.opts.Retention)
	if cur.From >= oldest.UnixMilli() {
		return cur, nil
	}
	if cur.To < now.Add(open).UnixMilli() {
		return nil, inventory.ErrExpired
	}
	c := cur.clone()
	c.From = oldest.Add(time.Hour).UnixMilli()
	first := StreamDay(time.UnixMilli(c.From).Add(-f.opts.ClockSkew))
	for k := range c.Pos {
		if _, day, _ := strings.Cut(k, "/"); day < first {
			delete(c.Pos, k)
		}
	}
	c.Done = slices.DeleteFunc(c.Done, func(k string) bool { _, day, _ := strings.Cut(k, "/"); return day < first })
	return c, nil
}

// advance moves the cursor past entries and appends them to dst as changes.
func (c *Cursor) advance(dst []inventory.Change, entries []streamEntry) []inventory.Change {
	dst = slices.Grow(dst, len(entries))
	for _, e := range entries {
		c.Pos[e.sub] = e.id
		dst = append(dst, e.change)
	}
	return dst
}

// before orders the heads of two sub-streams: by id, then day, then group.
func before(a, b *subStream) bool {
	x, y := a.buf[0], b.buf[0]
	if x.ms != y.ms {
		return x.ms < y.ms
	}
	if x.seq != y.seq {
		return x.seq < y.seq
	}
	if a.dayIndex != b.dayIndex {
		return a.dayIndex < b.dayIndex
	}
	return a.g < b.g
}

type mergeHeap []*subStream

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return before(h[i], h[j]) }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(*subStream)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func parseID(id string) (ms, seq uint64, err error) {
	a, b, ok := strings.Cut(id, "-")
	if !ok {
		ms, err = strconv.ParseUint(id, 10, 64)
		return ms, 0, err
	}
	if ms, err = strconv.ParseUint(a, 10, 64); err == nil {
		seq, err = strconv.ParseUint(b, 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("stream id %q: %w", id, inventory.ErrBadCursor)
	}
	return ms, seq, nil
}
