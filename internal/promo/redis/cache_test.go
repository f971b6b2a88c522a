package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/promo"
	"github.com/jaego/jaego/internal/testenv"
)

// targets runs a test on a private redis-server, a private 3-master Cluster and the
// embedded server of jaego dev.
func targets(t *testing.T, test func(t *testing.T, client rueidis.Client, classicPubSub bool)) {
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		c, _ := testenv.Redis(t)
		test(t, c, false)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c, _ := testenv.RedisCluster(t)
		test(t, c, false)
	})
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		test(t, testenv.EmbeddedRedis(t), true)
	})
}

var quiet = slog.New(slog.DiscardHandler)

var day0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// build returns n promotions named after version tag v, so a reader can tell whether what
// it got is exactly one whole version.
func build(tag string, n int) []promo.Promotion {
	ps := make([]promo.Promotion, n)
	for i := range ps {
		s := promo.Spec{Name: fmt.Sprintf("%s-%d", tag, i), StartsAt: day0, EndsAt: day0.Add(48 * time.Hour),
			Channels: []string{"online"}, Targets: []string{fmt.Sprintf("SKU%d", i%50), "ALL"},
			Condition: promo.Condition{MinQty: 1}, Gifts: []promo.Gift{{SKU: "G", Qty: 1}}}
		s.Normalize()
		ps[i] = promo.Promotion{ID: fmt.Sprintf("%s-%04d", tag, i), Status: promo.Active, Spec: s}
	}
	return ps
}

func TestPublishAndRead(t *testing.T) {
	targets(t, func(t *testing.T, client rueidis.Client, _ bool) {
		ctx := context.Background()
		c := New(client, Options{Logger: quiet, Grace: time.Minute})
		if _, err := c.Current(ctx); !errors.Is(err, ErrNotBuilt) {
			t.Fatalf("before any build: %v", err)
		}
		var unpublished int64
		c.beforePublish = func(v int64) {
			unpublished = v
			// Written, not yet published: the keys carry the build TTL, the pointer is unmoved.
			for _, k := range []string{c.metaKey(v), c.listKey(v)} {
				if ttl, _ := client.Do(ctx, client.B().Pttl().Key(k).Build()).AsInt64(); ttl <= 0 {
					t.Errorf("unpublished %s: PTTL %d, want a build TTL", k, ttl)
				}
			}
			if cur, _ := c.Version(ctx); cur == v {
				t.Error("the pointer moved before publication")
			}
		}
		v1, err := c.Publish(ctx, 1, promo.Meta{Day: "2026-11-22"}, build("a", 700))
		if err != nil || v1 != 1 || unpublished != 1 {
			t.Fatalf("publish: %d %v", v1, err)
		}
		cat, err := c.Current(ctx)
		if err != nil || cat.Version != 1 || cat.Len() != 700 || cat.Day != "2026-11-22" {
			t.Fatalf("current: %+v %v", cat, err)
		}
		if got := cat.ProductGifts("SKU7", promo.Where{Channel: "online", At: day0.Add(time.Hour)}); len(got) != 14 {
			t.Fatalf("SKU7 is a target of 14 promotions, got %d", len(got))
		}
		v2, err := c.Publish(ctx, 1, promo.Meta{Day: "2026-11-22"}, build("b", 3))
		if err != nil || v2 != 2 {
			t.Fatalf("second publish: %d %v", v2, err)
		}
		// The current version is persistent; the replaced one expires after the grace period.
		for k, want := range map[string]string{c.metaKey(2): "persistent", c.listKey(2): "persistent", c.metaKey(1): "grace", c.listKey(1): "grace"} {
			ttl, _ := client.Do(ctx, client.B().Pttl().Key(k).Build()).AsInt64()
			if (want == "persistent") != (ttl == -1) || (want == "grace" && (ttl <= 0 || ttl > time.Minute.Milliseconds())) {
				t.Errorf("%s: PTTL %d, want %s", k, ttl, want)
			}
		}
		if cat, _ := c.Current(ctx); cat.Version != 2 || cat.Len() != 3 {
			t.Fatalf("after the flip: %d %d", cat.Version, cat.Len())
		}
		// An empty version is a version too (every promotion stopped).
		c.beforePublish = nil
		if v, err := c.Publish(ctx, 1, promo.Meta{}, nil); err != nil || v != 3 {
			t.Fatalf("empty publish %d %v", v, err)
		}
		if cat, _ := c.Current(ctx); cat.Len() != 0 {
			t.Fatal("empty version not empty")
		}
	})
}

// TestIncompleteVersionRefused: a version whose list lost elements is never published, and
// a reader that finds one (keys tampered with after publication) refuses it.
func TestIncompleteVersionRefused(t *testing.T) {
	c0, _ := testenv.Redis(t)
	ctx := context.Background()
	c := New(c0, Options{Logger: quiet})
	c.beforePublish = func(v int64) { c0.Do(ctx, c0.B().Rpop().Key(c.listKey(v)).Build()) }
	if _, err := c.Publish(ctx, 1, promo.Meta{}, build("x", 5)); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("publish of a truncated version: %v", err)
	}
	if v, _ := c.Version(ctx); v != 0 {
		t.Fatalf("pointer moved to %d", v)
	}
	c.beforePublish = nil
	v, err := c.Publish(ctx, 1, promo.Meta{}, build("y", 5))
	if err != nil {
		t.Fatal(err)
	}
	c0.Do(ctx, c0.B().Rpop().Key(c.listKey(v)).Build())
	if _, err := c.Current(ctx); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("reading a truncated version: %v", err)
	}
}

// TestPointerRace: 1,000 readers while the version flips every 3 ms. No reader ever gets a
// version that is not exactly what was published under its number (each reader checks
// every version it is handed, in full), no reader sees the version go backwards, and each
// version is loaded from Redis at most once.
func TestPointerRace(t *testing.T) {
	targets(t, func(t *testing.T, client rueidis.Client, _ bool) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := New(client, Options{Logger: quiet})
		var loadsMu sync.Mutex
		loads := map[int64]int{}
		c.onLoad = func(v int64) {
			loadsMu.Lock()
			loads[v]++
			loadsMu.Unlock()
		}
		var sizes sync.Map // version → promotions published under it
		publish := func(i int) {
			n := 1 + (i*197)%600 // 1..600 promotions: 1 to 3 RPUSH chunks
			tag := fmt.Sprintf("b%d", i)
			// The version number is known only once claimed, so record the size by tag.
			sizes.Store(tag, n)
			if _, err := c.Publish(ctx, 1, promo.Meta{Day: tag}, build(tag, n)); err != nil {
				t.Error(err)
			}
		}
		publish(0)

		const readers, flips = 1000, 40
		var wg sync.WaitGroup
		var reads atomic.Int64
		start := make(chan struct{})
		for range readers {
			wg.Go(func() {
				select {
				case <-start:
				case <-ctx.Done():
					return
				}
				last := int64(0)
				for ctx.Err() == nil {
					cat, err := c.Current(ctx)
					if err != nil {
						if ctx.Err() == nil {
							t.Error(err)
						}
						return
					}
					reads.Add(1)
					if cat.Version < last {
						t.Errorf("version went back from %d to %d", last, cat.Version)
						return
					}
					if cat.Version == last {
						continue // checked when this reader first got it; a version never changes
					}
					last = cat.Version
					n, _ := sizes.Load(cat.Day)
					ps := cat.Promotions()
					if len(ps) != n {
						t.Errorf("version %d (%s): %d promotions, published %d", cat.Version, cat.Day, len(ps), n)
						return
					}
					for _, p := range ps {
						if p.Name[:len(cat.Day)+1] != cat.Day+"-" {
							t.Errorf("version %d (%s) holds %s", cat.Version, cat.Day, p.Name)
							return
						}
					}
				}
			})
		}
		close(start)
		tick := time.NewTicker(3 * time.Millisecond)
		for i := 1; i <= flips; i++ {
			testenv.Recv(t, ctx, tick.C, "the next flip's tick")
			publish(i)
		}
		tick.Stop()
		cancel()
		wg.Wait()
		loadsMu.Lock()
		defer loadsMu.Unlock()
		for v, n := range loads {
			if n > 1 {
				t.Errorf("version %d loaded %d times", v, n)
			}
		}
		t.Logf("%d reads over %d versions, %d versions loaded", reads.Load(), flips+1, len(loads))
		if len(loads) < 2 {
			t.Errorf("readers saw %d versions: the flips did not reach them", len(loads))
		}
	})
}

// TestStaleBuilder: builder A's lock lease runs out while it writes; builder B takes the
// lock and publishes; A's publication is refused, and the pointer never goes back.
func TestStaleBuilder(t *testing.T) {
	targets(t, func(t *testing.T, client rueidis.Client, classic bool) {
		ctx := context.Background()
		locks := lock.New(client, lock.Options{ClassicPubSub: classic})
		a, b := New(client, Options{Logger: quiet}), New(client, Options{Logger: quiet})
		stopWatch := watchPointer(t, a)
		defer stopWatch()

		la, err := locks.Lock(ctx, promo.RebuildLock, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		aWritten, bDone := make(chan struct{}), make(chan struct{})
		bounded, stopBounded := context.WithTimeout(ctx, time.Minute)
		defer stopBounded()
		a.beforePublish = func(int64) {
			close(aWritten)
			testenv.Recv(t, bounded, bDone, "builder B's publication")
		}
		aErr := make(chan error, 1)
		go func() {
			_, err := a.Publish(ctx, la.Token, promo.Meta{}, build("a", 10))
			aErr <- err
		}()
		testenv.Recv(t, bounded, aWritten, "builder A's writes")
		lb, err := locks.Lock(ctx, promo.RebuildLock, 0) // waits for A's lease to run out
		if err != nil {
			t.Fatal(err)
		}
		if lb.Token <= la.Token {
			t.Fatalf("tokens %d then %d", la.Token, lb.Token)
		}
		vb, err := b.Publish(ctx, lb.Token, promo.Meta{}, build("b", 10))
		if err != nil {
			t.Fatal(err)
		}
		close(bDone)
		if err := <-aErr; !errors.Is(err, promo.ErrStaleToken) {
			t.Fatalf("stale builder: %v", err)
		}
		if v, _ := a.Version(ctx); v != vb {
			t.Fatalf("pointer %d, want B's %d", v, vb)
		}
		// A stale token cannot even claim a version now.
		if _, err := a.Publish(ctx, la.Token, promo.Meta{}, build("a2", 1)); !errors.Is(err, promo.ErrStaleToken) {
			t.Fatalf("stale claim: %v", err)
		}
		_ = lb.Unlock(ctx)
	})
}

// TestConcurrentRebuilds: two instances rebuild 25 times each at once; every rebuild
// publishes, the pointer only rises, and ends at the last version handed out.
func TestConcurrentRebuilds(t *testing.T) {
	targets(t, func(t *testing.T, client rueidis.Client, classic bool) {
		ctx := context.Background()
		src := sourceFunc(func(context.Context, time.Time, time.Time) ([]promo.Promotion, error) { return build("r", 20), nil })
		stopWatch := watchPointer(t, New(client, Options{Logger: quiet}))
		var wg sync.WaitGroup
		var published sync.Map
		for i := range 2 {
			rb := promo.NewRebuilder(promo.RebuilderOptions{Source: src, Publisher: New(client, Options{Logger: quiet}),
				Locker: lock.New(client, lock.Options{ClassicPubSub: classic}), Logger: quiet})
			wg.Go(func() {
				for range 25 {
					v, err := rb.Rebuild(ctx, "admin")
					if err != nil {
						t.Errorf("instance %d: %v", i, err)
						return
					}
					if _, dup := published.LoadOrStore(v, i); dup {
						t.Errorf("version %d published twice", v)
					}
				}
			})
		}
		wg.Wait()
		stopWatch()
		if v, _ := New(client, Options{Logger: quiet}).Version(ctx); v != 50 {
			t.Fatalf("pointer %d after 50 rebuilds", v)
		}
	})
}

type sourceFunc func(ctx context.Context, from, to time.Time) ([]promo.Promotion, error)

func (f sourceFunc) Candidates(ctx context.Context, from, to time.Time) ([]promo.Promotion, error) {
	return f(ctx, from, to)
}

// watchPointer reads the pointer in a loop until stopped and fails the test if it ever
// goes down.
func watchPointer(t *testing.T, c *Cache) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := int64(0)
		for ctx.Err() == nil {
			v, err := c.Version(ctx)
			if err != nil {
				continue
			}
			if v < last {
				t.Errorf("pointer went down from %d to %d", last, v)
				return
			}
			last = v
		}
	}()
	return func() { cancel(); <-done }
}

// TestRunRebuilds: the daily batch rebuilds at once when the version served is another
// day's, retries a failed rebuild, and rebuilds when Soon asks.
func TestRunRebuilds(t *testing.T) {
	client, _ := testenv.Redis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := New(client, Options{Logger: quiet})
	if _, err := c.Publish(ctx, 1, promo.Meta{Day: "2000-01-01"}, build("old", 1)); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	src := sourceFunc(func(context.Context, time.Time, time.Time) ([]promo.Promotion, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("database restarting")
		}
		return build("new", 2), nil
	})
	rb := promo.NewRebuilder(promo.RebuilderOptions{Source: src, Publisher: c, Locker: lock.New(client, lock.Options{}), Logger: quiet})
	done := make(chan struct{})
	go func() { rb.Run(ctx); close(done) }()
	testenv.Eventually(t, "today's version after a failed first try", 15*time.Second, func() bool {
		cat, err := c.Current(ctx)
		return err == nil && cat.Day == rb.Day() && cat.Len() == 2
	})
	if calls.Load() != 2 {
		t.Fatalf("source read %d times, want 2 (one failure, one retry)", calls.Load())
	}
	v, _ := c.Version(ctx)
	rb.Soon()
	testenv.Eventually(t, "a rebuild on Soon", 15*time.Second, func() bool { n, _ := c.Version(ctx); return n > v })
	cancel()
	wait, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	testenv.Recv(t, wait, done, "the rebuilder's end")
}

// waitFor polls cond until it holds, for at most 15 s: a state to reach, not a time to wait.
