package inventorytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/prom"
	"github.com/jaego/jaego/internal/testenv"
)

// NewTail returns an empty stock store private to the test and the tail feed of its
// changes.
type NewTail func(t *testing.T) (inventory.StockStore, inventory.TailFeed)

// Tail is the shared suite of inventory.TailFeed: a Hub on the feed (the live tail of design
// §4) fans every change out exactly once, a subscriber resumes from its own cursor far
// behind, and a page's cursor resumes a stream. Every implementation (Redis standalone,
// Cluster and embedded; in memory) passes it.
func Tail(t *testing.T, newTail NewTail, size ...Size) {
	scale := scaleOf(size)
	t.Run("FansOutExactly", func(t *testing.T) { t.Parallel(); s, f := newTail(t); testHubFansOutExactly(t, s, f) })
	// 500 pages of the hub's at Full, 125 Light: both past the 100 a resume once gave up at.
	t.Run("ResumesFarBehind", func(t *testing.T) { t.Parallel(); s, f := newTail(t); testHubResumesFarBehind(t, s, f, scale(5000)) })
}

// checkExactly: got holds every event of want not in skip exactly once (all of them unless
// partial: a subscriber dropped for being slow has a prefix), and nothing else, each store ×
// SKU in apply order (the feed's promise; across stores its order is its own).
func checkExactly(t *testing.T, who string, got []string, want []inventory.Event, skip map[string]bool, partial ...bool) {
	t.Helper()
	key := map[string]string{}
	var order = map[string][]string{}
	for _, e := range want {
		if !skip[e.EventID] {
			key[e.EventID] = e.Store + "/" + e.SKU
			order[e.Store+"/"+e.SKU] = append(order[e.Store+"/"+e.SKU], e.EventID)
		}
	}
	seen := map[string]bool{}
	next := map[string]int{}
	for j, id := range got {
		k, ok := key[id]
		switch {
		case !ok:
			t.Fatalf("%s: change %d is %s, not one it should get", who, j, id)
		case seen[id]:
			t.Fatalf("%s: change %d, %s, came twice", who, j, id)
		case order[k][next[k]] != id:
			t.Fatalf("%s: change %d is %s, but %s comes first on %s", who, j, id, order[k][next[k]], k)
		}
		seen[id] = true
		next[k]++
	}
	if len(seen) != len(key) && (len(partial) == 0 || !partial[0]) {
		t.Fatalf("%s: got %d of %d changes", who, len(seen), len(key))
	}
}

// RunHub runs a hub on feed (o.Wait 100 ms) until the test ends.
func RunHub(t *testing.T, feed inventory.TailFeed, o inventory.HubOptions) *inventory.Hub {
	o.Wait = 100 * time.Millisecond
	hub := inventory.NewHub(feed, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		wait, stop := context.WithTimeout(context.Background(), time.Minute)
		defer stop()
		testenv.Recv(t, wait, done, "the hub's end")
	})
	return hub
}

// Follower collects what one subscriber receives until it has want changes.
type Follower struct {
	mu      sync.Mutex
	ids     []string
	last    string
	dropped bool
	enough  chan struct{}
	once    sync.Once
}

// count is how many changes the follower has: its delivery may still be writing.
func (f *Follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// Enough is closed once the follower has the changes it wanted, or was dropped.
func (f *Follower) Enough() <-chan struct{} { return f.enough }

// Follow subscribes to hub from cursor ("" from now) until ctx ends, collecting changes
// until want arrived; block, when given, holds every delivery (a subscriber that does not
// keep up). It returns once the subscriber is admitted, with the channel of its end.
func Follow(t *testing.T, ctx context.Context, hub *inventory.Hub, cursor string, want int, block chan struct{}) (*Follower, <-chan error) {
	f := &Follower{enough: make(chan struct{})}
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- hub.Follow(ctx, cursor, func() { close(started) }, func(b inventory.TailBatch) error {
			if block != nil {
				<-block // a subscriber that does not keep up
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if b.Dropped {
				f.dropped, f.last = true, b.Cursor
				f.once.Do(func() { close(f.enough) })
				return nil
			}
			for _, c := range b.Changes {
				f.ids = append(f.ids, c.EventID)
			}
			if b.Cursor != "" {
				f.last = b.Cursor
			}
			if len(f.ids) >= want {
				f.once.Do(func() { close(f.enough) })
			}
			return nil
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("follow: %v", err)
	}
	return f, done
}

// testHubFansOutExactly: 200 subscribers of one hub, and one that joins late from a cursor
// of its own, each receive every change applied after they joined, once, each store × SKU
// in apply order; one that does not keep up is dropped with a cursor that resumes exactly
// after what it got.
func testHubFansOutExactly(t *testing.T, store inventory.StockStore, feed inventory.TailFeed) {
	hub := RunHub(t, feed, inventory.HubOptions{Buffer: 32, Page: 2, MaxStreams: 300})
	// 200 subscribers under -race on a loaded machine took 30 s on the embedded server once.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 300
	events := make([]inventory.Event, n)
	for i := range events {
		events[i] = Ev(inventory.Receipt, fmt.Sprintf("S%d", i%7), "A", 1)
	}
	var subs []*Follower
	for range 200 {
		f, _ := Follow(t, ctx, hub, "", n, nil)
		subs = append(subs, f)
	}
	block := make(chan struct{})
	slow, slowDone := Follow(t, ctx, hub, "", n, block)
	MustApply(t, store, events[:100]...)
	// A late subscriber from the cursor of a read of the first 40.
	page, err := feed.Changes(ctx, time.Now().Add(-time.Hour), inventory.OpenEnd(time.Now()), "", 40) // an open range
	if err != nil || len(page.Changes) != 40 {
		t.Fatalf("first page: %d %v", len(page.Changes), err)
	}
	late, _ := Follow(t, ctx, hub, page.Next, n-40, nil)
	for i := 100; i < n; i += 10 {
		MustApply(t, store, events[i:i+10]...)
	}
	for i, f := range append(subs, late) {
		select {
		case <-f.enough:
		case <-ctx.Done():
			t.Fatalf("subscriber %d got %d changes", i, f.count())
		}
		skip := map[string]bool{}
		if f == late {
			for _, c := range page.Changes {
				skip[c.EventID] = true
			}
		}
		f.mu.Lock()
		checkExactly(t, fmt.Sprintf("subscriber %d", i), f.ids, events, skip, f.dropped)
		f.mu.Unlock()
	}
	close(block) // the slow one takes what it had queued, then hears it was dropped
	testenv.Recv(t, ctx, slow.enough, "the slow subscriber's drop")
	if err := testenv.Recv(t, ctx, slowDone, "the slow subscriber's end"); err != nil || !slow.dropped {
		t.Fatalf("the slow subscriber: dropped %v, %v", slow.dropped, err)
	}
	// Resuming from where it was dropped gives the rest exactly (resumed again, from its
	// own last cursor, each time a resumed stream is dropped in turn on a busy machine).
	got := len(slow.ids)
	all := append([]string{}, slow.ids...)
	last := slow.last
	for resumes := 0; len(all) < n; resumes++ {
		if resumes == 10 {
			t.Fatalf("dropped 10 times while resuming: %d of %d changes", len(all), n)
		}
		rest, _ := Follow(t, ctx, hub, last, n-len(all), nil)
		testenv.Recv(t, ctx, rest.enough, "the resumed subscriber's changes")
		rest.mu.Lock()
		all, last = append(all, rest.ids...), rest.last
		rest.mu.Unlock()
	}
	checkExactly(t, fmt.Sprintf("slow subscriber + resume (%d before the drop)", got), all, events, nil)
}

// testHubResumesFarBehind: a subscriber resuming far behind (here 500 pages of the hub's, in the issue 1M changes)
// while the hub serves others at the head catches up: it reads on as long as it makes
// progress (it gave up after 100 pages before), streaming the backlog after its first
// page, while the second half of the changes is applied, so that it hands over from its
// stream to its pages and then to the hub's reads with changes arriving all along.
func testHubResumesFarBehind(t *testing.T, store inventory.StockStore, feed inventory.TailFeed, n int) {
	reg := prometheus.NewRegistry()
	hub := RunHub(t, feed, inventory.HubOptions{Page: 10, Buffer: 1000, Observer: prom.NewHub(reg)}) // nobody is dropped for being slow
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events := make([]inventory.Event, n)
	for i := range events {
		events[i] = Ev(inventory.Receipt, fmt.Sprintf("S%d", i%7), "A", 1)
	}
	start, err := feed.Changes(ctx, time.Now().Add(-time.Hour), inventory.OpenEnd(time.Now()), "", 1) // an open range, empty yet
	if err != nil || len(start.Changes) != 0 {
		t.Fatalf("start: %d %v", len(start.Changes), err)
	}
	head, _ := Follow(t, ctx, hub, "", n, nil) // keeps the hub reading at the head
	MustApply(t, store, events[:n/2]...)
	// The hub has read them (so the late one is a backlog behind it, not level with it).
	testenv.Eventually(t, "the head subscriber's first half", time.Minute, func() bool { return head.count() >= n/2 })
	late, done := Follow(t, ctx, hub, start.Next, n, nil)
	for i := n / 2; i < n; i += 50 {
		MustApply(t, store, events[i:min(i+50, n)]...)
	}
	testenv.Recv(t, ctx, head.enough, "the head subscriber's changes")
	if head.dropped {
		t.Fatal("the head subscriber was dropped")
	}
	select {
	case <-late.enough:
	case err := <-done:
		t.Fatalf("the resumed stream ended after %d changes: %v", late.count(), err)
	case <-ctx.Done():
		t.Fatalf("the resumed subscriber got %d of %d changes", late.count(), n)
	}
	late.mu.Lock()
	defer late.mu.Unlock()
	checkExactly(t, "the resumed subscriber", late.ids, events, nil)
	// It read a page, then streamed the rest of the backlog, on its own.
	paged, streamed := testenv.Metric(t, reg, "jaego_tail_catchup_changes_total", "how", "paged"), testenv.Metric(t, reg, "jaego_tail_catchup_changes_total", "how", "streamed")
	if paged < 10 || streamed < float64(n/2-10) || paged+streamed > float64(n) {
		t.Errorf("caught up %v paged, %v streamed, of %d changes (the first %d applied before it started)", paged, streamed, n, n/2)
	}
}
