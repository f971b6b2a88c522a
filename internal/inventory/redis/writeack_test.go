package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

// TestWriteAckKeepsThePoolBound: writes waiting for a replica that never confirms (a master
// without one: every WAIT runs to its timeout), from 48 writers whose deadlines end while
// others hold every pooled connection, keep the connections to the node within rueidis's
// pool for blocking commands and its pipelines: no deadline reaches rueidis (groupAcked).
// The same calls made straight with the writers' contexts make the pool's count drift and
// open more (logged).
func TestWriteAckKeepsThePoolBound(t *testing.T) {
	t.Parallel()
	const pool, pipelines = 4, 4 // rueidis opens at most 4 pipelines to one standalone node
	most := func(straight bool) (int, int) {
		srv, err := testenv.StartRedis(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true, DisableRetry: true, BlockingPoolSize: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := newStoreOn(c, invredis.Options{AckReplicas: true})
		end := testenv.SampleConns(t, testenv.Port(srv.Addr))
		var wg sync.WaitGroup
		var mu sync.Mutex
		refused := 0
		for w := range 48 {
			wg.Go(func() {
				for i := range 6 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(20+(w+i)%30)*time.Millisecond)
					var err error
					if straight { // what groupAcked did before
						d, _ := ctx.Deadline()
						err = c.DoMulti(ctx, c.B().Set().Key(fmt.Sprint("k", w)).Value("v").Build(),
							c.B().Wait().Numreplicas(1).Timeout(max(1, time.Until(d).Milliseconds()-5)).Build())[1].Error()
						if err == nil {
							err = invredis.ErrNotReplicated // no replica: WAIT answers 0
						}
					} else {
						_, err = s.Apply(ctx, []inventory.Event{{EventID: fmt.Sprintf("wa-%d-%d", w, i), Type: inventory.Receipt,
							Store: fmt.Sprintf("S%d", w), SKU: "A", Qty: 1}})
					}
					cancel()
					mu.Lock()
					if err != nil {
						refused++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// The client still works after it.
		if err := c.Do(context.Background(), c.B().Ping().Build()).Error(); err != nil {
			t.Fatal(err)
		}
		most, _ := end()
		return most, refused
	}
	with, refused := most(false)
	if with > pool+pipelines {
		t.Errorf("%d connections to the node with a pool of %d (+%d pipelines)", with, pool, pipelines)
	}
	if refused != 48*6 {
		t.Errorf("%d of %d writes refused, want all: no replica confirms them", refused, 48*6)
	}
	straight, _ := most(true)
	t.Logf("writes whose WAIT outlives their deadline: at most %d connections through the store, %d made straight with the writers' contexts (pool %d + up to %d pipelines)",
		with, straight, pool, pipelines)
}
