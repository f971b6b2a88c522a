package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/breaker"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	"github.com/jaego/jaego/internal/inventory/inmem"
	"github.com/jaego/jaego/internal/inventory/inventorytest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

var quiet = slog.New(slog.DiscardHandler)

// A closed breaker changes nothing: the guarded store passes the whole store suite.
func TestStoreSuite(t *testing.T) {
	inventorytest.StockStore(t, func(t *testing.T) inventory.StockStore {
		return breaker.NewStore(inmem.New(inmem.Options{}), nil, breaker.New(breaker.Options{Logger: quiet}), nil)
	})
}

// openCopy is a migrated SQLite copy holding one record: S1/A at version 7, 3 on hand.
func openCopy(t *testing.T) *invdb.Copy {
	sd, err := sqldb.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	if _, err := sd.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	c := invdb.New(sd)
	if _, err := c.Claim(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute)
	if err := c.Commit(context.Background(), 1, inventory.Projection{Cursor: "x", AsOf: at,
		Records: []inventory.Stock{{Store: "S1", SKU: "A", OnHand: 3, Version: 7, UpdatedAt: at}}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, s inventory.StockStore) (inventory.Stock, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	return s.Get(ctx, "S1", "A")
}

// The breaker on a real Redis: a hung Redis (SIGSTOP) fails calls until the window's
// failure rate opens it; while open, writes are refused at once with a retry time, without
// reaching Redis, and reads come from the copy marked fallback; once Redis answers again the
// trial calls close it by itself.
func TestOpensAndClosesOnARealRedis(t *testing.T) {
	client, srv := testenv.Redis(t)
	primary := invredis.New(client, invredis.Options{})
	b := breaker.New(breaker.Options{Window: 20, MinCalls: 10, OpenFor: 300 * time.Millisecond, HalfOpenCalls: 5, Logger: quiet})
	s := breaker.NewStore(primary, openCopy(t), b, nil)
	inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "A", 5))
	if st, err := get(t, s); err != nil || st.Source != inventory.SourcePrimary || st.OnHand != 5 {
		t.Fatalf("closed: %+v %v", st, err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	for i := 0; b.Status().State == breaker.Closed; i++ {
		if i == 10 {
			t.Fatalf("still closed after %d failed calls: %+v", i, b.Status())
		}
		st, err := get(t, s) // Redis times out; the copy answers
		if err != nil || st.Source != inventory.SourceFallback || st.OnHand != 3 || st.Version != 7 {
			t.Fatalf("a failed read: %+v %v", st, err)
		}
	}
	if st := b.Status(); st.State != breaker.Open || st.FailureRate < 0.1 {
		t.Fatalf("after the window reached its failure rate: %+v", st)
	}
	_, err := s.Apply(context.Background(), []inventory.Event{inventorytest.Ev(inventory.Sale, "S1", "A", 1)})
	var open *breaker.OpenError
	if !errors.As(err, &open) || !errors.Is(err, jaego.ErrUnavailable) || open.RetryAfter() <= 0 || open.RetryAfter() > 300*time.Millisecond {
		t.Fatalf("a write while open: %v", err)
	}
	if st, err := get(t, s); err != nil || st.Source != inventory.SourceFallback {
		t.Fatalf("a read while open: %+v %v", st, err)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the breaker closed by trial calls after Redis came back", 30*time.Second, func() bool {
		_, _ = get(t, s) // trial calls, once the open delay is over
		return b.Status().State == breaker.Closed
	}, func() string { return fmt.Sprintf("%+v", b.Status()) })
	if st, err := get(t, s); err != nil || st.Source != inventory.SourcePrimary || st.OnHand != 5 {
		t.Fatalf("closed again: %+v %v", st, err)
	}
}

// Slow calls open it as failed ones do; without a copy, reads are refused like writes.
func TestSlowCallsOpenIt(t *testing.T) {
	b := breaker.New(breaker.Options{SlowCall: time.Nanosecond, Window: 10, MinCalls: 5, OpenFor: time.Hour, Logger: quiet})
	s := breaker.NewStore(inmem.New(inmem.Options{}), nil, b, nil)
	inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "A", 5))
	for range 4 {
		if _, err := s.Get(context.Background(), "S1", "A"); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.Status(); st.State != breaker.Open || st.SlowRate < 0.99 || st.FailureRate != 0 {
		t.Fatalf("after 5 slow calls: %+v", st)
	}
	if _, err := s.Get(context.Background(), "S1", "A"); !errors.Is(err, jaego.ErrUnavailable) {
		t.Fatalf("a read while open without a copy: %v", err)
	}
}

// Fewer calls than MinCalls never open it, whatever they did; refusals are not failures.
func TestMinCallsAndRefusals(t *testing.T) {
	b := breaker.New(breaker.Options{Window: 10, MinCalls: 5, Logger: quiet})
	s := breaker.NewStore(inmem.New(inmem.Options{}), nil, b, nil)
	for range 20 {
		res := inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Reserve, "S1", "A", 5)) // refused: no stock
		if res[0].Status != inventory.Rejected {
			t.Fatalf("reserve without stock: %+v", res[0])
		}
	}
	if st := b.Status(); st.State != breaker.Closed || st.FailureRate != 0 {
		t.Fatalf("refusals opened it: %+v", st)
	}
	b2 := breaker.New(breaker.Options{Window: 10, MinCalls: 5, Logger: quiet})
	for range 4 {
		if err := b2.Allow(); err != nil {
			t.Fatal(err)
		}
		b2.Record(jaego.ErrUnavailable, 0)
	}
	if st := b2.Status(); st.State != breaker.Closed {
		t.Fatalf("4 failures of 4 calls, below MinCalls, opened it: %+v", st)
	}
}

// Operators force it open for maintenance: it stays open past its delay until handed back.
func TestForcedOpen(t *testing.T) {
	b := breaker.New(breaker.Options{OpenFor: time.Millisecond, HalfOpenCalls: 1, Logger: quiet})
	b.Force()
	if st := b.Status(); st.State != breaker.ForcedOpen {
		t.Fatalf("forced: %+v", st)
	}
	for range 3 {
		if err := b.Allow(); err == nil {
			t.Fatal("a forced-open breaker let a call through")
		}
	}
	b.Auto()
	if err := b.Allow(); err != nil {
		t.Fatalf("a trial call after auto: %v", err)
	}
	b.Record(nil, 0)
	if st := b.Status(); st.State != breaker.Closed {
		t.Fatalf("after a good trial call: %+v", st)
	}
}

// heapAfterGC is the live heap, once the garbage is collected.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A breaker costs little memory, and a forced_open → auto → closed cycle adds none: a
// failsafe-go count threshold of math.MaxUint32 once allocated a 512 MiB bitset at New and
// at every return to closed.
func TestBreakerMemory(t *testing.T) {
	before := heapAfterGC()
	b := breaker.New(breaker.Options{HalfOpenCalls: 1, Logger: quiet})
	made := heapAfterGC()
	if grew := int64(made) - int64(before); grew > 1<<20 {
		t.Fatalf("a new breaker took %d bytes of heap", grew)
	}
	for range 5 {
		b.Force()
		b.Auto()
		if err := b.Allow(); err != nil { // the one trial call
			t.Fatal(err)
		}
		b.Record(nil, time.Millisecond)
		if st := b.Status().State; st != breaker.Closed {
			t.Fatalf("after a good trial call: %s", st)
		}
	}
	if grew := int64(heapAfterGC()) - int64(made); grew > 1<<20 {
		t.Fatalf("5 forced_open → auto → closed cycles took %d bytes of heap", grew)
	}
	runtime.KeepAlive(b)
}

// An empty Redis is never served as the truth: with the epoch marks required, the very first
// read after a FLUSHALL (no guard running, nothing written since) finds its group's mark gone,
// puts the breaker in its lost state, and is answered from the copy; so are the reads after
// it, single and bulk, and writes are refused with store_lost. auto cannot end the loss;
// the marks coming back (a restore) do, and an operator's forced_open outlives it.
func TestLostRedisIsNeverServed(t *testing.T) {
	client, _ := testenv.Redis(t)
	ctx := context.Background()
	primary := invredis.New(client, invredis.Options{RequireEpoch: true})
	if err := primary.MarkEpoch(ctx, false); err != nil {
		t.Fatal(err)
	}
	b := breaker.New(breaker.Options{Logger: quiet})
	s := breaker.NewStore(primary, openCopy(t), b, nil)
	inventorytest.MustApply(t, s, inventorytest.Ev(inventory.Receipt, "S1", "A", 5))
	if st, err := get(t, s); err != nil || st.Source != inventory.SourcePrimary || st.OnHand != 5 {
		t.Fatalf("before the loss: %+v %v", st, err)
	}
	if err := client.Do(ctx, client.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		st, err := get(t, s)
		if err != nil || st.Source != inventory.SourceFallback || st.OnHand != 3 || st.Version != 7 {
			t.Fatalf("read %d after the flush: %+v %v, want the copy's record", i, st, err)
		}
		ls, err := s.GetMany(ctx, []inventory.Key{{Store: "S1", SKU: "A"}})
		if err != nil || !ls[0].Found || ls[0].Stock.Source != inventory.SourceFallback {
			t.Fatalf("bulk read %d after the flush: %+v %v", i, ls, err)
		}
	}
	if st := b.Status(); st.State != breaker.Lost {
		t.Fatalf("breaker after the first read of a flushed Redis: %+v", st)
	}
	if _, err := s.Apply(ctx, []inventory.Event{inventorytest.Ev(inventory.Receipt, "S1", "A", 1)}); !errors.Is(err, inventory.ErrLost) {
		t.Fatalf("a write while lost: %v", err)
	}
	if err := b.Auto(); jaego.CodeOf(err) != jaego.CodeBreakerLost || b.Status().State != breaker.Lost {
		t.Fatalf("auto during the loss: %v, %s", err, b.Status().State)
	}
	b.Force() // an operator's maintenance, during the loss: kept apart from it
	b.Restored()
	if st := b.Status().State; st != breaker.ForcedOpen {
		t.Fatalf("after the restore, under an operator's forced_open: %s", st)
	}
	if err := b.Auto(); err != nil || b.Status().State == breaker.Lost || b.Status().State == breaker.ForcedOpen {
		t.Fatalf("auto after the restore: %v %s", err, b.Status().State)
	}
}

// Reservations go through the breaker like every other call: forced open, a hold is refused
// at once (503 store_unavailable) and Redis is not written; a hung Redis's failures count
// until the breaker opens, and then holds fail fast instead of waiting the whole timeout.
func TestReservationsThroughTheBreaker(t *testing.T) {
	client, srv := testenv.Redis(t)
	ctx := context.Background()
	primary := invredis.New(client, invredis.Options{})
	b := breaker.New(breaker.Options{Window: 10, MinCalls: 5, OpenFor: time.Hour, Logger: quiet})
	r := breaker.NewReservations(primary, b)
	inventorytest.MustApply(t, primary, inventorytest.Ev(inventory.Receipt, "S1", "A", 5))
	hold := func(id string) error {
		hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, _, err := r.Hold(hctx, inventory.HoldRequest{ID: id, Store: "S1", Items: []inventory.Item{{SKU: "A", Qty: 1}}})
		return err
	}
	if err := hold("before"); err != nil {
		t.Fatal(err)
	}
	b.Force()
	if err := hold("forced"); jaego.CodeOf(err) != jaego.CodeUnavailable || !errors.As(err, new(*breaker.OpenError)) {
		t.Fatalf("a hold with the breaker forced open: %v", err)
	}
	if _, err := primary.Reservation(ctx, "forced"); !errors.Is(err, jaego.ErrNotFound) {
		t.Fatalf("the refused hold reached Redis: %v", err)
	}
	if st, _ := primary.Get(ctx, "S1", "A"); st.Reserved != 1 {
		t.Fatalf("reserved %d, want the one hold of before", st.Reserved)
	}
	if err := b.Auto(); err != nil {
		t.Fatal(err)
	}
	b.Record(nil, 0) // the half-open trial: closed again
	for b.Status().State != breaker.Closed {
		if err := b.Allow(); err != nil {
			t.Fatalf("half-open: %v", err)
		}
		b.Record(nil, 0)
	}
	// A hung Redis: holds time out and count, until the breaker opens and refuses at once.
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer srv.Resume()
	for i := 0; b.Status().State == breaker.Closed; i++ {
		if i == 10 {
			t.Fatalf("still closed after %d timed-out holds", i)
		}
		if err := hold(fmt.Sprintf("hung-%d", i)); err == nil {
			t.Fatal("a hold on a hung Redis succeeded")
		}
	}
	var open *breaker.OpenError // refused by the breaker, not timed out at Redis
	if err := hold("fast"); !errors.As(err, &open) {
		t.Fatalf("a hold with the breaker open: %v", err)
	}
}

// With no traffic at all, the probe closes a half-open breaker (an operator's auto) within
// HalfOpenCalls periods, and ends an open breaker's wait early once Redis answers three
// pings in a row; while Redis is hung, it stays open. Forced open is left alone.
func TestProbeWithoutTraffic(t *testing.T) {
	client, srv := testenv.Redis(t)
	primary := invredis.New(client, invredis.Options{})
	b := breaker.New(breaker.Options{Window: 10, MinCalls: 5, OpenFor: time.Hour, HalfOpenCalls: 5, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Probe(ctx, primary.Ping, 5*time.Millisecond); close(done) }()
	defer func() {
		cancel()
		wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		testenv.Recv(t, wait, done, "the probe's end")
	}()
	b.Force()
	for range 20 { // forced open stays so, however long the probe runs
		if st := b.Status().State; st != breaker.ForcedOpen {
			t.Fatalf("forced open under the probe: %s", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.Auto(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the probe closing the breaker after auto", 10*time.Second, func() bool { return b.Status().State == breaker.Closed })

	// Open by failures (a hung Redis) for an hour: it stays open while Redis is hung...
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	for i := 0; b.Status().State == breaker.Closed; i++ {
		if i == 20 {
			t.Fatal("still closed after 20 failed calls")
		}
		if err := b.Allow(); err == nil {
			pctx, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
			err := primary.Ping(pctx)
			stop()
			b.Record(err, 20*time.Millisecond)
		}
	}
	for range 20 {
		if st := b.Status().State; st != breaker.Open {
			t.Fatalf("open, Redis hung: %s", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// ...and closes within seconds of Redis answering again, long before its hour.
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the probe closing the breaker once Redis answers", 10*time.Second, func() bool { return b.Status().State == breaker.Closed })
}

// A burst of 500 concurrent calls on a healthy Redis never opens the breaker: the calls
// beyond MaxInFlight are refused at once (overloaded, counted, nothing written) and the rest
// are answered. 100 concurrent copies of one event opened it on jaego dev's embedded server
// before (their wait in the client's queue looked slow). Checked on a real Redis with the
// defaults and on the embedded server with dev's slow-call threshold.
func TestBurstDoesNotOpenTheBreaker(t *testing.T) {
	standalone, _ := testenv.Redis(t)
	for name, c := range map[string]struct {
		client rueidis.Client
		o      breaker.Options
	}{
		"redis":    {standalone, breaker.Options{Logger: quiet}},
		"embedded": {testenv.EmbeddedRedis(t), breaker.Options{SlowCall: breaker.DevSlowCall, Logger: quiet}},
	} {
		t.Run(name, func(t *testing.T) {
			b := breaker.New(c.o)
			s := breaker.NewStore(invredis.New(c.client, invredis.Options{}), nil, b, nil)
			same := inventorytest.Ev(inventory.Receipt, "B1", "A", 1)
			var applied, duplicate, overloaded atomic.Int64
			var wg sync.WaitGroup
			for i := range 500 {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					var err error
					var res []inventory.Result
					if i%2 == 0 {
						res, err = s.Apply(ctx, []inventory.Event{same})
					} else {
						_, err = s.Get(ctx, "B1", "A")
						if errors.Is(err, jaego.ErrNotFound) {
							err = nil
						}
					}
					switch {
					case jaego.CodeOf(err) == jaego.CodeOverloaded:
						overloaded.Add(1)
					case err != nil:
						t.Errorf("call %d: %v", i, err)
					case res != nil && res[0].Status == inventory.Applied:
						applied.Add(1)
					case res != nil:
						duplicate.Add(1)
					}
				})
			}
			wg.Wait()
			if st := b.Status(); st.State != breaker.Closed {
				t.Fatalf("a burst on a healthy Redis: %+v", st)
			}
			if applied.Load() != 1 {
				t.Fatalf("the event applied %d times", applied.Load())
			}
			if st, err := s.Get(context.Background(), "B1", "A"); err != nil || st.OnHand != 1 {
				t.Fatalf("after the burst: %+v %v", st, err)
			}
			t.Logf("applied 1, duplicates %d, overloaded %d of 500", duplicate.Load(), overloaded.Load())
		})
	}
}

// The open state's rule, in a synctest bubble (virtual time: the durations below are
// exact, not timings of a machine): a Redis down for 3 s (a Cluster's failover) with the
// default 30 s open time gets calls again 0.3 s after it answers (three pings of 100 ms)
// and the breaker closes with no traffic 3 s later (30 trial pings). A Redis that answers
// pings but fails calls makes the early ends wait longer each time (0.6 s, 1.2 s, … up to
// the open time), and a close resets it.
func TestProbeOpenRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var up atomic.Bool
		down := jaego.Unavailable("redis", errors.New("connection refused"))
		ping := func(context.Context) error {
			if up.Load() {
				return nil
			}
			return down
		}
		b := breaker.New(breaker.Options{Window: 10, MinCalls: 5, Logger: quiet}) // open for 30 s, 30 trial calls
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go b.Probe(ctx, ping, 100*time.Millisecond)
		fail := func() { // calls until the breaker opens, each failing
			for b.Status().State == breaker.Closed || b.Status().State == breaker.HalfOpen {
				if b.Allow() == nil {
					b.Record(down, time.Millisecond)
				}
			}
		}
		// admitted waits (in virtual time) until a call is let through, and says how long.
		admitted := func() time.Duration {
			start := time.Now()
			for b.Allow() != nil {
				time.Sleep(10 * time.Millisecond)
			}
			return time.Since(start)
		}
		fail()
		time.Sleep(3 * time.Second) // the failover: pings fail, the breaker stays open
		if st := b.Status().State; st != breaker.Open {
			t.Fatalf("after 3 s of a dead Redis: %s", st)
		}
		up.Store(true)
		if d := admitted(); d > 400*time.Millisecond {
			t.Fatalf("calls let through %s after Redis answered again, want 0.3 s (three pings)", d)
		}
		b.Record(nil, time.Millisecond)
		start := time.Now()
		for b.Status().State != breaker.Closed {
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(start); d > 3100*time.Millisecond {
			t.Fatalf("closed %s after the first trial with no traffic, want 3 s (29 trial pings)", d)
		}
		// Pings answered, calls failing: each early end waits twice as long as the last.
		var waits []time.Duration
		fail()
		for range 5 {
			waits = append(waits, admitted())
			b.Record(down, time.Millisecond)
			fail()
		}
		for i, want := range []time.Duration{300, 600, 1200, 2400, 4800} { // pings needed × 100 ms, the first within a period
			if d := waits[i]; d <= (want-100)*time.Millisecond || d > (want+10)*time.Millisecond {
				t.Fatalf("early end %d after %s, want %dms (waits %v)", i+1, d, want, waits)
			}
		}
		// A close resets the rule: the next outage ends early after three pings again.
		for b.Status().State != breaker.Closed {
			if b.Allow() == nil {
				b.Record(nil, time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond)
		}
		fail()
		if d := admitted(); d > 400*time.Millisecond {
			t.Fatalf("after a close, calls let through %s after an open, want 0.3 s", d)
		}
		cancel()
	})
}
