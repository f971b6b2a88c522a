package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
	return startJaegoEnv(t, bin, nil, args...)
}

// startJaegoEnv is startJaego with env added to the test's environment, less any OTEL_*
// variable of the test's own (tracing is on only where a test asks for it).
func startJaegoEnv(t *testing.T, bin string, env []string, args ...string) *jaegoProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "jaego.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(environWithoutOTEL(), env...)
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--auth" || a == "--api-keys" }) {
		cmd.Env = append(cmd.Env, "JAEGO_AUTH=none") // most tests are not about access control
	}
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
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() { // what the process said is the first thing to read
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("jaego %s logged (last 40 lines):\n%s", args[0], strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
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

// environWithoutOTEL is the test's environment less its OTEL_* variables.
func environWithoutOTEL() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "OTEL_") })
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
	return keyed(t, method, url, "", body)
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
	c, srv := testenv.Redis(t, redisExtra...)
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
		"--breaker-window", "10", "--breaker-min-calls", "5", "--breaker-open-for", "1s", "--breaker-half-open-calls", "3",
		// These tests kill Redis; a loaded CI machine must not open the breaker by slowness.
		"--breaker-slow-call", "10s"}, extra...)...)
}

// bootstrapped waits until the projector has taken its first feed position: changes
// applied from then on are counted as changes, not copied as snapshot records.
func (s *copyStack) bootstrapped(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, "the projector's first position", time.Minute, func() bool {
		p, err := s.copy.Position(context.Background())
		return err == nil && p.Cursor != ""
	})
}

// copied waits until the copy holds n changes.
func (s *copyStack) copied(t *testing.T, n int64) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("copy of %d changes", n), 2*time.Minute, func() bool {
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
	t.Parallel() // a binary of its own on servers of its own: it waits, mostly, while the others run
	bin := buildJaego(t)
	s := newCopyStack(t, "appendonly yes", "appendfsync always")
	p := s.serve(t, bin)
	s.bootstrapped(t)
	first := dayOf(2000, 1)
	kafkatest.Produce(t, s.broker, first)
	testenv.Eventually(t, "the first day applied", time.Minute, func() bool { return appliedCount(t, s.client, s.store) == int64(len(first)) })
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
	testenv.Eventually(t, "a fallback read", 30*time.Second, func() bool {
		fb = call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
		return fb.status == 200 && fb.header.Get("X-Stock-Source") == "fallback"
	})
	if fb.body["source"] != "fallback" || fb.body["on_hand"] != before.body["on_hand"] || fb.body["version"] != before.body["version"] {
		t.Errorf("fallback answer %v, primary was %v", fb.body, before.body)
	}
	if asOf, err := time.Parse(time.RFC3339Nano, fb.header.Get("X-Stock-As-Of")); err != nil || asOf.After(time.Now()) {
		t.Errorf("X-Stock-As-Of %q: %v", fb.header.Get("X-Stock-As-Of"), err)
	}
	testenv.Eventually(t, "an open breaker", 30*time.Second, func() bool {
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
	// The consumer retries without committing: while it keeps retrying, the group's offsets
	// stay where the first day left them.
	retries := func() float64 { return metricValue(t, p.api, "jaego_consumer_store_retries_total") }
	testenv.Eventually(t, "consumer retries", time.Minute, func() bool { return retries() >= 2 })
	committed := committedOffsets(t, s.broker)
	seen := retries()
	testenv.Eventually(t, "more consumer retries", time.Minute, func() bool { return retries() >= seen+2 })
	if again := committedOffsets(t, s.broker); again != committed || committed != int64(len(first)) {
		t.Errorf("offsets committed while Redis is dead: %d then %d; the first day is %d records", committed, again, len(first))
	}

	if err := s.redis.Restart(); err != nil { // back, with its AOF
		t.Fatal(err)
	}
	// Shop traffic (reads) makes the trial calls once the breaker's delay is over.
	testenv.Eventually(t, "a closed breaker", time.Minute, func() bool {
		call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
		return call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] == "closed"
	})
	all := append(append([]inventory.Event{}, first...), second...)
	testenv.Eventually(t, "the second day applied", time.Minute, func() bool { return appliedCount(t, s.client, s.store) == int64(len(all)) })
	kafkatest.CheckTotals(t, s.client, s.store, all)
	s.copied(t, int64(len(all)))
	if w := call(t, "POST", p.api+"/v1/events", `{"event_id":"web-up-1","type":"receipt","store":"S0001","sku":"X","qty":1}`); w.status != 200 {
		t.Errorf("a write after Redis came back: %+v", w)
	}
}

// TestRedisLostAndRestored: redis-server restarts empty (no persistence). jaego notices
// (the epoch marks are gone): it serves reads from the copy, writes nothing, and its
// consumer leaves the group. `jaego restore` rebuilds Redis from the copy and moves the
// group back; the consumer replays what Redis lost, exactly once: totals exact, versions
// go on from the copy's, the change feed goes on with rising ids, an event applied before
// the loss is still a duplicate, held reservations are back (one confirmed after it, one
// due expiring once) and gifts are served. The runbook in three orders: Kafka events
// arrive before the guard notices; no Kafka traffic until after the restore; and a restore
// killed halfway and run again (no --force).
func TestRedisLostAndRestored(t *testing.T) {
	for _, order := range []struct {
		name                         string
		kafkaDuringLoss, killRestore bool
	}{{"kafka_before_the_guard", true, false}, {"no_kafka_traffic", false, false}, {"restore_killed", true, true}} {
		t.Run(order.name, func(t *testing.T) {
			t.Parallel() // a binary of its own on servers of its own: it waits, mostly, while the others run
			lostAndRestored(t, order.kafkaDuringLoss, order.killRestore)
		})
	}
}

func lostAndRestored(t *testing.T, kafkaDuringLoss, killRestore bool) {
	bin := buildJaego(t)
	s := newCopyStack(t)
	p := s.serve(t, bin)
	s.bootstrapped(t)
	first := dayOf(2000, 3)
	kafkatest.Produce(t, s.broker, first)
	web := `{"event_id":"web-before-loss","type":"receipt","store":"S0001","sku":"WEB","qty":5}`
	if w := call(t, "POST", p.api+"/v1/events", web); w.status != 200 {
		t.Fatalf("web event: %+v", w)
	}
	for _, hold := range []string{`{"reservation_id":"keep-1","store":"S0001","items":[{"sku":"WEB","qty":2}],"hold":"1h"}`,
		`{"reservation_id":"due-1","store":"S0001","items":[{"sku":"WEB","qty":1}],"hold":"3s"}`} {
		if h := call(t, "POST", p.api+"/v1/reservations", hold); h.status != 201 {
			t.Fatalf("hold before the loss: %+v", h)
		}
	}
	testenv.Eventually(t, "the first day applied", time.Minute, func() bool { return appliedCount(t, s.client, s.store) == int64(len(first))+3 })
	s.copied(t, int64(len(first))+3)
	feed := invredis.NewFeed(s.store, invredis.FeedOptions{})
	lastBefore := lastChangeID(t, feed)

	// A reader asks for records the copy holds, from before the loss to after the restore:
	// no answer may be a miss (404) or a record older than the copy's (an empty Redis served
	// as the truth answered 404 for 0.3–0.6 s after a FLUSHALL, longer when idle).
	readerCtx, stopReader := context.WithCancel(context.Background())
	readerDone := make(chan struct{})
	var reads, fallbacks atomic.Int64
	go func() {
		defer close(readerDone)
		probes := first[:50]
		for i := 0; readerCtx.Err() == nil; i++ {
			e := probes[i%len(probes)]
			a := call(t, "GET", p.api+"/v1/stores/"+e.Store+"/skus/"+e.SKU, "")
			reads.Add(1)
			switch {
			case a.status == 200 && a.body["source"] == "fallback":
				fallbacks.Add(1)
			case a.status == 200:
			default:
				t.Errorf("read %d of %s/%s around the loss: %d %v", i, e.Store, e.SKU, a.status, a.body)
				return
			}
		}
	}()
	// Lost: Redis comes back empty while more Kafka events keep arriving.
	lostAt := time.Now()
	if err := s.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	second := dayOf(1000, 4)
	if kafkaDuringLoss {
		kafkatest.Produce(t, s.broker, second)
	}
	testenv.Eventually(t, "the breaker lost (the loss guard or a read saw it)", 30*time.Second, func() bool {
		return call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] == "lost"
	})
	// Only a restore ends a loss: auto is refused, and changes nothing.
	if a := call(t, "POST", p.api+"/v1/admin/breaker", `{"state":"auto"}`); a.status != 409 || a.body["code"] != "breaker_lost" {
		t.Fatalf("auto during the loss: %+v", a)
	}
	probe := first[0]
	fb := call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
	if fb.status != 200 || fb.body["source"] != "fallback" {
		t.Fatalf("read while Redis is lost: %+v", fb)
	}
	// The copy does not claim to be newer than the loss: an empty Redis is not a feed.
	if asOf, err := time.Parse(time.RFC3339Nano, fb.header.Get("X-Stock-As-Of")); err != nil || asOf.After(lostAt) {
		t.Errorf("X-Stock-As-Of %q while Redis is lost (lost at %s): %v", fb.header.Get("X-Stock-As-Of"), lostAt.UTC().Format(time.RFC3339Nano), err)
	}
	if w := call(t, "POST", p.api+"/v1/events", `{"event_id":"web-lost","type":"receipt","store":"S0001","sku":"WEB","qty":1}`); w.status != 503 {
		t.Fatalf("write while Redis is lost: %+v", w)
	}
	if n := appliedCount(t, s.client, s.store); n != 0 {
		t.Fatalf("%d changes written into the lost Redis", n)
	}

	// The copy has seen many projectors (say, a thousand restarts): the restore must raise
	// the lock's token counter, lost with Redis, above its token, or no projector could
	// commit again for a thousand retries.
	if _, err := s.copy.Claim(context.Background(), 1000); err != nil {
		t.Fatal(err)
	}
	if killRestore { // killed after its first page of records: what it wrote is no whole Redis
		killed, kill := context.WithCancel(context.Background())
		if err := run(killed, []string{"jaego", "restore", "--redis", "redis://" + s.redis.Addr + "/0", "--postgres", s.pg,
			"--kafka", s.broker}, func(string) string { return "" }, nil, onLine("records", kill), t.Output()); err == nil {
			t.Fatal("the killed restore finished")
		}
		kill()
		if n, err := s.client.Do(context.Background(), s.client.B().Dbsize().Build()).AsInt64(); err != nil || n == 0 {
			t.Fatalf("the killed restore wrote nothing (%d keys, %v): it must die halfway for this test", n, err)
		}
		if call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] != "lost" {
			t.Fatal("a half-restored Redis ended the loss")
		}
	}
	// Restore, with the consumer group moved back.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"jaego", "restore", "--redis", "redis://" + s.redis.Addr + "/0", "--postgres", s.pg,
		"--kafka", s.broker}, func(string) string { return "" }, nil, &out, t.Output()); err != nil {
		t.Fatalf("restore: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "records") || !strings.Contains(out.String(), "moved back") {
		t.Errorf("restore printed %q", out.String())
	}
	// The change feed of before the loss is back: a re-indexer re-reading it finds it whole.
	var before []inventory.Change
	if _, err := feed.StreamChanges(context.Background(), time.Now().Add(-time.Hour), lostAt, "", func(cs []inventory.Change) error {
		before = append(before, cs...)
		return nil
	}); err != nil || len(before) != len(first)+3 {
		t.Errorf("the feed up to the loss after the restore: %d changes (%v), want the %d of before", len(before), err, len(first)+3)
	}
	var again bytes.Buffer
	if err := run(context.Background(), []string{"jaego", "restore", "--redis", "redis://" + s.redis.Addr + "/0", "--postgres", s.pg},
		func(string) string { return "" }, nil, &again, t.Output()); err == nil || !strings.Contains(err.Error(), "is whole") {
		t.Errorf("a second restore into a restored Redis: %v", err)
	}
	testenv.Eventually(t, "the breaker back to its rules", 30*time.Second, func() bool {
		call(t, "GET", p.api+"/v1/stores/"+probe.Store+"/skus/"+probe.SKU, "")
		return call(t, "GET", p.api+"/v1/admin/breaker", "").body["state"] == "closed"
	})
	stopReader()
	wait, stopWait := context.WithTimeout(context.Background(), time.Minute)
	defer stopWait()
	testenv.Recv(t, wait, readerDone, "the reader's end") // it ends with its next answer
	if fallbacks.Load() == 0 {
		t.Errorf("%d reads around the loss, none from the copy", reads.Load())
	}
	t.Logf("%d reads from before the loss to after the restore, %d from the copy, none a miss", reads.Load(), fallbacks.Load())
	if !kafkaDuringLoss {
		kafkatest.Produce(t, s.broker, second)
	}
	// Gifts are served again with no manual step: the promotion cache lost its version with
	// Redis, and the rebuilder notices (it stayed not_built until `jaego promo rebuild`).
	testenv.Eventually(t, "gifts served again after the restore", 30*time.Second, func() bool {
		return call(t, "GET", p.api+"/v1/products/"+probe.SKU+"/gifts", "").status == 200
	})
	all := append(append([]inventory.Event{}, first...), second...)
	testenv.Eventually(t, "every Kafka event applied", 2*time.Minute, func() bool {
		ls, err := s.store.GetMany(context.Background(), lastKeys(all))
		if err != nil {
			return false
		}
		for i, l := range ls {
			if !l.Found || l.Stock.Version != lastVersions(all)[i] {
				return false
			}
		}
		return true
	})
	kafkatest.CheckStock(t, s.store, all)
	if w := call(t, "POST", p.api+"/v1/events", web); w.status != 200 || w.body["status"] != "duplicate" {
		t.Errorf("an event applied before the loss, posted again: %+v", w)
	}
	// The reservations are back: keep-1 held (its hold again answers it), due-1 expires
	// once at the sweep after the restore (if it was not expired before the loss).
	if h := call(t, "POST", p.api+"/v1/reservations", `{"reservation_id":"keep-1","store":"S0001","items":[{"sku":"WEB","qty":2}],"hold":"1h"}`); h.status != 200 || h.body["status"] != "held" {
		t.Fatalf("keep-1 held again after the restore: %+v", h)
	}
	testenv.Eventually(t, "due-1 expired", 30*time.Second, func() bool {
		return call(t, "GET", p.api+"/v1/reservations/due-1", "").body["status"] == "expired"
	})
	if c := call(t, "POST", p.api+"/v1/reservations/keep-1/confirm", ""); c.status != 200 || c.body["status"] != "confirmed" {
		t.Fatalf("confirming keep-1 after the restore: %+v", c)
	}
	// WEB: receipt 5 (v1), two holds (v2, v3), due-1's expiry (v4), keep-1's fulfil (v5).
	w := call(t, "POST", p.api+"/v1/events", `{"event_id":"web-after","type":"receipt","store":"S0001","sku":"WEB","qty":1}`)
	if st, _ := w.body["stock"].(map[string]any); w.status != 200 || w.body["status"] != "applied" || st["version"] != 6.0 || st["on_hand"] != 4.0 || st["reserved"] != 0.0 {
		t.Errorf("a new event after the restore (version 6, 5 - 2 + 1 on hand, nothing reserved): %+v", w)
	}
	expiries := 0
	if _, err := feed.StreamChanges(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute), "", func(cs []inventory.Change) error {
		for _, c := range cs {
			if c.EventID == "rsv-due-1-expire" {
				expiries++
			}
		}
		return nil
	}); err != nil || expiries != 1 {
		t.Errorf("due-1's expiry is in the feed %d times (%v), want once", expiries, err)
	}
	if after := lastChangeID(t, feed); !afterID(after, lastBefore) {
		t.Errorf("change ids went back: %s after the restore, %s before the loss", after, lastBefore)
	}
	// The copy goes on too: every change since the restore is projected.
	s.copied(t, int64(len(all))+6)
}

// onLine is a writer that calls fn at the first line containing word.
func onLine(word string, fn func()) io.Writer {
	var once sync.Once
	return writerFunc(func(b []byte) (int, error) {
		if bytes.Contains(b, []byte(word)) {
			once.Do(fn)
		}
		return len(b), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// lastKeys and lastVersions: every store × SKU of events and its event count.
func lastKeys(events []inventory.Event) []inventory.Key {
	seen := map[inventory.Key]bool{}
	var keys []inventory.Key
	for _, e := range events {
		k := inventory.Key{Store: e.Store, SKU: e.SKU}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

func lastVersions(events []inventory.Event) []int64 {
	n := map[inventory.Key]int64{}
	for _, e := range events {
		n[inventory.Key{Store: e.Store, SKU: e.SKU}]++
	}
	keys := lastKeys(events)
	out := make([]int64, len(keys))
	for i, k := range keys {
		out[i] = n[k]
	}
	return out
}

// lastChangeID is the id of the newest change the feed holds (of the last hour).
func lastChangeID(t *testing.T, f *invredis.Feed) string {
	t.Helper()
	last := ""
	_, err := f.StreamChanges(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute), "", func(cs []inventory.Change) error {
		for _, c := range cs {
			if id, _, _ := strings.Cut(c.ID, "/"); afterID(id, last) {
				last = id
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func afterID(a, b string) bool {
	if b == "" {
		return a != ""
	}
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) > len(bm)
	}
	if am != bm {
		return am > bm
	}
	return len(as) > len(bs) || len(as) == len(bs) && as > bs
}

// metricValue reads one unlabelled metric from an instance's /metrics.
func metricValue(t *testing.T, api, name string) float64 {
	t.Helper()
	resp, err := client.Get(api + "/metrics")
	if err != nil {
		return -1 // a killed instance
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v float64
		if _, err := fmt.Sscanf(sc.Text(), name+" %g", &v); err == nil {
			return v
		}
	}
	return -1
}

// metricSum is the sum of a metric's series over their labels (-1 when the instance does
// not answer).
func metricSum(t *testing.T, api, name string) float64 {
	t.Helper()
	resp, err := client.Get(api + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}

// TestProjectionExactlyOnce: two serve instances share Redis, Kafka and PostgreSQL while
// more than 200,000 POS events flow. Only one projects; it is SIGKILLed mid-stream, the
// other takes over from the committed position, and is killed in turn. Afterwards the copy
// equals Redis record for record, and the ledger has every change once.
func TestProjectionExactlyOnce(t *testing.T) {
	t.Parallel() // a binary of its own on servers of its own: it waits, mostly, while the others run
	bin := buildJaego(t)
	s := newCopyStack(t)
	var events []inventory.Event
	for tx := range pos.Day(pos.DayOptions{Transactions: 150000, Stores: 300, SKUs: 2000, Seed: 11}) {
		events = append(events, tx.Events()...)
	}
	if len(events) < 200000 {
		t.Fatalf("only %d events generated", len(events))
	}
	total := int64(len(events))
	serve := func() *jaegoProc { return s.serve(t, bin, "--lock-watchdog", "2s") }
	procs := []*jaegoProc{serve(), serve()}
	s.bootstrapped(t)
	kafkatest.Produce(t, s.broker, events)
	position := func() int64 {
		p, err := s.copy.Position(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return p.Changes
	}
	for i, frac := range []float64{0.3, 0.6} {
		testenv.Eventually(t, "copy progress", 3*time.Minute, func() bool { return position() >= int64(frac*float64(total)) })
		// During a takeover no instance projects for a moment (the lock's lease runs out);
		// two at once would be a bug.
		var active []int
		testenv.Eventually(t, "a projecting instance", time.Minute, func() bool {
			active = active[:0]
			for j, p := range procs {
				if metricValue(t, p.api, "jaego_projector_active") == 1 {
					active = append(active, j)
				}
			}
			if len(active) > 1 {
				t.Fatalf("%d instances project at once", len(active))
			}
			return len(active) == 1
		})
		procs[active[0]].kill(t)
		t.Logf("kill %d: the projecting instance, at %d of %d changes copied", i+1, position(), total)
		procs[active[0]] = serve()
	}
	testenv.Eventually(t, "every event applied", 3*time.Minute, func() bool { return appliedCount(t, s.client, s.store) == total })
	s.copied(t, total)
	kafkatest.CheckTotals(t, s.client, s.store, events)
	keys := lastKeys(events)
	want, err := s.store.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.copy.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		w, g := want[i].Stock, got[i].Stock
		if !got[i].Found || w.OnHand != g.OnHand || w.Version != g.Version || !w.UpdatedAt.Equal(g.UpdatedAt) {
			t.Fatalf("%v: Redis %+v, copy %+v", keys[i], w, g)
		}
	}
	sd, err := sqldb.Open(context.Background(), s.pg)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	var rows, ids int64
	if err := sd.QueryRowContext(context.Background(), `SELECT count(*), count(DISTINCT change_id) FROM stock_ledger`).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != total || ids != total {
		t.Fatalf("ledger: %d rows, %d change ids; %d changes were applied", rows, ids, total)
	}
}

// committedOffsets is the sum of the consumer group's committed offsets.
func committedOffsets(t *testing.T, broker string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).FetchOffsets(context.Background(), invkafka.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	res.Offsets().Each(func(o kadm.Offset) { sum += o.At })
	return sum
}
