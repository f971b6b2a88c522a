package webhook

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
)

// Feed is the change feed a subscription follows: the live tail's (reads, cursor
// comparisons) and a cursor for a time.
type Feed interface {
	inventory.TailFeed
	// CursorAt is an open-ended cursor that starts at t.
	CursorAt(t time.Time) string
}

// LedgerReader reads the durable copy's ledger (90 days): the changes applied in
// [from, until), in change-id order (so every store × SKU in apply order), after the change
// with id after ("" from the start), limit at most.
type LedgerReader interface {
	LedgerChanges(ctx context.Context, from, until time.Time, after string, limit int) ([]inventory.Change, error)
}

// A ledger position: "l:<from ms>:<until ms>:<last change id>|<cursor>". The changes of
// [from, until) come from the ledger, after the last one delivered and (when the position
// came from a cursor that fell behind the Redis retention) not passed by the cursor; then
// the feed from until on.
type ledgerPos struct {
	from, until time.Time
	after       string
	passed      string // a feed cursor: changes it is past were delivered before
}

func (p Position) ledger() bool { return strings.HasPrefix(string(p), "l:") }

func (l ledgerPos) position() Position {
	return Position(fmt.Sprintf("l:%d:%d:%s|%s", l.from.UnixMilli(), l.until.UnixMilli(), l.after, l.passed))
}

func parseLedger(p Position) (ledgerPos, error) {
	rest, ok := strings.CutPrefix(string(p), "l:")
	from, rest, ok1 := strings.Cut(rest, ":")
	until, rest, ok2 := strings.Cut(rest, ":")
	after, passed, ok3 := strings.Cut(rest, "|")
	f, err1 := strconv.ParseInt(from, 10, 64)
	u, err2 := strconv.ParseInt(until, 10, 64)
	if !ok || !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil {
		return ledgerPos{}, fmt.Errorf("webhook: malformed ledger position %q", p)
	}
	return ledgerPos{from: time.UnixMilli(f), until: time.UnixMilli(u), after: after, passed: passed}, nil
}

// redisFrom is the oldest time the Redis feed is read from: changes before it come from the
// ledger. Half the retention keeps a wide margin on both sides: the ledger has every change
// that old (the projector is seconds behind), and Redis still has every change since.
func redisFrom(now time.Time, retention time.Duration) time.Time { return now.Add(-retention / 2) }

// StartPosition is the position of a start (a new subscription's "from", or a replay's).
func StartPosition(ctx context.Context, feed Feed, ledger bool, retention time.Duration, s Start, now time.Time) (Position, error) {
	switch {
	case s.Cursor != "":
		if err := feed.Follows(s.Cursor); err != nil {
			return "", err
		}
		if _, _, err := feed.Advance(s.Cursor, nil); err != nil {
			return "", err
		}
		return Position(s.Cursor), nil
	case s.Now:
		c, err := feed.Position(ctx)
		return Position(c), err
	case !s.Time.Before(redisFrom(now, retention)):
		return Position(feed.CursorAt(s.Time)), nil
	case !ledger:
		return "", &jaego.Error{Code: jaego.CodeExpired, Field: "from",
			Detail: "from is older than the change-feed retention, and there is no durable copy whose ledger reaches back"}
	default:
		return ledgerPos{from: s.Time, until: redisFrom(now, retention)}.position(), nil
	}
}

// caughtUpFrom is a cursor position that fell behind the Redis retention turned into a
// ledger position that gives exactly what the cursor has not passed: the ledger from a
// little before the last change it passed (other shard groups may be behind it by the
// servers' clock skew), filtered by the cursor.
func caughtUpFrom(p Position, asOf, now time.Time, retention time.Duration) Position {
	if p.ledger() || asOf.IsZero() || asOf.After(now.Add(-retention+retention/4)) {
		return p
	}
	return ledgerPos{from: asOf.Add(-15 * time.Minute), until: redisFrom(now, retention), passed: string(p)}.position()
}
