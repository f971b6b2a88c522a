package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/testenv"
)

// TestThousandTailSubscribers, on the built binary: 1,000 SSE subscribers of one jaego serve
// cost the Redis connections of one (at most G blocking reads more than none) and about one
// goroutine each; ordinary requests are served meanwhile without an error; every subscriber
// receives every change once.
func TestThousandTailSubscribers(t *testing.T) {
	t.Parallel() // a binary of its own on servers of its own: it waits, mostly, while the others run
	const subscribers, changes = 1000, 200
	bin := buildJaego(t)
	redis, rs := testenv.Redis(t)
	p := startJaego(t, bin, "serve", "--http", "127.0.0.1:0", "--redis", "redis://"+rs.Addr+"/0", "--max-streams", "1100", "--log-level", "warn")
	connsBefore, goroutinesBefore := redisClients(t, redis), metricValue(t, p.api, "go_goroutines")
	// At rest a serve holds little heap, and a breaker cycle adds none (a breaker that
	// allocated 512 MiB at start and at every forced_open → auto → closed broke any
	// GOMEMLIMIT or container limit).
	if heap := metricValue(t, p.api, "go_memstats_heap_alloc_bytes"); heap > 64<<20 {
		t.Fatalf("serve at rest holds %.0f MiB of heap, want < 64", heap/(1<<20))
	}
	for _, state := range []string{"forced_open", "auto"} {
		if code, ans := post(t, p.api+"/v1/admin/breaker", `{"state":"`+state+`"}`); code != 200 {
			t.Fatalf("breaker %s: %d %v", state, code, ans)
		}
	}
	if heap := metricValue(t, p.api, "go_memstats_heap_alloc_bytes"); heap > 64<<20 {
		t.Fatalf("after a breaker cycle serve holds %.0f MiB of heap, want < 64", heap/(1<<20))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: subscribers}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var started, finished sync.WaitGroup
	var bad atomic.Int64
	counts := make([]atomic.Int64, subscribers)
	for i := range subscribers {
		started.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", p.api+"/v1/changes/stream", nil)
			resp, err := hc.Do(req)
			if err != nil || resp.StatusCode != 200 {
				bad.Add(1)
				started.Done()
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			sc.Scan() // the first comment: positioned
			started.Done()
			seen := map[string]bool{}
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				var b struct {
					Changes []struct {
						EventID string `json:"event_id"`
					} `json:"changes"`
				}
				if json.Unmarshal([]byte(data), &b) != nil {
					bad.Add(1)
					return
				}
				for _, c := range b.Changes {
					if seen[c.EventID] {
						bad.Add(1) // a change twice
					}
					seen[c.EventID] = true
				}
				if counts[i].Store(int64(len(seen))); len(seen) == changes {
					return
				}
			}
		}()
	}
	started.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d subscribers refused", bad.Load())
	}
	conns, goroutines := redisClients(t, redis), metricValue(t, p.api, "go_goroutines")

	// Shop traffic and POS events while the subscribers listen.
	var lookupsFailed atomic.Int64
	stop := make(chan struct{})
	var shop sync.WaitGroup
	for range 4 {
		shop.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(p.api + "/v1/stores/T1/stock?sku=A,B,C")
				if err != nil || resp.StatusCode != 200 {
					lookupsFailed.Add(1)
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	for b := 0; b < changes; b += 20 {
		var evs []string
		for i := b; i < b+20; i++ {
			evs = append(evs, fmt.Sprintf(`{"event_id":"t-%d","type":"receipt","store":"T%d","sku":"A","qty":1}`, i, i%5))
		}
		if code, ans := post(t, p.api+"/v1/events", `{"events":[`+strings.Join(evs, ",")+`]}`); code != 200 {
			t.Fatalf("events: %d %v", code, ans)
		}
	}
	finished.Wait()
	close(stop)
	shop.Wait()
	short := 0
	for i := range counts {
		if counts[i].Load() != changes {
			short++
		}
	}
	t.Logf("Redis clients: %d before, %d with %d subscribers; goroutines: %.0f before, %.0f with them", connsBefore, conns, subscribers, goroutinesBefore, goroutines)
	if short > 0 || bad.Load() > 0 {
		t.Errorf("%d subscribers did not get all %d changes; %d saw a change twice or a bad event", short, changes, bad.Load())
	}
	if conns > 16+8 { // G blocking reads (G = 16), and a few pooled
		t.Errorf("%d Redis connections with %d subscribers, %d without", conns, subscribers, connsBefore)
	}
	if goroutines > subscribers+100 { // one a subscriber, and the server's own
		t.Errorf("%.0f goroutines with %d subscribers, %.0f without", goroutines, subscribers, goroutinesBefore)
	}
	if lookupsFailed.Load() > 0 {
		t.Errorf("%d lookups failed while the subscribers listened", lookupsFailed.Load())
	}
}

var connectedRE = regexp.MustCompile(`connected_clients:(\d+)`)

// redisClients is how many clients the Redis server has, less the one asking.
func redisClients(t *testing.T, c rueidis.Client) int {
	t.Helper()
	info, err := c.Do(context.Background(), c.B().Info().Section("clients").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	m := connectedRE.FindStringSubmatch(info)
	n, _ := strconv.Atoi(m[1])
	return n - 1
}

// TestConnectionsStayBounded: whatever waits for new changes in a serve (the live tail's hub,
// the projector of the durable copy) shares the process's Watcher, so a serve holds at most
// G + 16 Redis connections under writes. Before, the projector's wait opened a blocking read
// per shard group at every wake-up (at the change rate) and cancelled them: 1,500 holds
// from 8 clients left 1,217 connections.
func TestConnectionsStayBounded(t *testing.T) {
	t.Parallel()
	const groups, workers, holds = 16, 8, 120
	bin := buildJaego(t)
	s := newCopyStack(t)
	base := redisClients(t, s.client) // the test's own
	p := s.serve(t, bin)
	s.bootstrapped(t)
	for w := range workers {
		if c := call(t, "POST", p.api+"/v1/events", fmt.Sprintf(`{"event_id":"stock-%d","type":"receipt","store":"B%d","sku":"A","qty":100000}`, w, w)); c.status != 200 {
			t.Fatalf("stock: %+v", c)
		}
	}
	var most atomic.Int64
	sample := func() {
		if n := int64(redisClients(t, s.client) - base); n > most.Load() {
			most.Store(n)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range holds {
				id := fmt.Sprintf("bounded-%d-%d", w, i)
				if c := call(t, "POST", p.api+"/v1/reservations", fmt.Sprintf(`{"reservation_id":%q,"store":"B%d","items":[{"sku":"A","qty":1}]}`, id, w)); c.status != 201 {
					t.Errorf("hold %s: %+v", id, c)
					return
				}
				step := "cancel"
				if i%2 == 0 {
					step = "confirm"
				}
				if c := call(t, "POST", p.api+"/v1/reservations/"+id+"/"+step, ""); c.status != 200 {
					t.Errorf("%s %s: %+v", step, id, c)
					return
				}
				if i%20 == 0 {
					sample()
				}
			}
		})
	}
	wg.Wait()
	sample()
	if n := most.Load(); n > groups+16 {
		t.Fatalf("serve held up to %d Redis connections under %d holds, want at most G + 16 = %d", n, workers*holds, groups+16)
	}
	t.Logf("at most %d Redis connections of the serve under %d holds, confirms and cancels", most.Load(), workers*holds)
}
