package redis_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

// BenchmarkWriteAck: events applied in batches of 16 by parallel writers, acknowledged by
// the master (leader, the baseline of the same run) or once a replica confirmed them
// (replicas), on one master with a replica and on a Cluster of 3 masters with a replica
// each, all on loopback. The ratio of their events/s (and their p99 per batch) is the
// cost of --write-ack replicas:
//
//	go test -run '^$' -bench WriteAck -count 3 ./internal/inventory/redis
func BenchmarkWriteAck(b *testing.B) {
	b.Run("node", func(b *testing.B) {
		master, _ := testenv.RedisWithReplica(b)
		client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{master.Addr}, DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(client.Close)
		testenv.Eventually(b, "the replica in sync", 30*time.Second, func() bool {
			n, err := client.Do(context.Background(), client.B().Wait().Numreplicas(1).Timeout(100).Build()).AsInt64()
			return err == nil && n == 1
		})
		benchWriteAck(b, client)
	})
	b.Run("cluster", func(b *testing.B) {
		client, _ := testenv.RedisClusterWithReplicas(b, 1, 5*time.Second)
		benchWriteAck(b, client)
	})
}

func benchWriteAck(b *testing.B, client rueidis.Client) {
	for _, ack := range []string{"leader", "replicas"} {
		b.Run(ack, func(b *testing.B) {
			s := newStoreOn(client, invredis.Options{AckReplicas: ack == "replicas"})
			var seq atomic.Int64
			var mu sync.Mutex
			var took []time.Duration
			b.SetParallelism(4) // 4 × GOMAXPROCS writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					batch := make([]inventory.Event, 16)
					for i := range batch {
						n := seq.Add(1)
						batch[i] = inventory.Event{EventID: fmt.Sprintf("b-%s-%d", ack, n), Type: inventory.Receipt,
							Store: fmt.Sprintf("S%d", n%64), SKU: fmt.Sprintf("K%d", n%100), Qty: 1}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					start := time.Now()
					if _, err := s.Apply(ctx, batch); err != nil {
						b.Error(err)
					}
					mine = append(mine, time.Since(start))
					cancel()
				}
				mu.Lock()
				took = append(took, mine...)
				mu.Unlock()
			})
			b.ReportMetric(float64(b.N*16)/b.Elapsed().Seconds(), "events/s")
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
