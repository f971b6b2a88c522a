package redis

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
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
