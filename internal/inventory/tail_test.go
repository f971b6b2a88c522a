package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/testenv"
)

func runHub(t *testing.T, feed inventory.TailFeed, o inventory.HubOptions) *inventory.Hub {
	o.Wait = 100 * time.Millisecond
	hub := inventory.NewHub(feed, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return hub
}

// follower collects what one subscriber receives until it has want changes.
type follower struct {
	mu      sync.Mutex
	ids     []string
	last    string
	dropped bool
	enough  chan struct{}
	once    sync.Once
}

func follow(t *testing.T, ctx context.Context, hub *inventory.Hub, cursor string, want int, block chan struct{}) (*follower, <-chan error) {
	f := &follower{enough: make(chan struct{})}
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

// TestHubFansOutExactly: 200 subscribers of one hub, and one that joins late from a cursor
// of its own, each receive every change applied after they joined, once, in feed order;
// one that does not keep up is dropped with a cursor that resumes exactly after what it got.
func TestHubFansOutExactly(t *testing.T) {
	store := inmem.New(inmem.Options{})
	hub := runHub(t, store, inventory.HubOptions{Buffer: 32, Page: 2, MaxStreams: 300})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 300
	events := make([]inventory.Event, n)
	for i := range events {
		events[i] = inventorytest.Ev(inventory.Receipt, fmt.Sprintf("S%d", i%7), "A", 1)
	}
	var subs []*follower
	for range 200 {
		f, _ := follow(t, ctx, hub, "", n, nil)
		subs = append(subs, f)
	}
	block := make(chan struct{})
	slow, slowDone := follow(t, ctx, hub, "", n, block)
	inventorytest.MustApply(t, store, events[:100]...)
	// A late subscriber from the cursor of a read of the first 40.
	page, err := store.Changes(ctx, time.Now().Add(-time.Hour), time.Now().AddDate(100, 0, 0), "", 40) // an open range
	if err != nil || len(page.Changes) != 40 {
		t.Fatalf("first page: %d %v", len(page.Changes), err)
	}
	late, _ := follow(t, ctx, hub, page.Next, n-40, nil)
	for i := 100; i < n; i += 10 {
		inventorytest.MustApply(t, store, events[i:i+10]...)
	}
	for i, f := range append(subs, late) {
		select {
		case <-f.enough:
		case <-ctx.Done():
			t.Fatalf("subscriber %d got %d changes", i, len(f.ids))
		}
		want := events
		if f == late {
			want = events[40:]
		}
		f.mu.Lock()
		for j, id := range f.ids {
			if j >= len(want) || id != want[j].EventID {
				t.Fatalf("subscriber %d: change %d is %s, want %s", i, j, id, want[min(j, len(want)-1)].EventID)
			}
		}
		f.mu.Unlock()
	}
	close(block) // the slow one takes what it had queued, then hears it was dropped
	testenv.Recv(t, ctx, slow.enough, "the slow subscriber's drop")
	if err := testenv.Recv(t, ctx, slowDone, "the slow subscriber's end"); err != nil || !slow.dropped {
		t.Fatalf("the slow subscriber: dropped %v, %v", slow.dropped, err)
	}
	// Resuming from where it was dropped gives the rest exactly.
	got := len(slow.ids)
	rest, _ := follow(t, ctx, hub, slow.last, n-got, nil)
	testenv.Recv(t, ctx, rest.enough, "the resumed subscriber's changes")
	all := append(append([]string{}, slow.ids...), rest.ids...)
	for j, id := range all {
		if id != events[j].EventID {
			t.Fatalf("slow subscriber + resume: change %d is %s, want %s (%d before the drop)", j, id, events[j].EventID, got)
		}
	}
}

func TestHubCap(t *testing.T) {
	store := inmem.New(inmem.Options{})
	hub := runHub(t, store, inventory.HubOptions{MaxStreams: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, d1 := follow(t, ctx, hub, "", 1, nil)
	_, d2 := follow(t, ctx, hub, "", 1, nil)
	err := hub.Follow(ctx, "", func() { t.Error("a third subscriber was admitted") }, func(inventory.TailBatch) error { return nil })
	if !errors.Is(err, inventory.ErrTooManyStreams) {
		t.Fatalf("third subscriber: %v", err)
	}
	cancel()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	testenv.Recv(t, wait, d1, "the first subscriber's end")
	testenv.Recv(t, wait, d2, "the second subscriber's end")
	if err := hub.Follow(context.Background(), "not a cursor", func() {}, func(inventory.TailBatch) error { return nil }); err == nil {
		t.Errorf("a malformed cursor was followed")
	}
}

// A subscriber resuming far behind (here 500 pages of the hub's, in the issue 1M changes)
// while the hub serves others at the head catches up: it reads on as long as it makes
// progress (it gave up after 100 pages before).
func TestHubResumesFarBehind(t *testing.T) {
	store := inmem.New(inmem.Options{})
	hub := runHub(t, store, inventory.HubOptions{Page: 10, Buffer: 1000}) // nobody is dropped for being slow
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 5000
	events := make([]inventory.Event, n)
	for i := range events {
		events[i] = inventorytest.Ev(inventory.Receipt, fmt.Sprintf("S%d", i%7), "A", 1)
	}
	start, err := store.Changes(ctx, time.Now().Add(-time.Hour), time.Now().AddDate(100, 0, 0), "", 1) // an open range, empty yet
	if err != nil || len(start.Changes) != 0 {
		t.Fatalf("start: %d %v", len(start.Changes), err)
	}
	head, _ := follow(t, ctx, hub, "", n, nil) // keeps the hub reading at the head
	inventorytest.MustApply(t, store, events...)
	testenv.Recv(t, ctx, head.enough, "the head subscriber's changes")
	if head.dropped {
		t.Fatal("the head subscriber was dropped")
	}
	late, done := follow(t, ctx, hub, start.Next, n, nil)
	select {
	case <-late.enough:
	case err := <-done:
		t.Fatalf("the resumed stream ended after %d changes: %v", len(late.ids), err)
	case <-ctx.Done():
		t.Fatalf("the resumed subscriber got %d of %d changes", len(late.ids), n)
	}
	late.mu.Lock()
	defer late.mu.Unlock()
	for j, id := range late.ids {
		if id != events[j].EventID {
			t.Fatalf("change %d is %s, want %s", j, id, events[j].EventID)
		}
	}
}

// A cursor the feed no longer holds is refused before the stream starts (the request's
// error, so a 410 over HTTP), not after.
func TestHubRefusesExpiredCursorBeforeStart(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store := inmem.New(inmem.Options{Retention: time.Hour, Now: clock})
	hub := runHub(t, store, inventory.HubOptions{})
	page, err := store.Changes(context.Background(), now.Add(-30*time.Minute), now.AddDate(100, 0, 0), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	err = hub.Follow(context.Background(), page.Next, func() { t.Error("an expired cursor's stream started") },
		func(inventory.TailBatch) error { return nil })
	if !errors.Is(err, inventory.ErrExpired) {
		t.Fatalf("expired cursor: %v", err)
	}
}

// One key cannot take every slot: beyond MaxPerKey its streams are refused, while another
// key and anonymous callers still get theirs.
func TestHubCapPerKey(t *testing.T) {
	store := inmem.New(inmem.Options{})
	hub := runHub(t, store, inventory.HubOptions{MaxStreams: 8, MaxPerKey: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	greedy := jaego.WithCaller(ctx, "greedy")
	var ends []<-chan error
	for range 2 {
		_, d := follow(t, greedy, hub, "", 1, nil)
		ends = append(ends, d)
	}
	err := hub.Follow(greedy, "", func() { t.Error("a third stream of one key was admitted") }, func(inventory.TailBatch) error { return nil })
	if !errors.Is(err, inventory.ErrTooManyStreams) || !strings.Contains(err.Error(), "greedy") {
		t.Fatalf("third stream of one key: %v", err)
	}
	_, d := follow(t, jaego.WithCaller(ctx, "other"), hub, "", 1, nil)
	_, d2 := follow(t, ctx, hub, "", 1, nil)
	ends = append(ends, d, d2)
	cancel()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for _, d := range ends {
		testenv.Recv(t, wait, d, "a stream's end")
	}
	// The key's slots are free again once its streams ended.
	again, stopAgain := context.WithCancel(jaego.WithCaller(context.Background(), "greedy"))
	_, d3 := follow(t, again, hub, "", 1, nil)
	stopAgain()
	testenv.Recv(t, wait, d3, "the stream's end")
}
