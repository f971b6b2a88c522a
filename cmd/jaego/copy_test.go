package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/inventory/kafkatest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/pos"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

// jaegoProc is a jaego child process and the API address it printed.
type jaegoProc struct {
	cmd *exec.Cmd
	api string
	log string
}

// startJaego runs the built binary with args and waits for its api line.
func startJaego(t *testing.T, bin string, args ...string) *jaegoProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "jaego.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logFile.Close()
	p := &jaegoProc{cmd: cmd, log: logPath}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	apiRE := regexp.MustCompile(`api:\s+(http://\S+)`)
	for sc.Scan() {
		if m := apiRE.FindStringSubmatch(sc.Text()); m != nil {
			p.api = m[1]
			go func() {
				for sc.Scan() {
				}
			}()
			return p
		}
	}
	b, _ := os.ReadFile(logPath)
	t.Fatalf("jaego %s did not start:\n%s", args[0], b)
	return nil
}

func (p *jaegoProc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// answer is one HTTP answer: status, headers and the JSON body.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// until polls cond (a state to reach) for at most limit.
func until(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// copyStack is one deployment's servers: Redis, PostgreSQL (migrated), a Kafka broker, and
// the copy and store as seen from outside.
type copyStack struct {
	redis  *testenv.RedisServer
	client rueidis.Client
	pg     string
	broker string
	copy   *invdb.Copy
	store  *invredis.Store
}

func newCopyStack(t *testing.T, redisExtra ...string) *copyStack {
	srv, err := testenv.StartRedis(t.TempDir(), redisExtra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &copyStack{redis: srv, client: c, pg: testenv.Postgres(t),
		broker: testenv.Kafka(t, 8, invkafka.DefaultTopic, invkafka.DefaultTopic+invkafka.DLQSuffix),
		store:  invredis.New(c, invredis.Options{})}
	if err := run(context.Background(), []string{"jaego", "migrate", "--postgres", s.pg}, func(string) string { return "" }, nil, &bytes.Buffer{}, t.Output()); err != nil {
		t.Fatal(err)
	}
	sd, err := sqldb.Open(context.Background(), s.pg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	s.copy = invdb.New(sd)
	return s
}

func (s *copyStack) serve(t *testing.T, bin string, extra ...string) *jaegoProc {
	return startJaego(t, bin, append([]string{"serve", "--http", "127.0.0.1:0", "--redis", "redis://" + s.redis.Addr + "/0",
		"--kafka", s.broker, "--postgres", s.pg, "--kafka-session-timeout", "1s", "--log-level", "warn",
		"--breaker-window", "10", "--breaker-min-calls", "5", "--breaker-open-for", "1s", "--breaker-half-open-calls", "3"}, extra...)...)
}

// copied waits until the copy holds n changes.
func (s *copyStack) copied(t *testing.T, n int64) {
	t.Helper()
	until(t, fmt.Sprintf("copy of %d changes", n), 2*time.Minute, func() bool {
		p, err := s.copy.Position(context.Background())
		return err == nil && p.Changes >= n
	})
}

func dayOf(n int, seed int64) []inventory.Event {
	var out []inventory.Event
	day := time.Now().UTC().AddDate(0, 0, -int(seed)) // every seed another day: no two share an event id
	for tx := range pos.Day(pos.DayOptions{Transactions: n, Stores: 30, SKUs: 200, Seed: seed, Date: day}) {
		out = append(out, tx.Events()...)
	}
	return out
}

// TestRedisDiesAndComesBack is design §8 as an operator sees it, on the built binary:
// with Kafka load running, redis-server is SIGKILLed; reads answer from the durable copy,
// flagged fallback, with the copy's numbers and as-of time; writes are refused at once
// with Retry-After; the consumer retries without committing. Redis restarts (with its AOF)
// and everything comes back by itself: the breaker closes, the consumer catches up, and
// every total is exact.
func TestRedisDiesAndComesBack(t *testing.T) {
	bin := buildJaego(t)
	s := newCopyStack(t, "appendonly yes", "appendfsync always")
	p := s.serve(t, bin)
	first := dayOf(2000, 1)
	kafkatest.Produce(t, s.broker, first)
	until(t, "the first day applied", time.Minute, func() bool { return appliedCount(t, s.client, s.store) == int64(len(first)) })
	s.copied(t, int64(len(first)))
	probe := first[0]
	before := call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
	if before.status != 200 || before.body["source"] != "primary" || before.header.Get("X-Stock-Source") != "primary" {
		t.Fatalf("primary read: %+v", before)
	}

	s.redis.Stop() // SIGKILL
	second := dayOf(1000, 2)
	kafkatest.Produce(t, s.broker, second) // arrives while Redis is dead
	var fb answer
	until(t, "a fallback read", 30*time.Second, func() bool {
		fb = call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
		return fb.status == 200 && fb.header.Get("X-Stock-Source") == "fallback"
	})
	if fb.body["source"] != "fallback" || fb.body["on_hand"] != before.body["on_hand"] || fb.body["version"] != before.body["version"] {
		t.Errorf("fallback answer %v, primary was %v", fb.body, before.body)
	}
	if asOf, err := time.Parse(time.RFC3339Nano, fb.header.Get("X-Stock-As-Of")); err != nil || asOf.After(time.Now()) {
		t.Errorf("X-Stock-As-Of %q: %v", fb.header.Get("X-Stock-As-Of"), err)
	}
	until(t, "an open breaker", 30*time.Second, func() bool {
		b := call(t, "GET", p.api+"/v1/admin/breaker", "")
		return b.body["state"] == "open" || b.body["state"] == "half_open"
	})
	w := call(t, "POST", p.api+"/v1/events", `{"event_id":"web-down-1","type":"receipt","store":"S0001","sku":"X","qty":1}`)
	if w.status != 503 || w.body["code"] != "store_unavailable" || w.header.Get("Retry-After") == "" {
		t.Errorf("a write while Redis is dead: %d %v %v", w.status, w.header, w.body)
	}
	if ready := call(t, "GET", p.api+"/readyz", ""); ready.status != 200 || ready.body["status"] != "degraded" {
		t.Errorf("readyz with the copy serving: %+v", ready)
	}

	if err := s.redis.Restart(); err != nil { // back, with its AOF
		t.Fatal(err)
	}
	// Shop traffic (reads) makes the trial calls once the breaker's delay is over.
	until(t, "a closed breaker", time.Minute, func() bool {
		call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
		return call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] == "closed"
	})
	all := append(append([]inventory.Event{}, first...), second...)
	until(t, "the second day applied", time.Minute, func() bool { return appliedCount(t, s.client, s.store) == int64(len(all)) })
	kafkatest.CheckTotals(t, s.client, s.store, all)
	s.copied(t, int64(len(all)))
	if w := call(t, "POST", p.api+"/v1/events", `{"event_id":"web-up-1","type":"receipt","store":"S0001","sku":"X","qty":1}`); w.status != 200 {
		t.Errorf("a write after Redis came back: %+v", w)
	}
}
