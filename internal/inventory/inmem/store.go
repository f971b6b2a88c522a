// Package inmem is a stock store and change feed in process memory, built on the reference
// model inventory.Apply: the second implementation the shared suites (inventorytest) hold
// the Redis store to, and the store of HTTP tests that need no server. It keeps nothing
// across restarts and serves one process: never a production store.
package inmem

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Options configures a Store; zero fields take their defaults.
type Options struct {
	// Now is the clock of updated_at, change times and range completeness; default time.Now.
	Now func() time.Time
	// Retention is how far back the change feed reaches; default 48h.
	Retention time.Duration
	// Settle is how long after its end a range is complete; default 0.
	Settle time.Duration
	// MaxHoldsPerStore bounds the reservations one store holds at once; default 10,000.
	MaxHoldsPerStore int
}

// Store is an inventory.StockStore and inventory.ChangeFeed in memory.
type Store struct {
	opts    Options
	mu      sync.Mutex
	stock   map[inventory.Key]inventory.Stock
	applied map[[2]string]bool                // store, event id: an event id is scoped to its store (§11)
	rsv     map[string]*inventory.Reservation // by id: ids are unique across stores (§12)
	rsvSeq  []string                          // reservation ids in the order they were made
	log     []inventory.Change                // every applied change, in apply order
	grew    chan struct{}                     // closed and replaced when the log grows
}

var (
	_ inventory.StockStore = (*Store)(nil)
	_ inventory.ChangeFeed = (*Store)(nil)
)

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention <= 0 {
		opts.Retention = 48 * time.Hour
	}
	if opts.MaxHoldsPerStore <= 0 {
		opts.MaxHoldsPerStore = 10000
	}
	return &Store{opts: opts, stock: map[inventory.Key]inventory.Stock{}, applied: map[[2]string]bool{},
		rsv: map[string]*inventory.Reservation{}, grew: make(chan struct{})}
}

// Apply implements inventory.StockStore: each event under one lock, by the reference model.
func (s *Store) Apply(ctx context.Context, events []inventory.Event) ([]inventory.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]inventory.Result, len(events))
	s.mu.Lock()
	defer s.mu.Unlock()
	grew := false
	for i, e := range events {
		out[i].EventID = e.EventID
		if err := e.Validate(); err != nil {
			out[i].Status, out[i].Err = inventory.Rejected, err
			continue
		}
		k := inventory.Key{Store: e.Store, SKU: e.SKU}
		cur := s.stock[k]
		cur.Store, cur.SKU, cur.Source = e.Store, e.SKU, inventory.SourcePrimary
		if s.applied[[2]string{e.Store, e.EventID}] {
			out[i].Status, out[i].Stock = inventory.Duplicate, cur.WithAvailable()
			continue
		}
		next, err := inventory.Apply(cur, e)
		if err != nil {
			out[i].Status, out[i].Err, out[i].Stock = inventory.Rejected, err, cur.WithAvailable()
			continue
		}
		s.applied[[2]string{e.Store, e.EventID}] = true
		grew = true
		out[i].Status, out[i].Stock = inventory.Applied, s.write(k, cur, next, e.Type, e.EventID)
	}
	if grew {
		s.grown()
	}
	return out, nil
}

// write stores next as the record of k after cur (its version one higher) and appends its
// change to the log; the caller holds s.mu and tells the feed's waiters.
func (s *Store) write(k inventory.Key, cur, next inventory.Stock, typ inventory.EventType, eventID string) inventory.Stock {
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	next.Store, next.SKU, next.Source = k.Store, k.SKU, inventory.SourcePrimary
	next.Version, next.UpdatedAt = cur.Version+1, now
	next = next.WithAvailable()
	s.stock[k] = next
	s.log = append(s.log, inventory.Change{ID: strconv.Itoa(len(s.log) + 1), Store: k.Store, SKU: k.SKU, Type: typ,
		Delta: next.OnHand - cur.OnHand, OnHand: next.OnHand, Reserved: next.Reserved, Safety: next.Safety,
		Version: next.Version, EventID: eventID, At: now})
	return next
}

// grown tells the feed's waiters that the log grew; the caller holds s.mu.
func (s *Store) grown() {
	close(s.grew)
	s.grew = make(chan struct{})
}

// Get implements inventory.StockStore.
func (s *Store) Get(ctx context.Context, store, sku string) (inventory.Stock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stock[inventory.Key{Store: store, SKU: sku}]
	if !ok {
		return inventory.Stock{}, jaego.Errorf(jaego.CodeNotFound, "no stock record for store %s, sku %s", store, sku)
	}
	return st, nil
}

// GetMany implements inventory.StockStore.
func (s *Store) GetMany(ctx context.Context, keys []inventory.Key) ([]inventory.Lookup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]inventory.Lookup, len(keys))
	for i, k := range keys {
		out[i].Stock, out[i].Found = s.stock[k]
	}
	return out, nil
}

// Ping implements inventory.StockStore: memory always answers.
func (s *Store) Ping(context.Context) error { return nil }

// cursor is a position in the log within a range: N changes of the log were looked at.
type cursor struct {
	From int64 `json:"f"`
	To   int64 `json:"t"`
	N    int   `json:"n"`
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Store) cursorFor(from, to time.Time, token string) (cursor, error) {
	if token == "" {
		if !to.After(from) {
			return cursor{}, jaego.Invalidf("to", "to must be after from")
		}
		return cursor{From: from.UnixMilli(), To: to.UnixMilli()}, nil
	}
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(b, &c) != nil || c.To <= c.From || c.N < 0 {
		return cursor{}, inventory.ErrBadCursor
	}
	if (!from.IsZero() && from.UnixMilli() != c.From) || (!to.IsZero() && to.UnixMilli() != c.To) {
		return cursor{}, &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor",
			Detail: "the cursor belongs to another range: pass the same from and to, or none"}
	}
	return c, nil
}

// read returns up to limit (0: all) changes of c's range after it, the cursor after them,
// and whether the range is complete and read.
func (s *Store) read(c cursor, limit int) ([]inventory.Change, cursor, bool, error) {
	now := s.opts.Now()
	if c.From < now.Add(-s.opts.Retention).UnixMilli() {
		return nil, c, false, inventory.ErrExpired
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.N > len(s.log) {
		return nil, c, false, inventory.ErrBadCursor
	}
	var out []inventory.Change
	for ; c.N < len(s.log) && (limit <= 0 || len(out) < limit); c.N++ {
		if at := s.log[c.N].At.UnixMilli(); at >= c.From && at < c.To {
			out = append(out, s.log[c.N])
		}
	}
	complete := c.N == len(s.log) && time.UnixMilli(c.To).Add(s.opts.Settle).Before(now)
	return out, c, complete, nil
}

// Changes implements inventory.ChangeFeed.
func (s *Store) Changes(ctx context.Context, from, to time.Time, token string, limit int) (inventory.ChangePage, error) {
	c, err := s.cursorFor(from, to, token)
	if err != nil {
		return inventory.ChangePage{}, err
	}
	changes, next, complete, err := s.read(c, limit)
	if err != nil {
		return inventory.ChangePage{}, err
	}
	page := inventory.ChangePage{Changes: changes}
	if !complete {
		page.Next = next.String()
	}
	return page, nil
}

// StreamChanges implements inventory.ChangeFeed.
func (s *Store) StreamChanges(ctx context.Context, from, to time.Time, token string, emit func([]inventory.Change) error) (string, error) {
	c, err := s.cursorFor(from, to, token)
	if err != nil {
		return "", err
	}
	changes, next, complete, err := s.read(c, 0)
	if err != nil {
		return "", err
	}
	if len(changes) > 0 {
		if err := emit(changes); err != nil {
			return "", err
		}
	}
	if complete {
		return "", nil
	}
	return next.String(), nil
}

// Position implements inventory.ChangeFeed: an open-ended cursor at the end of the log.
func (s *Store) Position(ctx context.Context) (string, error) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return cursor{From: now.Add(-s.opts.Retention / 2).UnixMilli(), To: inventory.OpenEnd(now).UnixMilli(), N: len(s.log)}.String(), nil
}

// Wait implements inventory.ChangeFeed: it returns once the log holds changes past the
// cursor, or after timeout.
func (s *Store) Wait(ctx context.Context, token string, timeout time.Duration) error {
	c, err := s.cursorFor(time.Time{}, time.Time{}, token)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if len(s.log) > c.N {
		s.mu.Unlock()
		return nil
	}
	grew := s.grew
	s.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-grew:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

var _ inventory.TailFeed = (*Store)(nil)

// Behind implements inventory.TailFeed: a has looked at fewer changes of the log than b.
func (s *Store) Behind(a, b string) (bool, error) {
	ca, err := s.cursorFor(time.Time{}, time.Time{}, a)
	if err != nil {
		return false, err
	}
	cb, err := s.cursorFor(time.Time{}, time.Time{}, b)
	if err != nil {
		return false, err
	}
	return ca.N < cb.N, nil
}

// Advance implements inventory.TailFeed: a change's id is its place in the log (from 1).
func (s *Store) Advance(token string, changes []inventory.Change) ([]inventory.Change, string, error) {
	c, err := s.cursorFor(time.Time{}, time.Time{}, token)
	if err != nil {
		return nil, "", err
	}
	var kept []inventory.Change
	for _, ch := range changes {
		n, err := strconv.Atoi(ch.ID)
		if err != nil {
			return nil, "", fmt.Errorf("change id %q is not a place in the log", ch.ID)
		}
		if n > c.N {
			kept, c.N = append(kept, ch), n
		}
	}
	return kept, c.String(), nil
}

// Mover implements inventory.TailFeed.
func (s *Store) Mover(token string) (inventory.Mover, error) {
	if _, err := s.cursorFor(time.Time{}, time.Time{}, token); err != nil {
		return nil, err
	}
	return &mover{s: s, token: token}, nil
}

type mover struct {
	s     *Store
	token string
}

func (m *mover) Past(changes []inventory.Change) (string, error) {
	_, next, err := m.s.Advance(m.token, changes)
	if err == nil {
		m.token = next
	}
	return next, err
}

// Follows implements inventory.TailFeed.
func (s *Store) Follows(token string) error {
	c, err := s.cursorFor(time.Time{}, time.Time{}, token)
	if err != nil {
		return err
	}
	if time.UnixMilli(c.To).Before(s.opts.Now().AddDate(50, 0, 0)) {
		return &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor", Detail: "this cursor is of a range with an end (a /v1/changes read given to); a live tail follows an open range: a cursor from /v1/changes without to, a snapshot's, or a stream's"}
	}
	return nil
}
