package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/jaego/jaego/internal/api/apitest"
	"github.com/jaego/jaego/internal/demo"
	"github.com/jaego/jaego/internal/embedded"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/testenv"
	"github.com/jaego/jaego/internal/webhook"
)

// started is a jaego run() in the background, with the addresses it printed.
type started struct {
	api   string
	lines []string
	done  chan error
}

// openUnlessKeys is env as a getenv, with JAEGO_AUTH=none unless env sets it or gives a
// keys file: most tests are not about access control (TestAccessControl is).
func openUnlessKeys(env map[string]string) func(string) string {
	return func(k string) string {
		if k == "JAEGO_AUTH" && env[k] == "" && env["JAEGO_API_KEYS_FILE"] == "" {
			return "none"
		}
		return env[k]
	}
}

// start calls run() like main does, reads the addresses it prints (the api line comes
// last), and waits until
// /readyz answers 200. The test's end cancels it and checks it stopped cleanly.
func start(t *testing.T, env map[string]string, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	s := &started{done: make(chan error, 1)}
	go func() {
		s.done <- run(ctx, append([]string{"jaego"}, args...), openUnlessKeys(env), strings.NewReader(""), outW, t.Output())
		outW.Close()
	}()
	apiRE := regexp.MustCompile(`api:\s+(http://\S+)`)
	sc := bufio.NewScanner(outR)
	for s.api == "" && sc.Scan() {
		s.lines = append(s.lines, sc.Text())
		if m := apiRE.FindStringSubmatch(sc.Text()); m != nil {
			s.api = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if s.api == "" {
		cancel()
		t.Fatalf("jaego %v printed no api address: %v (run: %v)", args, s.lines, <-s.done)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("run returned %v after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not stop within 15s of cancel")
		}
	})
	// The listener is open before the address is printed; readiness is a state to poll.
	var err error
	testenv.Eventually(t, "/readyz to answer 200", 10*time.Second, func() bool {
		var resp *http.Response
		if resp, err = http.Get(s.api + "/readyz"); err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, func() string { return fmt.Sprint(err) })
	return s
}

// client bounds every request of these tests (an answer that hangs fails the test with a
// clear error instead of its timeout) and checks every answer against openapi.json.
var client = &http.Client{Timeout: time.Minute, Transport: apitest.Transport{}}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, m
}

// TestDevEndToEnd is the README's first command: jaego dev with no external server, demo
// stock seeded before it is ready, the embedded Redis reachable at the printed address.
func TestDevEndToEnd(t *testing.T) {
	// The standard ports must not matter to jaego dev: make sure each is taken (by us if
	// nobody else has it) while it starts.
	for _, port := range []string{"6379", "9092", "5432"} {
		if l, err := net.Listen("tcp", "127.0.0.1:"+port); err == nil {
			defer l.Close()
		}
	}
	s := start(t, nil, "dev", "--http", "127.0.0.1:0")

	var st map[string]any
	if code := getJSON(t, s.api+"/v1/stores/"+demo.Stores[0]+"/skus/"+demo.SKUs[0], &st); code != 200 || st["on_hand"] == nil || st["version"].(float64) < 1 {
		t.Fatalf("demo stock: %d %v", code, st)
	}
	onHand := st["on_hand"].(float64)
	code, ans := post(t, s.api+"/v1/events", `{"event_id":"pos-`+demo.Stores[0]+`-1","type":"sale","store":"`+demo.Stores[0]+`","sku":"`+demo.SKUs[0]+`","qty":2,"source":"pos"}`)
	if code != 200 || ans["status"] != "applied" {
		t.Fatalf("sale: %d %v", code, ans)
	}
	getJSON(t, s.api+"/v1/stores/"+demo.Stores[0]+"/skus/"+demo.SKUs[0], &st)
	if st["on_hand"].(float64) != onHand-2 {
		t.Errorf("after sale: %v, want on_hand %v", st, onHand-2)
	}
	var bulk struct {
		Items   []map[string]any `json:"items"`
		Missing []string         `json:"missing"`
	}
	getJSON(t, s.api+"/v1/skus/"+demo.SKUs[0]+"/stock?store="+demo.Stores[0]+",S002,S003,S999", &bulk)
	if len(bulk.Items) != 3 || len(bulk.Missing) != 1 {
		t.Errorf("cross-store: %+v", bulk)
	}
	// The embedded Redis is a real Redis-protocol server at the printed address.
	redisRE := regexp.MustCompile(`redis:\s+(127\.0\.0\.1:\d+)`)
	var redisAddr string
	for _, line := range s.lines {
		if m := redisRE.FindStringSubmatch(line); m != nil {
			redisAddr = m[1]
		}
	}
	if redisAddr == "" {
		t.Fatalf("no redis address printed: %v", s.lines)
	}
	conn, err := net.Dial("tcp", redisAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(conn).ReadString('\n'); line != "+PONG\r\n" {
		t.Errorf("embedded redis answered %q", line)
	}
	// Locks: one held by another process shows up in the admin list, and an operator's
	// force-unlock frees it.
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr}, DisableCache: true, AlwaysRESP2: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	held, err := lock.New(rc, lock.Options{ClassicPubSub: true}).TryLock(context.Background(), "promo-rebuild", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var locks struct {
		Locks []lock.Info `json:"locks"`
	}
	status := getJSON(t, s.api+"/v1/admin/locks", &locks)
	listed := map[string]int64{}
	for _, l := range locks.Locks {
		listed[l.Name] = l.Token
	}
	delete(listed, "stock-projector")   // the durable copy's projector may hold its own lock by now
	for p := range webhook.Partitions { // and the webhook deliveries theirs
		delete(listed, fmt.Sprintf("webhooks-%d", p))
	}
	if status != 200 || len(listed) != 1 || listed["promo-rebuild"] != held.Token {
		t.Errorf("lock list: %d %+v", status, locks)
	}
	if code, ans := post(t, s.api+"/v1/admin/locks/promo-rebuild/force-unlock", ""); code != 200 || ans["released"] != true {
		t.Errorf("force-unlock: %d %v", code, ans)
	}
	if err := held.Unlock(context.Background()); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("holder after force-unlock: %v", err)
	}
	if code, ans := post(t, s.api+"/v1/admin/locks/bad%7Bname%7D/force-unlock", ""); code != 400 || ans["code"] != "invalid_input" {
		t.Errorf("bad lock name: %d %v", code, ans)
	}

	// A till event through the embedded Kafka broker becomes stock.
	kafkaRE := regexp.MustCompile(`kafka:\s+(127\.0\.0\.1:\d+)`)
	var kafkaAddr string
	for _, line := range s.lines {
		if m := kafkaRE.FindStringSubmatch(line); m != nil {
			kafkaAddr = m[1]
		}
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	rec := &kgo.Record{Topic: "jaego.stock-events", Key: []byte("S002"),
		Value: []byte(`{"event_id":"till-S002-1","type":"receipt","store":"S002","sku":"` + demo.SKUs[0] + `","qty":100}`)}
	if err := kc.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatalf("produce to %q: %v", kafkaAddr, err)
	}
	var s2 map[string]any
	testenv.Eventually(t, "the till event applied", 10*time.Second, func() bool {
		getJSON(t, s.api+"/v1/stores/S002/skus/"+demo.SKUs[0], &s2)
		return s2["version"].(float64) > 3
	}, func() string { return fmt.Sprint(s2) })

	var metrics string
	resp, err := http.Get(s.api + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
	}
	for _, m := range []string{`jaego_stock_events_total{status="applied",type="sale"} 1`, "jaego_http_request_duration_seconds", "go_goroutines",
		`jaego_build_info{commit="unknown",go="` + runtime.Version() + `",version="devel"} 1`, `jaego_breaker_state{state="closed"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestServeEndToEnd runs jaego serve against a private redis-server, configured through the
// environment the way a deployment is, with a flag overriding one variable.
func TestServeEndToEnd(t *testing.T) {
	_, srv := testenv.Redis(t)
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + srv.Addr + "/0", "JAEGO_HTTP_ADDR": "127.0.0.1:1"}
	// A request timeout far beyond the test's: a dead Redis must be answered by its refusal
	// (503), never by waiting for the deadline (504).
	s := start(t, env, "serve", "--http", "127.0.0.1:0", "--request-timeout", "10m")
	code, ans := post(t, s.api+"/v1/events", `{"event_id":"e1","type":"receipt","store":"S1","sku":"A","qty":3}`)
	if code != 200 || ans["status"] != "applied" {
		t.Fatalf("receipt: %d %v", code, ans)
	}
	var st map[string]any
	if code := getJSON(t, s.api+"/v1/stores/S1/skus/A", &st); code != 200 || st["on_hand"] != 3.0 {
		t.Errorf("lookup: %d %v", code, st)
	}
	var health map[string]any
	if code := getJSON(t, s.api+"/healthz", &health); code != 200 {
		t.Errorf("healthz %d", code)
	}
	// Redis gone: not ready, and says so.
	srv.Stop()
	var ready map[string]any
	if code := getJSON(t, s.api+"/readyz", &ready); code != 503 || ready["code"] != "store_unavailable" {
		t.Errorf("readyz with redis down: %d %v", code, ready)
	}
	if strings.Contains(fmt.Sprint(ready), srv.Addr) {
		t.Errorf("readyz tells the Redis address: %v", ready)
	}
	var p map[string]any
	if code := getJSON(t, s.api+"/v1/stores/S1/skus/A", &p); code != 503 || p["code"] != "store_unavailable" {
		t.Errorf("lookup with redis down: %d %v", code, p)
	}
	if code, p := post(t, s.api+"/v1/events", `{"event_id":"e2","type":"sale","store":"S1","sku":"A","qty":1}`); code != 503 || p["code"] != "store_unavailable" {
		t.Errorf("event with redis down: %d %v", code, p)
	}
}

func TestServeCluster(t *testing.T) {
	_, nodes := testenv.RedisCluster(t)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr)
	}
	s := start(t, map[string]string{"JAEGO_REDIS_URL": strings.Join(addrs, ",")}, "serve", "--http", "127.0.0.1:0")
	var events []string
	for _, store := range []string{"S1", "S2", "S3", "S4", "S5", "S6"} {
		events = append(events, `{"event_id":"r-`+store+`","type":"receipt","store":"`+store+`","sku":"A","qty":2}`)
	}
	if code, ans := post(t, s.api+"/v1/events", `{"events":[`+strings.Join(events, ",")+`]}`); code != 200 {
		t.Fatalf("batch on cluster: %d %v", code, ans)
	}
	var bulk struct {
		Items []map[string]any `json:"items"`
	}
	getJSON(t, s.api+"/v1/skus/A/stock?store=S1,S2,S3,S4,S5,S6", &bulk)
	if len(bulk.Items) != 6 {
		t.Errorf("cross-store on cluster: %+v", bulk)
	}
}

func TestBadConfiguration(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"JAEGO_AUTH": "none"}, []string{"serve", "--http", "127.0.0.1:0"}, "--redis (JAEGO_REDIS_URL) is required"},
		{nil, []string{"serve", "--redis", "redis://127.0.0.1:1/0"}, "no keys file: give --api-keys FILE"},
		{nil, []string{"serve", "--auth", "open"}, "--auth must be keys or none"},
		{nil, []string{"serve", "--auth", "none", "--api-keys", "k.txt"}, "contradict"},
		{nil, []string{"serve", "--api-keys", "/nonexistent/keys"}, "no such file"},
		{nil, []string{"relay", "--kafka", "127.0.0.1:1", "--http", "127.0.0.1:0"}, "no keys file"},
		{map[string]string{"JAEGO_CHANGES_RETENTION": "two days"}, []string{"dev"}, "JAEGO_CHANGES_RETENTION"},
		{map[string]string{"JAEGO_SHARD_GROUPS": "x"}, []string{"dev"}, "JAEGO_SHARD_GROUPS"},
		{nil, []string{"dev", "--groups", "0"}, "--groups"},
		{nil, []string{"dev", "--log-format", "xml"}, "--log-format"},
		{map[string]string{"JAEGO_AUTH": "none"}, []string{"serve", "--redis", "localhost"}, "not host:port"},
		{nil, []string{"dev", "extra"}, "unexpected argument"},
		{nil, []string{"frobnicate"}, "unknown command"},
		{nil, []string{}, "no command"},
	}
	for _, c := range cases {
		err := run(context.Background(), append([]string{"jaego"}, c.args...), func(k string) string { return c.env[k] }, strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want an error about %s", c.env, c.args, err, c.want)
		}
	}
}

func TestShardedPubSubDetection(t *testing.T) {
	real, _ := testenv.Redis(t)
	if !shardedPubSub(context.Background(), real) {
		t.Error("redis-server 7 not detected as having SPUBLISH")
	}
	if shardedPubSub(context.Background(), testenv.EmbeddedRedis(t)) {
		t.Error("embedded server detected as having SPUBLISH")
	}
}

// TestDevDataKeepsStock: jaego dev --data keeps the stock and the idempotency marks across
// a restart (through the durable copy), and seeds the demo only on a first run.
func TestDevDataKeepsStock(t *testing.T) {
	dir := t.TempDir()
	var before map[string]any
	t.Run("first run", func(t *testing.T) {
		s := start(t, nil, "dev", "--http", "127.0.0.1:0", "--data", dir)
		if code, ans := post(t, s.api+"/v1/events", `{"event_id":"kept-1","type":"receipt","store":"`+demo.Stores[0]+`","sku":"`+demo.SKUs[0]+`","qty":100}`); code != 200 || ans["status"] != "applied" {
			t.Fatalf("receipt: %d %v", code, ans)
		}
		getJSON(t, s.api+"/v1/stores/"+demo.Stores[0]+"/skus/"+demo.SKUs[0], &before)
		deadline := time.Now().Add(30 * time.Second)
		for { // the projector has copied the receipt once its history shows it
			var h map[string]any
			getJSON(t, s.api+"/v1/stores/"+demo.Stores[0]+"/skus/"+demo.SKUs[0]+"/history", &h)
			if strings.Contains(fmt.Sprint(h["changes"]), "kept-1") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the receipt never reached the durable copy")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("restart", func(t *testing.T) {
		s := start(t, nil, "dev", "--http", "127.0.0.1:0", "--data", dir)
		var after map[string]any
		if code := getJSON(t, s.api+"/v1/stores/"+demo.Stores[0]+"/skus/"+demo.SKUs[0], &after); code != 200 ||
			after["on_hand"] != before["on_hand"] || after["version"] != before["version"] || after["reserved"] != before["reserved"] {
			t.Fatalf("after a restart: %d %v, before %v", code, after, before)
		}
		if code, ans := post(t, s.api+"/v1/events", `{"event_id":"kept-1","type":"receipt","store":"`+demo.Stores[0]+`","sku":"`+demo.SKUs[0]+`","qty":100}`); code != 200 || ans["status"] != "duplicate" {
			t.Fatalf("the receipt again after a restart: %d %v", code, ans)
		}
		var feed map[string]any
		from := time.Now().Add(-time.Hour).UnixMilli()
		if code := getJSON(t, fmt.Sprintf("%s/v1/changes?from=%d&limit=10000", s.api, from), &feed); code != 200 || !strings.Contains(fmt.Sprint(feed["changes"]), "kept-1") {
			t.Fatalf("the change feed after a restart lacks the receipt: %d %v", code, feed)
		}
	})
}

// TestVersion: `jaego version` and `--version` say what the binary is; a build with
// -ldflags says what it was given.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out strings.Builder
		if err := run(context.Background(), []string{"jaego", arg}, func(string) string { return "" }, nil, &out, t.Output()); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "jaego ") || !strings.Contains(out.String(), runtime.Version()) {
			t.Errorf("jaego %s printed %q", arg, out.String())
		}
	}
	bin := filepath.Join(t.TempDir(), "jaego")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7 -X main.commit=abc123", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "jaego v9.8.7, commit abc123") {
		t.Fatalf("a release build says %q (%v)", out, err)
	}
}

// TestHelp: every command answers -h with its description, flags with defaults and env
// names, and examples, as a help request (exit 0), not a failure; an unknown flag names the
// nearest one.
func TestHelp(t *testing.T) {
	for _, cmd := range [][]string{{"dev"}, {"serve"}, {"relay"}, {"loadgen"}, {"migrate"}, {"restore"}, {"load"}, {"promo", "rebuild"}, {"promo"}} {
		var out strings.Builder
		err := run(context.Background(), append(append([]string{"jaego"}, cmd...), "-h"), func(string) string { return "" }, nil, &out, &out)
		name := strings.Join(cmd, " ")
		if name == "promo" {
			name = "promo rebuild"
		}
		if !isHelp(err) || !strings.Contains(out.String(), "usage: jaego "+name) || !strings.Contains(out.String(), "examples:") ||
			!strings.Contains(out.String(), "(env JAEGO_") || len(commandHelp[name].about) == 0 {
			t.Errorf("jaego %s -h: %v\n%s", strings.Join(cmd, " "), err, out.String())
		}
	}
	err := run(context.Background(), []string{"jaego", "serve", "--reddis", "x"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "did you mean --redis?") {
		t.Errorf("an unknown flag: %v", err)
	}
}

// TestServeWithoutClientTracking: serve and promo rebuild work on a Redis without RESP3
// client tracking (here jaego dev's embedded server) when no option needs it.
func TestServeWithoutClientTracking(t *testing.T) {
	srv, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pg := testenv.Postgres(t)
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + srv.Addr() + "/0", "JAEGO_POSTGRES_URL": pg}
	if err := run(context.Background(), []string{"jaego", "migrate"}, func(k string) string { return env[k] }, nil, io.Discard, t.Output()); err != nil {
		t.Fatal(err)
	}
	s := start(t, env, "serve", "--http", "127.0.0.1:0")
	if code, ans := post(t, s.api+"/v1/events", `{"event_id":"nt-1","type":"receipt","store":"S1","sku":"A","qty":2}`); code != 200 || ans["status"] != "applied" {
		t.Fatalf("receipt: %d %v", code, ans)
	}
	var gifts map[string]any
	if code := getJSON(t, s.api+"/v1/products/A/gifts", &gifts); code != 200 {
		t.Fatalf("gifts: %d %v", code, gifts)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"jaego", "promo", "rebuild"}, func(k string) string { return env[k] }, nil, &out, t.Output()); err != nil || !strings.Contains(out.String(), "published") {
		t.Fatalf("promo rebuild: %v %s", err, out.String())
	}
}

// TestPasswordsStayInside: a password in the Redis or PostgreSQL URL appears neither in
// the banner nor in an error.
func TestPasswordsStayInside(t *testing.T) {
	srv, err := testenv.StartRedis(t.TempDir(), "requirepass s3cret-redis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	s := start(t, map[string]string{"JAEGO_REDIS_URL": "redis://:s3cret-redis@" + srv.Addr + "/0"}, "serve", "--http", "127.0.0.1:0")
	banner := strings.Join(s.lines, "\n")
	if strings.Contains(banner, "s3cret") || !strings.Contains(banner, ":***@") {
		t.Errorf("the banner shows the password:\n%s", banner)
	}
	for _, url := range []string{"redis://:wrong-s3cret@" + srv.Addr + "/0", "redis://user:s3cret-x@127.0.0.1:1/0"} {
		err := run(context.Background(), []string{"jaego", "serve", "--http", "127.0.0.1:0", "--auth", "none", "--redis", url}, func(string) string { return "" }, nil, io.Discard, io.Discard)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("serve with %s: %v", url, err)
		}
	}
	err = run(context.Background(), []string{"jaego", "migrate", "--postgres", "postgres://jaego:s3cret-pg@127.0.0.1:1/jaego"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("migrate: %v", err)
	}
}

// TestLoadCommand: jaego load prints every bad line with its number and loads nothing from
// such a file; a good file from stdin loads with a progress line, and again changes nothing.
func TestLoadCommand(t *testing.T) {
	client, srv := testenv.Redis(t)
	ctx := context.Background()
	env := map[string]string{"JAEGO_REDIS_URL": "redis://" + srv.Addr + "/0", "JAEGO_LOG_LEVEL": "warn"}
	getenv := func(k string) string { return env[k] }
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("S1,A,3\nS1,B,three\nS1,C,4\nS 1,D,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	err := run(ctx, []string{"jaego", "load", bad}, getenv, nil, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "2 bad lines") || !strings.Contains(stderr.String(), bad+":2: on_hand") ||
		!strings.Contains(stderr.String(), bad+":4: store") {
		t.Fatalf("bad file: %v\n%s", err, stderr.String())
	}
	if n, err := client.Do(ctx, client.B().Dbsize().Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("a bad file left %d keys (%v)", n, err)
	}
	good := "store,sku,on_hand,safety\nS1,A,3,1\nS2,B,5,\n"
	for i, want := range []string{"2 changed", "2 loaded before by this file"} {
		var out, progress strings.Builder
		if err := run(ctx, []string{"jaego", "load", "-"}, getenv, strings.NewReader(good), &out, &progress); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) || !strings.Contains(progress.String(), "load: 2/2 rows (100%)") {
			t.Errorf("run %d: %s\n%s", i, out.String(), progress.String())
		}
	}
	if v, err := client.Do(ctx, client.B().Hget().Key(invredis.New(client, invredis.Options{}).Keys().Stock("S1")).Field("A").Build()).ToString(); err != nil || !strings.HasPrefix(v, "3:0:1:1:") {
		t.Errorf("S1/A is %q (%v)", v, err)
	}
}
