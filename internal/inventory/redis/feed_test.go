package redis_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

// twoDays is a store clock that files every other call under the next day, as clients
// around midnight would: the range then spans two day streams per group.
func twoDays() func() time.Time {
	var n atomic.Int64
	return func() time.Time {
		if n.Add(1)%2 == 0 {
			return time.Now().Add(24 * time.Hour)
		}
		return time.Now()
	}
}

// feedOn is a feed of s whose clock runs ahead of the wall clock by ahead: a test that
// ends its range just after its last write makes it complete without waiting.
func feedOn(s *invredis.Store, settle, ahead time.Duration) *invredis.Feed {
	return invredis.NewFeed(s, invredis.FeedOptions{Chunk: 17, ClockSkew: 48 * time.Hour, Settle: settle,
		Now: func() time.Time { return time.Now().Add(ahead) }})
}

// readAll pages through a cursor with small pages until the range is complete. With
// oldForm, every other cursor goes in the JSON form of the cursors jaego gave out before
// 2026-12-06 (a client's saved cursor, a webhook's stored position), which must read on
// exactly as its binary form.
func readAll(t *testing.T, f *invredis.Feed, cur *invredis.Cursor, limit int, oldForm bool) ([]inventory.Change, int) {
	t.Helper()
	var all []inventory.Change
	pages := 0
	for cur != nil {
		// Every cursor goes over the wire as a string.
		wire := cur.String()
		if oldForm && pages%2 == 1 {
			js, err := json.Marshal(cur)
			if err != nil {
				t.Fatal(err)
			}
			wire = base64.RawURLEncoding.EncodeToString(js)
		}
		parsed, err := invredis.ParseCursor(wire)
		if err != nil {
			t.Fatal(err)
		}
		page, err := f.Read(context.Background(), parsed, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Changes) > limit {
			t.Fatalf("page of %d changes, limit %d", len(page.Changes), limit)
		}
		all = append(all, page.Changes...)
		cur = page.Next
		if pages++; pages > 100000 {
			t.Fatal("no end of range")
		}
	}
	return all, pages
}

func TestFeedExactlyOnceAcrossGroupsAndDays(t *testing.T) {
	t.Parallel()
	client, _ := testenv.Redis(t)
	testFeedExactlyOnce(t, client, 2000)
}

func TestFeedExactlyOnceCluster(t *testing.T) {
	t.Parallel()
	client, _ := testenv.RedisCluster(t)
	testFeedExactlyOnce(t, client, 2000)
}

// testFeedExactlyOnce: 16 writers apply perWriter random events each across groups and two
// days; the streamed read and paged reads of any size give each change once, in order.
func testFeedExactlyOnce(t *testing.T, client rueidis.Client, perWriter int) {
	s := newStoreOn(client, invredis.Options{Groups: 5, Now: twoDays()})
	from := time.Now().Add(-time.Second)
	applied := inventorytest.ApplyRandom(t, s, 16, perWriter, 12, 20, 1)
	to := time.Now().Add(time.Millisecond)
	f := feedOn(s, time.Nanosecond, time.Second) // the range is over: it is complete
	// The streaming read (NDJSON) gives the same as paging.
	var streamed []inventory.Change
	next, err := f.Stream(context.Background(), invredis.NewCursor(from, to), func(b []inventory.Change) error {
		streamed = append(streamed, b...)
		return nil
	})
	if err != nil || next != nil {
		t.Fatalf("stream: %v, next %v", err, next)
	}
	inventorytest.CheckChanges(t, streamed, applied)
	for _, limit := range []int{1, 13, 5000} {
		got, pages := readAll(t, f, invredis.NewCursor(from, to), limit, true)
		inventorytest.CheckChanges(t, got, applied)
		if limit == 5000 && pages != 1 {
			t.Errorf("%d pages for a limit above the range", pages)
		}
		// Any page size: the very same changes in the same order.
		for i := range got {
			if got[i].ID != streamed[i].ID {
				t.Fatalf("limit %d: change %d is %s, the streamed read says %s", limit, i, got[i].ID, streamed[i].ID)
			}
		}
	}
}

// TestFeedCursorUnderConcurrentWrites: a reader pages through a range while writers are
// still applying events in it; once the range end is past, it has every change of the range
// exactly once.
func TestFeedCursorUnderConcurrentWrites(t *testing.T) {
	client, _ := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{Groups: 4})
	f := feedOn(s, 50*time.Millisecond, 0)
	from := time.Now()
	to := from.Add(400 * time.Millisecond)
	stop := make(chan struct{})
	var all []inventory.Result
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res := inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, fmt.Sprintf("W%d", w%3), fmt.Sprintf("K%d", i%7), 1))
				mu.Lock()
				all = append(all, res[0])
				mu.Unlock()
			}
		})
	}
	cur := invredis.NewCursor(from, to)
	var got []inventory.Change
	for cur != nil {
		page, err := f.Read(context.Background(), cur, 9)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Changes...)
		cur = page.Next
	}
	close(stop) // the writers went on past the range end while the reader finished
	wg.Wait()
	var inRange []inventory.Result
	for _, r := range all {
		at := r.Stock.UpdatedAt
		if !at.Before(from.Truncate(time.Millisecond)) && at.Before(to) {
			inRange = append(inRange, r)
		}
	}
	if len(inRange) == 0 {
		t.Fatal("no event fell in the range")
	}
	// The feed orders and filters by stream id; an entry's `at` is the same server clock, read
	// at the start of its script, so it can only be earlier than its id.
	ids := map[string]bool{}
	for _, c := range got {
		if ids[c.EventID] {
			t.Fatalf("event %s twice", c.EventID)
		}
		ids[c.EventID] = true
	}
	missing := 0
	for _, r := range inRange {
		if !ids[r.EventID] && r.Stock.UpdatedAt.Before(to.Add(-time.Millisecond)) {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d changes of the range never returned (%d returned, %d applied in range)", missing, len(got), len(inRange))
	}
}

func TestFeedRetentionAndBadCursor(t *testing.T) {
	client, _ := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{Retention: 48 * time.Hour})
	f := feedOn(s, time.Second, 0)
	old := time.Now().Add(-49 * time.Hour)
	if _, err := f.Read(context.Background(), invredis.NewCursor(old, old.Add(time.Hour)), 10); !errors.Is(err, inventory.ErrExpired) {
		t.Errorf("expired range: %v", err)
	}
	for _, bad := range []string{"", "!!", "e30", invredis.NewCursor(time.Now(), time.Now().Add(-time.Hour)).String()} {
		if _, err := invredis.ParseCursor(bad); !errors.Is(err, inventory.ErrBadCursor) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
}

// TestFeedSkipsFinishedStreams: once a complete range's stream was read to its end, the
// next pages of the cursor do not read it again.
func TestFeedSkipsFinishedStreams(t *testing.T) {
	client, _ := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{Groups: 4})
	reg := prometheus.NewRegistry()
	// 48 h of clock skew: 5 days × 4 groups = 20 streams, of which only one holds changes.
	// The feed's clock runs a second ahead: the range ending just after the writes is over.
	// Continuations off: every page reads afresh (TestFeedPageContinuations has them on).
	f := invredis.NewFeed(s, invredis.FeedOptions{ClockSkew: 48 * time.Hour, Settle: time.Nanosecond, Registerer: reg,
		Continuations: -1, Now: func() time.Time { return time.Now().Add(time.Second) }})
	calls := func() float64 {
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 {
			t.Fatalf("gather: %v, %d families", err, len(mfs))
		}
		return mfs[0].GetMetric()[0].GetCounter().GetValue()
	}
	from := time.Now().Add(-time.Second)
	var events []inventory.Event
	for i := range 40 {
		events = append(events, inventorytest.Ev(inventory.Receipt, "S1", fmt.Sprintf("K%02d", i), 1))
	}
	inventorytest.MustApply(t, s, events...)
	to := time.Now().Add(time.Millisecond)
	page, err := f.Read(context.Background(), invredis.NewCursor(from, to), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := calls(); got != 20 {
		t.Fatalf("first page: %v XRANGE calls, want one per stream (20)", got)
	}
	if len(page.Changes) != 10 || page.Next == nil || len(page.Next.Done) != 19 {
		t.Fatalf("first page: %d changes, next %+v; want 10 and the 19 empty streams done", len(page.Changes), page.Next)
	}
	next, err := invredis.ParseCursor(page.Next.String())
	if err != nil || len(next.Done) != 19 {
		t.Fatalf("the cursor does not carry its finished streams: %v, %+v", err, next)
	}
	got := len(page.Changes)
	for cur := next; cur != nil; cur = page.Next {
		before := calls()
		if page, err = f.Read(context.Background(), cur, 10); err != nil {
			t.Fatal(err)
		}
		// One call for the stream with changes; none once it too is done.
		if c := calls() - before; c > 1 || (c == 0) != (len(cur.Done) == 20) {
			t.Errorf("a later page (%d streams done) issued %v XRANGE calls", len(cur.Done), c)
		}
		got += len(page.Changes)
	}
	if got != len(events) {
		t.Errorf("read %d changes, applied %d", got, len(events))
	}
}

// TestFeedPageContinuations: pages of a complete range continue what the page before read
// ahead. They return exactly what pages read afresh return, with fewer calls; a cursor
// used twice (a client's retry), two readers interleaved, a budget too small to keep
// anything, and a Redis that hangs or restarts between pages change nothing but the calls.
func TestFeedPageContinuations(t *testing.T) {
	// A Redis that keeps what it acknowledged across a kill, for the restart below.
	client, srv := testenv.Redis(t, "appendonly yes", "appendfsync always")
	s := newStoreOn(client, invredis.Options{Groups: 4, Now: twoDays()})
	from := time.Now().Add(-time.Second)
	applied := inventorytest.ApplyRandom(t, s, 8, 300, 6, 15, 1)
	to := time.Now().Add(time.Millisecond)
	feed := func(continuations int) (*invredis.Feed, func(string, ...string) float64) {
		reg := prometheus.NewRegistry()
		f := invredis.NewFeed(s, invredis.FeedOptions{Chunk: 64, ClockSkew: 48 * time.Hour, Settle: time.Nanosecond,
			Continuations: continuations, Registerer: reg, Now: func() time.Time { return time.Now().Add(time.Second) }})
		return f, func(name string, label ...string) float64 { return testenv.Metric(t, reg, name, label...) }
	}
	afresh, afreshMetric := feed(-1)
	want, pages := readAll(t, afresh, invredis.NewCursor(from, to), 37, false)
	inventorytest.CheckChanges(t, want, applied)
	same := func(what string, got []inventory.Change) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d changes, pages read afresh gave %d", what, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID {
				t.Fatalf("%s: change %d is %s, read afresh %s", what, i, got[i].ID, want[i].ID)
			}
		}
	}

	f, metric := feed(0)
	got, n := readAll(t, f, invredis.NewCursor(from, to), 37, false)
	same("continued", got)
	if n != pages || metric("jaego_changes_page_continuations_total", "result", "hit") != float64(pages-1) ||
		metric("jaego_changes_page_continuations_total", "result", "miss") != 0 {
		t.Errorf("%d pages (afresh %d): %v continued, %v read afresh; want every page after the first continued", n, pages,
			metric("jaego_changes_page_continuations_total", "result", "hit"), metric("jaego_changes_page_continuations_total", "result", "miss"))
	}
	if c, a := metric("jaego_changes_redis_calls_total"), afreshMetric("jaego_changes_redis_calls_total"); c >= a {
		t.Errorf("continued pages made %v XRANGE calls, pages read afresh %v", c, a)
	}

	// Every cursor asked twice (a retry after a lost answer): the second read of a page
	// finds no continuation, reads afresh, and returns the same page.
	got = nil
	for cur := invredis.NewCursor(from, to); cur != nil; {
		first, err := f.Read(context.Background(), cur, 37)
		if err != nil {
			t.Fatal(err)
		}
		again, err := f.Read(context.Background(), cur, 37)
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Changes) != len(again.Changes) || (first.Next == nil) != (again.Next == nil) ||
			(first.Next != nil && first.Next.String() != again.Next.String()) {
			t.Fatalf("a page read twice: %d changes then %d", len(first.Changes), len(again.Changes))
		}
		got = append(got, again.Changes...)
		cur = again.Next
	}
	same("every page read twice", got)

	// Two readers interleaved, each with its own cursors.
	var a, b []inventory.Change
	for ca, cb := invredis.NewCursor(from, to), invredis.NewCursor(from, to); ca != nil || cb != nil; {
		for _, r := range []struct {
			cur **invredis.Cursor
			out *[]inventory.Change
			lim int
		}{{&ca, &a, 37}, {&cb, &b, 50}} {
			if *r.cur == nil {
				continue
			}
			page, err := f.Read(context.Background(), *r.cur, r.lim)
			if err != nil {
				t.Fatal(err)
			}
			*r.out = append(*r.out, page.Changes...)
			*r.cur = page.Next
		}
	}
	same("reader A", a)
	same("reader B", b)

	// A budget of one entry: whatever otter keeps or evicts, the pages are the same.
	tiny, _ := feed(1)
	got, _ = readAll(t, tiny, invredis.NewCursor(from, to), 37, false)
	same("budget of one entry", got)

	// Redis hangs after a page left its reads ahead: pages answer from what was read ahead
	// until one needs Redis, and that one ends with its context. Once Redis is back the
	// same cursor reads on. Then Redis is killed and restarted (it keeps what it
	// acknowledged): a read cut by the kill is retried by rueidis, or fails the page, whose
	// retry reads afresh.
	first, err := f.Read(context.Background(), invredis.NewCursor(from, to), 37)
	if err != nil {
		t.Fatal(err)
	}
	got = append([]inventory.Change(nil), first.Changes...)
	cur := first.Next
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		page, err := f.Read(ctx, cur, 37)
		cancel()
		if err != nil {
			break
		}
		got, cur = append(got, page.Changes...), page.Next
		if cur == nil {
			t.Fatal("the whole range was read while Redis hung")
		}
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for restarted := false; cur != nil; {
		page, err := f.Read(context.Background(), cur, 37)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no page after the restart: %v", err)
			}
			continue // the restart cut a read: the retry reads afresh
		}
		got = append(got, page.Changes...)
		cur = page.Next
		if !restarted && len(got) > len(want)/2 {
			restarted = true
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
		}
	}
	same("across a hang and a restart", got)
}

// TestSnapshotPlusDeltasEqualsLive: 64 goroutines write while a store snapshot is taken;
// the snapshot plus every change after its cursor equals the live state exactly.
func TestSnapshotPlusDeltasEqualsLive(t *testing.T) {
	client, _ := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{Groups: 4})
	f := invredis.NewFeed(s, invredis.FeedOptions{Chunk: 50})
	inventorytest.ApplyRandom(t, s, 8, 400, 1, 60, 2) // stock before the snapshot
	var wg sync.WaitGroup
	wg.Go(func() { inventorytest.ApplyRandom(t, s, 64, 6400, 1, 60, 3) })
	cur, err := f.PositionCursor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.StoreStock(context.Background(), "F00")
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	state := map[string]inventory.Stock{}
	for _, st := range snap {
		if prev, ok := state[st.SKU]; !ok || st.Version > prev.Version {
			state[st.SKU] = st
		}
	}
	changes := 0
	for {
		page, err := f.Read(context.Background(), cur, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Changes {
			state[c.SKU] = c.ApplyTo(state[c.SKU])
		}
		changes += len(page.Changes)
		if len(page.Changes) == 0 {
			break // writers are done: nothing more after the cursor
		}
		cur = page.Next
	}
	live, err := s.StoreStock(context.Background(), "F00")
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != len(state) {
		t.Fatalf("live has %d SKUs, snapshot + deltas %d", len(live), len(state))
	}
	for _, st := range live {
		if state[st.SKU] != st {
			t.Errorf("%s: live %+v, snapshot + deltas %+v", st.SKU, st, state[st.SKU])
		}
	}
	t.Logf("snapshot of %d records + %d changes", len(snap), changes)
}

func TestEstateSnapshotPages(t *testing.T) {
	client, _ := testenv.Redis(t)
	s := newStoreOn(client, invredis.Options{Groups: 3})
	var events []inventory.Event
	for st := 0; st < 25; st++ {
		for k := 0; k < 4; k++ {
			events = append(events, inventorytest.Ev(inventory.Receipt, fmt.Sprintf("E%02d", st), fmt.Sprintf("K%d", k), int64(st*10+k+1)))
		}
	}
	inventorytest.MustApply(t, s, events...)
	seen := map[inventory.Key]int64{}
	token, pages := "", 0
	for {
		page, err := s.Estate(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			seen[inventory.Key{Store: it.Store, SKU: it.SKU}] = it.OnHand
		}
		pages++
		if token = page.Next; token == "" {
			break
		}
	}
	if len(seen) != 100 {
		t.Fatalf("estate snapshot has %d records in %d pages, want 100", len(seen), pages)
	}
	for _, e := range events {
		if seen[inventory.Key{Store: e.Store, SKU: e.SKU}] != e.Qty {
			t.Errorf("%s/%s: %d", e.Store, e.SKU, seen[inventory.Key{Store: e.Store, SKU: e.SKU}])
		}
	}
	if _, err := s.Estate(context.Background(), "garbage!"); !errors.Is(err, inventory.ErrBadCursor) {
		t.Errorf("bad page token: %v", err)
	}
}

// TestFeedEmbedded: jaego dev's embedded server serves the feed the same way.
// The embedded server is an in-process Go server (one lock, Lua in Go) under the race
// detector: a quarter of the events, every check the same (32,000 reads of one change
// each took 100 s of the suite).
func TestFeedEmbedded(t *testing.T) {
	t.Parallel()
	testFeedExactlyOnce(t, testenv.EmbeddedRedis(t), 500)
}

// redisFeeds makes feeds on client for the shared suite, each with its own keys and a clock
// the suite can move ahead.
func redisFeeds(client rueidis.Client) inventorytest.NewFeed {
	return func(t *testing.T) inventorytest.Feed {
		s := newStoreOn(client, invredis.Options{Groups: 4})
		var ahead atomic.Int64
		f := invredis.NewFeed(s, invredis.FeedOptions{Chunk: 17, Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
		return inventorytest.Feed{Store: s, Feed: f, Ahead: func(d time.Duration) { ahead.Add(int64(d)) }}
	}
}

func TestFeedSuiteStandalone(t *testing.T) {
	client, _ := testenv.Redis(t)
	inventorytest.ChangeFeed(t, redisFeeds(client))
}

func TestFeedSuiteEmbedded(t *testing.T) {
	inventorytest.ChangeFeed(t, redisFeeds(testenv.EmbeddedRedis(t)), inventorytest.Light)
}

// The shared suite of inventory.TailFeed on every Redis: a hub on the Redis feed fans out
// exactly and resumes far behind, on a standalone server, a Cluster and the embedded one.
func TestTailSuite(t *testing.T) {
	standalone, _ := testenv.Redis(t)
	cluster, _ := testenv.RedisCluster(t)
	for name, c := range map[string]rueidis.Client{"standalone": standalone, "cluster": cluster, "embedded": testenv.EmbeddedRedis(t)} {
		size := inventorytest.Full
		if name == "embedded" {
			size = inventorytest.Light
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inventorytest.Tail(t, func(t *testing.T) (inventory.StockStore, inventory.TailFeed) {
				s := newStoreOn(c, invredis.Options{Groups: 4})
				return s, invredis.NewFeed(s, invredis.FeedOptions{})
			}, size)
		})
	}
}
