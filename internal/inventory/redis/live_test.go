package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
)

// An open-ended cursor (a follower's, like the durable copy's projector) never expires: its
// start moves into the retention and it forgets the days left behind; a closed range that
// starts before the retention is range_expired.
func TestOpenCursorStaysLive(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := NewFeed(New(nil, Options{Retention: 48 * time.Hour}), FeedOptions{Now: func() time.Time { return now }})
	started := now.Add(-72 * time.Hour)
	closed := NewCursor(started, started.Add(time.Hour))
	if _, err := f.live(closed, now); !errors.Is(err, inventory.ErrExpired) {
		t.Fatalf("a closed range 72 h old: %v, want range_expired", err)
	}
	follow := NewCursor(started, now.Add(100*365*24*time.Hour))
	follow.Pos["3/20261122"] = "1763812800000-0"
	follow.Pos["3/20261124"] = "1763985600000-4"
	follow.Done = []string{"1/20261122", "2/20261124"}
	got, err := f.live(follow, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-47 * time.Hour).UnixMilli(); got.From != want {
		t.Errorf("start %d, want %d (an hour inside the retention)", got.From, want)
	}
	if _, ok := got.Pos["3/20261122"]; ok || got.Pos["3/20261124"] != "1763985600000-4" {
		t.Errorf("positions %v: want only the day still inside", got.Pos)
	}
	if len(got.Done) != 1 || got.Done[0] != "2/20261124" {
		t.Errorf("done %v", got.Done)
	}
	if follow.From != started.UnixMilli() || len(follow.Pos) != 2 {
		t.Error("live changed the caller's cursor")
	}
	if fresh, err := f.live(NewCursor(now.Add(-time.Hour), now), now); err != nil || fresh.From != now.Add(-time.Hour).UnixMilli() {
		t.Errorf("a range inside the retention: %+v %v", fresh, err)
	}
}
