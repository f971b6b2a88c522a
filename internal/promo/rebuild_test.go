package promo_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/promo"
	"github.com/jaego/jaego/internal/testenv"
)

// memCache is a Publisher in memory, with the Redis cache's fence rule: a token below the
// highest seen may not publish.
var quiet = slog.New(slog.DiscardHandler)

type memCache struct {
	mu    sync.Mutex
	fence int64
	cat   *promo.Catalog
	metas []promo.Meta
}

func (m *memCache) Publish(_ context.Context, token int64, meta promo.Meta, ps []promo.Promotion) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if token < m.fence {
		return 0, promo.ErrStaleToken
	}
	m.fence = token
	v := int64(1)
	if m.cat != nil {
		v = m.cat.Version + 1
	}
	m.cat = promo.NewCatalog(v, meta.Day, ps)
	m.metas = append(m.metas, meta)
	return v, nil
}

func (m *memCache) Current(context.Context) (*promo.Catalog, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cat == nil {
		return nil, jaego.Errorf(jaego.CodeNotBuilt, "no version yet")
	}
	return m.cat, nil
}

func (m *memCache) published() (int, promo.Meta) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.metas) == 0 {
		return 0, promo.Meta{}
	}
	return len(m.metas), m.metas[len(m.metas)-1]
}

// memLocker hands out rising tokens; one holder at a time.
type memLocker struct {
	mu    sync.Mutex
	token int64
}

func (l *memLocker) Hold(context.Context, string, time.Duration) (int64, func(context.Context) error, error) {
	l.mu.Lock()
	l.token++
	return l.token, func(context.Context) error { l.mu.Unlock(); return nil }, nil
}

type sourceFunc func(ctx context.Context, from, to time.Time) ([]promo.Promotion, error)

func (f sourceFunc) Candidates(ctx context.Context, from, to time.Time) ([]promo.Promotion, error) {
	return f(ctx, from, to)
}

// The daily batch on a fake clock (synctest): a failed startup rebuild is retried after its
// backoff, nothing is rebuilt during the day, and the version for the next day is built at
// midnight of the rebuilder's time zone, with a window from midnight to Overlap past the
// following one.
func TestRebuilderMidnight(t *testing.T) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cache := &memCache{}
		failures := 1
		src := sourceFunc(func(context.Context, time.Time, time.Time) ([]promo.Promotion, error) {
			if failures > 0 {
				failures--
				return nil, errors.New("database restarting")
			}
			return nil, nil
		})
		rb := promo.NewRebuilder(promo.RebuilderOptions{Source: src, Publisher: cache, Locker: &memLocker{}, Location: seoul,
			Logger: quiet})
		done := make(chan struct{})
		go func() { rb.Run(ctx); close(done) }()

		synctest.Wait()
		if n, _ := cache.published(); n != 0 {
			t.Fatalf("%d versions after a failed first rebuild", n)
		}
		time.Sleep(time.Second) // the first backoff
		synctest.Wait()
		n, meta := cache.published()
		if n != 1 || meta.Day != rb.Day() {
			t.Fatalf("after the retry: %d versions, day %q, want 1 for %s", n, meta.Day, rb.Day())
		}

		midnight := promo.NextMidnight(time.Now(), seoul)
		time.Sleep(time.Until(midnight) - time.Millisecond)
		synctest.Wait()
		if n, _ := cache.published(); n != 1 {
			t.Fatalf("%d versions before midnight, want 1", n)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		n, meta = cache.published()
		wantDay := midnight.In(seoul).Format(time.DateOnly)
		if n != 2 || meta.Day != wantDay || !meta.From.Equal(midnight) ||
			!meta.To.Equal(promo.NextMidnight(midnight, seoul).Add(promo.Overlap)) {
			t.Fatalf("at midnight: %d versions, last %+v; want the version of %s from %s", n, meta, wantDay, midnight)
		}

		// Soon rebuilds at once, whatever the hour.
		rb.Soon()
		synctest.Wait()
		if n, _ := cache.published(); n != 3 {
			t.Fatalf("%d versions after Soon, want 3", n)
		}
		cancel()
		wait, stop := context.WithTimeout(context.Background(), time.Minute)
		defer stop()
		testenv.Recv(t, wait, done, "the rebuilder's end")
	})
}

func TestWindow(t *testing.T) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	for _, tc := range []struct {
		now  time.Time
		loc  *time.Location
		next time.Time
		day  string
	}{
		{time.Date(2026, 11, 22, 14, 59, 0, 0, time.UTC), seoul, time.Date(2026, 11, 23, 0, 0, 0, 0, seoul), "2026-11-22"},
		{time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC), seoul, time.Date(2026, 11, 24, 0, 0, 0, 0, seoul), "2026-11-23"},
		{time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), time.UTC, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), "2026-12-31"},
		// The day after the autumn DST change in New York is 24 h from its midnight.
		{time.Date(2026, 11, 1, 12, 0, 0, 0, ny), ny, time.Date(2026, 11, 2, 0, 0, 0, 0, ny), "2026-11-01"},
	} {
		from, to, day := promo.Window(tc.now, tc.loc)
		if !promo.NextMidnight(tc.now, tc.loc).Equal(tc.next) || !from.Equal(tc.now) || !to.Equal(tc.next.Add(promo.Overlap)) || day != tc.day {
			t.Errorf("%s in %s: next %s, window %s..%s day %s", tc.now, tc.loc, promo.NextMidnight(tc.now, tc.loc), from, to, day)
		}
	}
}
