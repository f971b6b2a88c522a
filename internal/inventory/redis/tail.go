package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
	if c.From <= 0 {
		return 0, 0
	}
	return uint64(c.From - 1), ^uint64(0)
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

// Advance implements inventory.TailFeed.
func (f *Feed) Advance(cursor string, changes []inventory.Change) ([]inventory.Change, string, error) {
	c, err := ParseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if c.Pos == nil {
		c.Pos = map[string]string{}
	}
	var kept []inventory.Change
	for _, ch := range changes {
		id, sub, ok := strings.Cut(ch.ID, "/")
		ms, seq, err := parseID(id)
		if !ok || err != nil {
			return nil, "", fmt.Errorf("change id %q is not id/group/day", ch.ID)
		}
		cms, cseq := c.effective(sub)
		if ms < cms || ms == cms && seq <= cseq {
			continue
		}
		c.Pos[sub] = id
		kept = append(kept, ch)
	}
	return kept, c.String(), nil
}

// Follows implements inventory.TailFeed: only an open-ended cursor follows the feed.
func (f *Feed) Follows(cursor string) error {
	c, err := ParseCursor(cursor)
	if err != nil {
		return err
	}
	if time.UnixMilli(c.To).Before(f.opts.Now().Add(open / 2)) {
		return &jaego.Error{Code: jaego.CodeInvalidCursor, Field: "cursor",
			Detail: "this cursor belongs to a range with an end: a live tail follows an open range (a cursor from /v1/changes without to, a snapshot's, or a stream's)"}
	}
	return nil
}
