package redis_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

// TestAckedWritesSurviveFailover: on a Cluster of 3 masters with a replica each, 4 writers
// apply receipts at full speed to one store while the window Redis leaves open is opened on
// purpose: the store's replica is stopped (SIGSTOP) and cut from its master (CLIENT KILL
// TYPE replica: otherwise the kernel holds the stream for it) while writes go on, then the
// master is SIGKILLed as the replica resumes, and the replica is elected without those
// writes. With --write-ack leader the writes answered during the window are lost (the test
// asks for at least one: the contrast that proves it can fail); with replicas none of them
// was answered (503 not_replicated), so no acknowledged write is missing. The killed master
// comes back as the new master's replica, and writes are acknowledged again.
func TestAckedWritesSurviveFailover(t *testing.T) {
	for _, ack := range []string{"leader", "replicas"} {
		t.Run(ack, func(t *testing.T) {
			t.Parallel()
			lost := ackedWritesLost(t, ack == "replicas")
			switch {
			case ack == "replicas" && lost != 0:
				t.Fatalf("--write-ack replicas lost %d acknowledged writes", lost)
			case ack == "leader" && lost == 0:
				t.Fatalf("--write-ack leader lost no acknowledged write with the window open: the test cannot tell the two apart")
			}
			t.Logf("--write-ack %s: %d acknowledged writes lost in the failover", ack, lost)
		})
	}
}

// ackedWritesLost runs the scenario and answers how many acknowledged receipts the promoted
// replica lacks.
func ackedWritesLost(t *testing.T, ackReplicas bool) int64 {
	client, nodes := testenv.RedisClusterWithReplicas(t, 1, 2*time.Second)
	s := newStoreOn(client, invredis.Options{AckReplicas: ackReplicas})
	master := testenv.MasterOf(t, client, nodes, s.Keys().Stock("FO"))
	replica := testenv.ReplicaOf(t, nodes, master)

	var acked, refused atomic.Int64
	var seq atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				e := inventory.Event{EventID: fmt.Sprintf("fo-%d", seq.Add(1)), Type: inventory.Receipt, Store: "FO", SKU: "A", Qty: 1}
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				res, err := s.Apply(ctx, []inventory.Event{e})
				cancel()
				if err == nil && res[0].Status == inventory.Applied {
					acked.Add(1)
				} else {
					refused.Add(1)
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	testenv.Eventually(t, "writes going on", 30*time.Second, func() bool { return acked.Load() >= 200 })
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	mc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{master.Addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.Do(context.Background(), mc.B().ClientKill().TypeReplica().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	mc.Close()
	// The window: writes go on while the replica cannot take them (answered with leader,
	// refused as not replicated with replicas).
	before, refusedBefore := acked.Load(), refused.Load()
	testenv.Eventually(t, "writes during the window", 30*time.Second, func() bool {
		return acked.Load() >= before+50 || refused.Load() >= refusedBefore+8
	})
	master.Stop() // SIGKILL
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the replica elected master", 60*time.Second, func() bool {
		role, err := replica.Role(context.Background())
		return err == nil && role == "master"
	})
	if err := master.Restart(); err != nil { // back, empty, as the new master's replica
		t.Fatal(err)
	}
	after := acked.Load()
	testenv.Eventually(t, "writes acknowledged again after the failover", 60*time.Second, func() bool { return acked.Load() >= after+50 })
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close
	var st inventory.Stock
	testenv.Eventually(t, "the record readable on the new master", 30*time.Second, func() bool {
		st, err = s.Get(context.Background(), "FO", "A")
		return err == nil
	})
	return max(0, acked.Load()-st.OnHand)
}
