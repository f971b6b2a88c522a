package redis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Snapshots for re-indexers (issue 4). The algorithm, also in docs/architecture.md:
//
//  1. Position first: for every (group, day) stream that exists, its last id. The cursor
//     starts after those ids, and at (now − clock skew) for streams that do not exist yet.
//  2. Then read the records (HSCAN of the store's hash).
//
// Every change applied after step 1 is in the feed after the cursor; every change before it
// is in the records. A record may also already contain some changes after the cursor (it
// was read later): a change carries the record's counters and version after it, and
// inventory.Change.ApplyTo ignores changes not newer than the record, so snapshot + every
// change after the cursor gives the live state exactly, with no change lost or counted twice.

// Position implements inventory.ChangeFeed.
func (f *Feed) Position(ctx context.Context) (string, error) {
	c, err := f.position(ctx)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

// position returns an open-ended cursor at the current end of the feed.
func (f *Feed) position(ctx context.Context) (*Cursor, error) {
	now := f.opts.Now()
	// Streams that do not exist yet are read from (now − clock skew), within retention.
	from := now.Add(-min(f.opts.ClockSkew, f.s.opts.Retention/2))
	cur := &Cursor{From: from.UnixMilli(), To: inventory.OpenEnd(now).UnixMilli(), Pos: map[string]string{}}
	subs := f.subStreams(cur, now)
	cmds := make(rueidis.Commands, len(subs))
	for i, s := range subs {
		cmds[i] = f.s.client.B().Xrevrange().Key(s.key).End("+").Start("-").Count(1).Build()
	}
	for i, res := range f.s.client.DoMulti(ctx, cmds...) {
		entries, err := res.AsXRange()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, jaego.Unavailable("feed position", err)
		}
		if len(entries) == 1 {
			cur.Pos[strconv.Itoa(subs[i].g)+"/"+subs[i].day] = entries[0].ID
		}
	}
	return cur, nil
}

// StoreStock returns every stock record of a store: HSCAN of its hash, which holds the
// records themselves. A SKU may appear twice if the hash was rehashed meanwhile.
func (s *Store) StoreStock(ctx context.Context, store string) ([]inventory.Stock, error) {
	var out []inventory.Stock
	var cursor uint64
	for {
		e, err := s.client.Do(ctx, s.client.B().Hscan().Key(s.keys.Stock(store)).Cursor(cursor).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return nil, jaego.Unavailable("snapshot "+store, err)
		}
		for i := 0; i+1 < len(e.Elements); i += 2 {
			st, err := unpackStock(store, e.Elements[i], e.Elements[i+1])
			if err != nil {
				return nil, jaego.Unavailable("snapshot "+store, err)
			}
			out = append(out, st)
		}
		if cursor = e.Cursor; cursor == 0 {
			return out, nil
		}
	}
}

type estateToken struct {
	G      int    `json:"g"`
	Cursor uint64 `json:"c"`
}

// Estate returns one page of every store's stock: the stores of one SSCAN step of one
// group's store set. token is "" for the first page.
func (s *Store) Estate(ctx context.Context, token string) (inventory.EstatePage, error) {
	var t estateToken
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || json.Unmarshal(b, &t) != nil || t.G < 0 || t.G >= s.keys.Groups() {
			return inventory.EstatePage{}, inventory.ErrBadCursor
		}
	}
	var page inventory.EstatePage
	e, err := s.client.Do(ctx, s.client.B().Sscan().Key(s.keys.Stores(t.G)).Cursor(t.Cursor).Count(10).Build()).AsScanEntry()
	if err != nil {
		return page, jaego.Unavailable("estate snapshot", err)
	}
	for _, store := range e.Elements {
		items, err := s.StoreStock(ctx, store)
		if err != nil {
			return page, err
		}
		page.Items = append(page.Items, items...)
	}
	next := estateToken{G: t.G, Cursor: e.Cursor}
	if e.Cursor == 0 {
		next = estateToken{G: t.G + 1}
	}
	if next.G < s.keys.Groups() {
		b, _ := json.Marshal(next)
		page.Next = base64.RawURLEncoding.EncodeToString(b)
	}
	return page, nil
}

// PositionCursor is Position as a Cursor.
func (f *Feed) PositionCursor(ctx context.Context) (*Cursor, error) { return f.position(ctx) }
