package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/testenv"
)

// TestDeadlinesHold, on the built binary: with Redis hung (SIGSTOP) under load, every
// request of every kind is answered within its timeout + 100 ms (a 504 or a 503, never a
// hang), and once Redis is back the goroutines are what they were.
func TestDeadlinesHold(t *testing.T) {
	bin := buildJaego(t)
	redis, rs := testenv.Redis(t)
	const timeout = 400 * time.Millisecond
	p := startJaego(t, bin, "serve", "--http", "127.0.0.1:0", "--redis", "redis://"+rs.Addr+"/0", "--request-timeout", timeout.String(),
		"--log-level", "error")
	if code, ans := post(t, p.api+"/v1/events", `{"event_id":"d0","type":"receipt","store":"S1","sku":"A","qty":5}`); code != 200 {
		t.Fatalf("seed: %d %v", code, ans)
	}
	// The baseline once the server's own Redis connections are up: the pipeline and the
	// live tail's 16 watcher reads (their goroutines come with them).
	// The watcher's reads are up when Redis shows its 16 blocked XREADs (connections alone
	// came before their goroutines: a baseline taken then was 32 short).
	testenv.Eventually(t, "the watcher's 16 blocking reads", 30*time.Second, func() bool {
		list, err := redis.Do(context.Background(), redis.B().ClientList().Build()).ToString()
		return err == nil && strings.Count(list, "cmd=xread") >= 16
	})
	before := metricValue(t, p.api, "go_goroutines")
	requests := []struct{ method, path, body string }{
		{"GET", "/v1/changes?from=2026-11-25T00:00:00Z&ndjson", ""},
		{"GET", "/v1/changes/stream?cursor=", ""},
		{"GET", "/v1/stores/S1/skus/A", ""},
		{"GET", "/v1/stores/S1/stock?sku=A,B,C", ""},
		{"GET", "/v1/skus/A/stock?store=S1,S2,S3", ""},
		{"POST", "/v1/events", `{"event_id":"d-%d","type":"sale","store":"S1","sku":"A","qty":1}`},
		{"GET", "/v1/changes?from=2026-11-25T00:00:00Z&limit=10", ""},
		{"POST", "/v1/availability", `{"items":[{"sku":"A","qty":1}],"stores":["S1","S2"]}`},
		{"POST", "/v1/reservations", `{"reservation_id":"dr-%d","store":"S1","items":[{"sku":"A","qty":1}]}`},
		{"GET", "/v1/stores/S1/snapshot", ""},
	}
	if err := rs.Pause(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var worst time.Duration
	worstOf := ""
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	tr := &http.Transport{}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				r := requests[(w+i)%len(requests)]
				body := r.body
				if strings.Contains(body, "%d") {
					body = strings.Replace(body, "%d", strings.Repeat("x", w+1)+string(rune('a'+i%26)), 1)
				}
				req, _ := http.NewRequest(r.method, p.api+strings.TrimSuffix(r.path, "&ndjson"), strings.NewReader(body))
				if strings.HasSuffix(r.path, "&ndjson") {
					req.Header.Set("Accept", "application/x-ndjson")
				}
				start := time.Now()
				resp, err := hc.Do(req)
				took := time.Since(start)
				if err != nil {
					t.Errorf("%s %s: %v", r.method, r.path, err)
					return
				}
				if !strings.Contains(r.path, "/stream") { // a live tail that started runs on: its headers are the answer
					_, _ = io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
				mu.Lock()
				if took > worst {
					worst, worstOf = took, r.method+" "+r.path+" "+resp.Status
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	tr.CloseIdleConnections() // the server's goroutines of idle keep-alive connections go too
	if err := rs.Resume(); err != nil {
		t.Fatal(err)
	}
	t.Logf("slowest answer with Redis hung: %v (%s)", worst, worstOf)
	if worst > timeout+100*time.Millisecond {
		t.Errorf("%s answered after %v: the request timeout is %v", worstOf, worst, timeout)
	}
	// A live tail admitted during the hang (it joins at the hub's head, no Redis call) whose
	// client left is noticed at its second keep-alive write (the first one to a closed
	// socket is buffered): up to 2 × 5 s; a request answered 504 at its deadline while its
	// store call waited in the client's queue ends when that call does.
	now := before
	testenv.Eventually(t, "the goroutines back to what they were", 45*time.Second, func() bool {
		if now = metricValue(t, p.api, "go_goroutines"); now > before+10 {
			t.Logf("goroutines: %.0f, before %.0f", now, before) // said if it never comes back
			return false
		}
		return true
	})
}
