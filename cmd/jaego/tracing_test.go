package main

import (
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
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/testenv"
)

// TestTracingEndToEnd follows stock events through the binaries into Jaeger (a trace backend
// nobody here wrote) and reads the spans back through Jaeger's query API: an HTTP event
// continues the caller's traceparent through the route and the Redis script; a POS line fed
// to `jaego relay` (exporting over gRPC) becomes one trace holding the relay's transaction
// and publish spans and `jaego serve`'s (over HTTP) apply and script spans. The
// access log line of the traced request carries its trace id, and /metrics shows the id as
// an exemplar to a scraper that asks for OpenMetrics.
func TestTracingEndToEnd(t *testing.T) {
	t.Parallel() // processes of its own: it waits, mostly (and builds Jaeger on a fresh machine)
	bin := buildJaego(t)
	jaeger := testenv.StartJaeger(t)
	_, redisSrv := testenv.Redis(t)
	broker := testenv.Kafka(t, 4, invkafka.DefaultTopic, invkafka.DefaultTopic+invkafka.DLQSuffix)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	serve := startJaegoEnv(t, bin, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + jaeger.OTLPHTTP, "OTEL_SERVICE_NAME=serve-under-test",
		"OTEL_BSP_SCHEDULE_DELAY=100"},
		"serve", "--http", "127.0.0.1:0", "--redis", "redis://"+redisSrv.Addr+"/0", "--kafka", broker,
		"--kafka-session-timeout", "1s", "--access-log")

	// 1. HTTP: the caller's trace is continued.
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, serve.api+"/v1/events",
		strings.NewReader(`{"event_id":"trace-1","type":"receipt","store":"S001","sku":"8809461234567","qty":5}`))
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("event: %s", res.Status)
	}
	spans := waitTrace(t, ctx, jaeger, traceID, "the route and its script call", func(spans []testenv.Span) bool {
		return findSpan(spans, "POST /v1/events") != nil && findSpan(spans, "redis apply") != nil
	})
	route, script := findSpan(spans, "POST /v1/events"), findSpan(spans, "redis apply")
	if route.Parent != parentID || route.Service != "serve-under-test" || route.Tags["http.route"] != "POST /v1/events" {
		t.Errorf("route span %+v: want the child of the caller's span %s, of serve-under-test, with http.route", route, parentID)
	}
	group := invredis.New(nil, invredis.Options{}).Keys().Group("S001")
	if script.Parent != route.SpanID || script.Tags["jaego.shard_group"] != fmt.Sprint(group) || script.Tags["jaego.batch_size"] != "1" {
		t.Errorf("script span %+v: want the child of the route span %s, shard group %d, batch size 1", script, route.SpanID, group)
	}

	// The request's log line carries its trace id; /metrics an exemplar with it.
	testenv.Eventually(t, "the access log line of the traced request", 10*time.Second, func() bool {
		b, _ := os.ReadFile(serve.log)
		for _, line := range strings.Split(string(b), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" && rec["route"] == "POST /v1/events" {
				return rec["trace_id"] == traceID && rec["span_id"] == route.SpanID
			}
		}
		return false
	})
	metrics := scrape(t, ctx, serve.api+"/metrics", "application/openmetrics-text; version=1.0.0")
	exemplar := regexp.MustCompile(`jaego_http_request_duration_seconds_bucket\{route="POST /v1/events",le="[^"]+"\} \d+ # \{trace_id="` + traceID + `"\}`)
	if !exemplar.MatchString(metrics) {
		t.Errorf("no exemplar with trace id %s on the route's latency in the OpenMetrics exposition", traceID)
	}
	if plain := scrape(t, ctx, serve.api+"/metrics", ""); strings.Contains(plain, "trace_id") {
		t.Errorf("the Prometheus text format (no Accept) shows exemplars")
	}

	// 2. Kafka: one POS line through the relay is one trace across both processes.
	runOnce(t, ctx, bin, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + jaeger.OTLPGRPC, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_SERVICE_NAME=relay-under-test"},
		`{"txn_id":"T-1","store":"S002","at":"2026-11-22T12:02:00+09:00","type":"sale","lines":[{"sku":"8809461234567","qty":1},{"sku":"8809461234574","qty":2}]}`+"\n",
		"relay", "--kafka", broker)
	var tr []testenv.Span
	testenv.Eventually(t, "one trace of the relay holding the consumer's apply and script spans", time.Minute, func() bool {
		traces, err := jaeger.Traces(ctx, "relay-under-test")
		if err != nil || len(traces) != 1 {
			return false
		}
		for _, spans := range traces {
			tr = spans
		}
		// Spans arrive in batches from two processes: wait for every one the trace must hold.
		return findSpan(tr, "pos transaction") != nil && countSpans(tr, invkafka.DefaultTopic+" publish") == 2 &&
			findSpan(tr, invkafka.DefaultTopic+" apply") != nil && findSpan(tr, "redis apply") != nil
	}, func() string { return fmt.Sprintf("%d spans: %v", len(tr), spanNames(tr)) })
	txn := findSpan(tr, "pos transaction")
	apply := findSpan(tr, invkafka.DefaultTopic+" apply")
	script = findSpan(tr, "redis apply")
	if txn == nil || apply == nil || txn.Service != "relay-under-test" || apply.Service != "serve-under-test" {
		t.Fatalf("want the relay's transaction and serve's apply in the trace, got %v", spanNames(tr))
	}
	if script.Parent != apply.SpanID || script.Tags["jaego.batch_size"] != "2" {
		t.Errorf("script span %+v: want the child of the apply span with both events", script)
	}
	// Every span of serve's descends from the relay's transaction: one trace, till to Redis.
	for _, s := range tr {
		if !descends(tr, s, txn.SpanID) && s.SpanID != txn.SpanID {
			t.Errorf("span %q (%s) does not descend from the POS transaction", s.Name, s.Service)
		}
	}

	// 3. jaego load: one trace, the load and its script calls.
	csv := filepath.Join(t.TempDir(), "snapshot.csv")
	if err := os.WriteFile(csv, []byte("store,sku,on_hand\nS010,8809461234567,3\nS011,8809461234567,4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runOnce(t, ctx, bin, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + jaeger.OTLPHTTP, "OTEL_SERVICE_NAME=load-under-test"}, "",
		"load", "--redis", "redis://"+redisSrv.Addr+"/0", csv)
	var loaded []testenv.Span
	testenv.Eventually(t, "one trace of the load with its script calls", time.Minute, func() bool {
		traces, err := jaeger.Traces(ctx, "load-under-test")
		if err != nil || len(traces) != 1 {
			return false
		}
		for _, spans := range traces {
			loaded = spans
		}
		return findSpan(loaded, "load") != nil && findSpan(loaded, "redis apply") != nil
	}, func() string { return fmt.Sprint(spanNames(loaded)) })
	root := findSpan(loaded, "load")
	for _, s := range loaded {
		if s.Name == "redis apply" && s.Parent != root.SpanID {
			t.Errorf("a script call of the load is not the load span's child")
		}
	}
	if root.Tags["jaego.rows"] != "2" {
		t.Errorf("the load span says %s rows, want 2", root.Tags["jaego.rows"])
	}
}

// TestNoTracingWithoutOTEL runs jaego serve and relay with no OTEL_* variable set while something listens
// on the default OTLP ports (4317 gRPC, 4318 HTTP): traffic, a relay and a graceful stop
// make no connection to either. The same relay with an endpoint set does connect (the
// listener can see what it is there to see).
func TestNoTracingWithoutOTEL(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	var connections atomic.Int64
	for _, addr := range []string{"127.0.0.1:4317", "127.0.0.1:4318"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the test listens on the default OTLP port %s to see connection attempts: %v", addr, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		}), ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				connections.Add(1)
			}
		}}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { srv.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, redisSrv := testenv.Redis(t)
	broker := testenv.Kafka(t, 4, invkafka.DefaultTopic, invkafka.DefaultTopic+invkafka.DLQSuffix)
	dev := startJaego(t, bin, "serve", "--http", "127.0.0.1:0", "--redis", "redis://"+redisSrv.Addr+"/0", "--kafka", broker,
		"--kafka-session-timeout", "1s", "--access-log")
	if a := call(t, "POST", dev.api+"/v1/events", `{"event_id":"quiet-1","type":"receipt","store":"S001","sku":"8809461234567","qty":5}`); a.status != http.StatusOK {
		t.Fatalf("event: %d %v", a.status, a.body)
	}
	relayLine := func(txn string, env ...string) {
		t.Helper()
		runOnce(t, ctx, bin, env, `{"txn_id":"`+txn+`","store":"S001","at":"2026-11-22T12:02:00+09:00","type":"sale","lines":[{"sku":"8809461234567","qty":1}]}`+"\n",
			"relay", "--kafka", broker)
	}
	relayLine("Q-1")
	var onHand any
	testenv.Eventually(t, "the relayed sale applied (on hand 5 - 1)", time.Minute, func() bool {
		onHand = call(t, "GET", dev.api+"/v1/stores/S001/skus/8809461234567", "").body["on_hand"]
		return onHand == float64(4)
	}, func() string { return fmt.Sprint("on hand ", onHand) })
	if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(ctx, dev.cmd); err != nil {
		t.Fatalf("jaego serve did not stop on SIGTERM: %v", err)
	}
	if b, _ := os.ReadFile(dev.log); strings.Contains(string(b), "tracing on") {
		t.Errorf("jaego serve says tracing is on with no OTEL_* set")
	}
	if n := connections.Load(); n != 0 {
		t.Fatalf("%d connections to the default OTLP ports with no OTEL_* set", n)
	}

	// The control: asked to, the relay exports to the listener.
	relayLine("Q-2", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318")
	if n := connections.Load(); n == 0 {
		t.Fatalf("the relay with OTEL_EXPORTER_OTLP_ENDPOINT set made no connection: the listener sees nothing")
	}
}

// runOnce runs a command of the binary to its end (bounded by ctx), with env added to the
// test's environment less its OTEL_* variables and stdin as its input.
func runOnce(t *testing.T, ctx context.Context, bin string, env []string, stdin string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(environWithoutOTEL(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("jaego %s: %v\n%s", args[0], err, out)
	}
}

// waitTrace polls Jaeger for trace id until done holds of its spans.
func waitTrace(t *testing.T, ctx context.Context, j *testenv.Jaeger, id, what string, done func([]testenv.Span) bool) []testenv.Span {
	t.Helper()
	var spans []testenv.Span
	testenv.Eventually(t, "trace "+id+" to hold "+what, time.Minute, func() bool {
		s, err := j.Trace(ctx, id)
		spans = s
		return err == nil && done(s)
	}, func() string { return fmt.Sprint(spanNames(spans)) })
	return spans
}

func findSpan(spans []testenv.Span, name string) *testenv.Span {
	for i := range spans {
		if spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func countSpans(spans []testenv.Span, name string) int {
	n := 0
	for _, s := range spans {
		if s.Name == name {
			n++
		}
	}
	return n
}

func spanNames(spans []testenv.Span) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Service+": "+s.Name)
	}
	slices.Sort(names)
	return names
}

// descends tells whether s has ancestor among its parents in spans.
func descends(spans []testenv.Span, s testenv.Span, ancestor string) bool {
	for range spans {
		if s.Parent == "" {
			return false
		}
		if s.Parent == ancestor {
			return true
		}
		p := slices.IndexFunc(spans, func(x testenv.Span) bool { return x.SpanID == s.Parent })
		if p < 0 {
			return false
		}
		s = spans[p]
	}
	return false
}

// scrape answers the body of GET url with the Accept header given.
func scrape(t *testing.T, ctx context.Context, url, accept string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitExit waits for cmd to exit, or ctx to end.
func waitExit(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestTracingCollectorHangs points jaego serve at a collector that accepts connections and
// never answers: every request is still answered (spans wait in the batcher's bounded
// queue, never in a request), and the failed exports are counted and logged.
func TestTracingCollectorHangs(t *testing.T) {
	t.Parallel()
	bin := buildJaego(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c) // read nothing, answer nothing
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { l.Close() })
	_, redisSrv := testenv.Redis(t)
	serve := startJaegoEnv(t, bin, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + l.Addr().String(), "OTEL_BSP_SCHEDULE_DELAY=50",
		"OTEL_EXPORTER_OTLP_TIMEOUT=300", "OTEL_BSP_EXPORT_TIMEOUT=500"},
		"serve", "--http", "127.0.0.1:0", "--redis", "redis://"+redisSrv.Addr+"/0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	for i := range 200 {
		res, err := hc.Post(serve.api+"/v1/events", "application/json",
			strings.NewReader(fmt.Sprintf(`{"event_id":"hang-%d","type":"receipt","store":"S001","sku":"8809461234567","qty":1}`, i)))
		if err != nil {
			t.Fatalf("request %d with the collector hanging: %v", i, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %s", i, res.Status)
		}
	}
	t.Logf("200 requests in %s with the collector hanging", time.Since(start))
	testenv.Recv(t, ctx, accepted, "the exporter's connection to the hanging collector")
	testenv.Eventually(t, "jaego_trace_errors_total counted the failed exports", time.Minute, func() bool {
		m := regexp.MustCompile(`(?m)^jaego_trace_errors_total (\d+)`).FindStringSubmatch(scrape(t, ctx, serve.api+"/metrics", ""))
		return m != nil && m[1] != "0"
	})
	if b, _ := os.ReadFile(serve.log); !strings.Contains(string(b), `"msg":"tracing"`) {
		t.Errorf("the failed exports are not logged")
	}
	if a := call(t, "GET", serve.api+"/v1/stores/S001/skus/8809461234567", ""); a.body["on_hand"] != float64(200) {
		t.Errorf("on hand %v after 200 receipts of 1", a.body["on_hand"])
	}
}
