package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/inventory/kafkatest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

// TestClusterFailover is issue 15's Cluster end to end, on the built binary: jaego serve on
// a 3-master + 3-replica Redis Cluster with the Kafka intake and the durable copy. Every
// part answers on the Cluster (events, lookups, the feed, snapshots, promotions, the
// locks). Then, with Kafka and HTTP load running, a master is SIGKILLed: its replica is
// elected, jaego carries on by itself (reads flagged fallback while the breaker is open,
// writes refused with Retry-After and retried by the clients, the consumer retrying
// without committing), and at the end every total is exact and every event is in the feed
// once.
func TestClusterFailover(t *testing.T) {
	t.Parallel() // a binary of its own on servers of its own: it waits, mostly, while the others run
	bin := buildJaego(t)
	nodes, err := testenv.StartRedisClusterWithReplicas(t.TempDir(), 3, 1, 2*time.Second)
	for _, n := range nodes {
		t.Cleanup(n.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range nodes[:3] {
		addrs = append(addrs, n.Addr)
	}
	redis, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(redis.Close)
	store := invredis.New(redis, invredis.Options{})
	pg := testenv.Postgres(t)
	broker := testenv.Kafka(t, 8, invkafka.DefaultTopic, invkafka.DefaultTopic+invkafka.DLQSuffix)
	if err := run(context.Background(), []string{"jaego", "migrate", "--postgres", pg}, func(string) string { return "" }, nil, &bytes.Buffer{}, t.Output()); err != nil {
		t.Fatal(err)
	}
	p := startJaego(t, bin, "serve", "--http", "127.0.0.1:0", "--redis", strings.Join(addrs, ","), "--kafka", broker, "--postgres", pg,
		"--kafka-session-timeout", "1s", "--log-level", "info", "--lock-watchdog", "2s",
		// The default open time (30 s): the probe must end it early once the Cluster recovered.
		"--breaker-window", "10", "--breaker-min-calls", "5", "--breaker-half-open-calls", "3",
		"--breaker-slow-call", "10s")

	// Every part on the Cluster.
	first := dayOf(1500, 11)
	kafkatest.Produce(t, broker, first)
	testenv.Eventually(t, "the first day applied", time.Minute, func() bool { return appliedCount(t, redis, store) == int64(len(first)) })
	probe := first[0]
	if a := call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, ""); a.status != 200 || a.body["source"] != "primary" {
		t.Fatalf("lookup: %+v", a)
	}
	if a := call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/snapshot", ""); a.status != 200 || len(a.body["items"].([]any)) == 0 {
		t.Fatalf("store snapshot: %+v", a)
	}
	if a := call(t, "GET", p.api+"/v1/changes?from="+time.Now().Add(-time.Hour).Format(time.RFC3339)+"&limit=10", ""); a.status != 200 || len(a.body["changes"].([]any)) != 10 {
		t.Fatalf("feed: %+v", a)
	}
	if a := call(t, "POST", p.api+"/v1/admin/promotions", salePromotion); a.status != 201 {
		t.Fatalf("create promotion: %+v", a)
	}
	order := `{"channel":"online","items":[{"sku":"TONER-1","qty":3,"price":12000},{"sku":"TONER-2","qty":3,"price":9000}]}`
	if a := call(t, "POST", p.api+"/v1/gifts/evaluate", order); a.status != 200 || len(a.body["gifts"].([]any)) != 1 {
		t.Fatalf("evaluate: %+v", a)
	}
	testenv.Eventually(t, "the projector's lock listed", 30*time.Second, func() bool {
		return strings.Contains(fmt.Sprint(call(t, "GET", p.api+"/v1/admin/locks", "").body), "projector")
	})

	// Load: a second POS day over Kafka, and 4 web clients posting batches of receipts on
	// their own SKUs, retrying a batch until every event in it is applied or a duplicate.
	second := dayOf(3000, 12)
	var web []inventory.Event
	var webMu sync.Mutex
	stop := make(chan struct{})
	var posted, refused, lastRefusal atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for b := 0; ; b++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := make([]inventory.Event, 10)
				for i := range batch {
					batch[i] = inventory.Event{EventID: fmt.Sprintf("web-%d-%d-%d", w, b, i), Type: inventory.Receipt,
						Store: fmt.Sprintf("S%04d", (b*10+i)%30), SKU: fmt.Sprintf("WEB-%d", w), Qty: 1}
				}
				for !postBatch(t, p.api, batch) {
					refused.Add(1)
					lastRefusal.Store(time.Now().UnixNano())
					time.Sleep(20 * time.Millisecond) // a client's retry pause (Retry-After is seconds)
				}
				webMu.Lock()
				web = append(web, batch...)
				webMu.Unlock()
				posted.Add(1)
			}
		})
	}
	kafkatest.Produce(t, broker, second)
	testenv.Eventually(t, "web batches before the kill", time.Minute, func() bool { return posted.Load() >= 20 })

	// Kill the master that holds the probe's store, under load.
	victim := testenv.MasterOf(t, redis, nodes, store.Keys().Stock(probe.Store))
	victim.Stop() // SIGKILL
	killedAt := time.Now()
	// The Cluster's own recovery, as a plain client sees it: its first write to the slot.
	recovered := make(chan time.Duration, 1)
	go func() {
		slotKey := store.Keys().Stock(probe.Store) + ":failover-probe"
		for {
			ctx, stop := context.WithTimeout(context.Background(), 200*time.Millisecond)
			err := redis.Do(ctx, redis.B().Set().Key(slotKey).Value("1").Build()).Error()
			stop()
			if err == nil {
				recovered <- time.Since(killedAt)
				return
			}
			time.Sleep(20 * time.Millisecond) // a plain client's retry pause
		}
	}()
	sawFallback := false
	probeRead := func() answer {
		a := call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
		sawFallback = sawFallback || (a.status == 200 && a.header.Get("X-Stock-Source") == "fallback")
		return a
	}
	testenv.Eventually(t, "the breaker open", 30*time.Second, func() bool {
		probeRead()
		return call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] != "closed"
	})
	testenv.Eventually(t, "a replica elected and the breaker closed", time.Minute, func() bool {
		a := probeRead()
		return a.status == 200 && a.header.Get("X-Stock-Source") == "primary" &&
			call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] == "closed"
	})
	// The victim's replica is a master now.
	for _, n := range nodes[3:] {
		if role, err := n.Role(context.Background()); err != nil || role != "master" && role != "slave" {
			t.Errorf("replica %s: role %q %v", n.Addr, role, err)
		}
	}
	if victimReplicaPromoted := testenv.MasterOf(t, redis, nodes, store.Keys().Stock(probe.Store)); victimReplicaPromoted == victim {
		t.Errorf("the killed master still holds the probe's slot")
	}
	after := posted.Load()
	testenv.Eventually(t, "web batches after the failover", time.Minute, func() bool { return posted.Load() >= after+20 })
	close(stop)
	wg.Wait()
	wait, stopWait := context.WithTimeout(context.Background(), time.Minute)
	defer stopWait()
	own := testenv.Recv(t, wait, recovered, "the Cluster's own recovery")
	t.Logf("failover: %d web batches, %d refused and retried, fallback read seen: %v; the slot took writes from a plain client %.2f s after the kill, jaego's last refused write was %.2f s after it",
		posted.Load(), refused.Load(), sawFallback, own.Seconds(), time.Unix(0, lastRefusal.Load()).Sub(killedAt).Seconds())
	if !sawFallback {
		t.Errorf("no read was answered from the durable copy while the master was down")
	}
	if b, err := os.ReadFile(p.log); err != nil || !strings.Contains(string(b), "trial calls start before the open time is over") {
		t.Errorf("the breaker waited its whole 30 s open time after the failover (no early end in the log): %v", err)
	}

	all := append(append(append([]inventory.Event{}, first...), second...), web...)
	testenv.Eventually(t, "every event applied", 2*time.Minute, func() bool { return appliedCount(t, redis, store) == int64(len(all)) })
	kafkatest.CheckTotals(t, redis, store, all)
}

// postBatch posts events and reports whether every one is applied or a duplicate (a
// refusal of the whole request, such as 503 while the breaker is open, is false: retry).
func postBatch(t *testing.T, api string, events []inventory.Event) bool {
	body, _ := json.Marshal(map[string]any{"events": events})
	resp, err := http.Post(api+"/v1/events", "application/json", bytes.NewReader(body))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var ans struct {
		Results []struct {
			Status string `json:"status"`
		} `json:"results"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&ans) != nil || len(ans.Results) != len(events) {
		return false
	}
	for _, r := range ans.Results {
		if r.Status != "applied" && r.Status != "duplicate" {
			return false
		}
	}
	return true
}
