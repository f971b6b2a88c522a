package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/inventory/kafkatest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/pos"
	"github.com/jaego/jaego/internal/testenv"
)

// built is the binary of this command, compiled once for every test of the package that
// runs it (TestMain removes it).
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildJaego compiles this command once per test binary into a temporary directory.
func buildJaego(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "jaego-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "jaego")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	flag.Parse()
	run := flag.Lookup("test.run").Value.String()
	if re, err := regexp.Compile(run); run == "" || err != nil || re.MatchString("TestTracingEndToEnd") {
		// Jaeger takes minutes to build on a fresh machine (seconds with a warm cache): start
		// now, so that the tracing test, which runs late with the parallel ones, finds it
		// built or under way rather than starting it then.
		go func() { _, _ = testenv.JaegerBinary() }()
	}
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// startServe runs `jaego serve` on redisAddr and broker, the consumer's session short.
func startServe(t *testing.T, bin, redisAddr, broker string) *jaegoProc {
	t.Helper()
	return startJaego(t, bin, "serve", "--http", "127.0.0.1:0", "--redis", "redis://"+redisAddr+"/0",
		"--kafka", broker, "--kafka-session-timeout", "1s", "--log-level", "warn")
}

// appliedCount is the number of change entries: one per applied event.
func appliedCount(t *testing.T, client rueidis.Client, store *invredis.Store) int64 {
	t.Helper()
	now := time.Now()
	var cmds rueidis.Commands
	for g := 0; g < store.Keys().Groups(); g++ {
		for _, day := range []time.Time{now.Add(-24 * time.Hour), now, now.Add(24 * time.Hour)} {
			cmds = append(cmds, client.B().Xlen().Key(store.Keys().StreamOn(g, day)).Build())
		}
	}
	var n int64
	for _, r := range client.DoMulti(context.Background(), cmds...) {
		v, err := r.AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}

// TestCrashRecovery replays more than 200,000 POS events into `jaego serve` processes that
// are killed with SIGKILL again and again, with two processes sharing the group at the end
// and one of them killed mid-stream. Afterwards every SKU equals the sum of its events and
// every event id has exactly one change-feed entry.
func TestCrashRecovery(t *testing.T) {
	t.Parallel() // a binary of its own on servers of its own: it waits, mostly, while the others run
	bin := buildJaego(t)
	client, redisSrv := testenv.Redis(t)
	broker := testenv.Kafka(t, 8, invkafka.DefaultTopic, invkafka.DefaultTopic+invkafka.DLQSuffix)
	store := invredis.New(client, invredis.Options{})

	var events []inventory.Event
	for tx := range pos.Day(pos.DayOptions{Transactions: 150000, Stores: 300, SKUs: 2000, Seed: 7}) {
		events = append(events, tx.Events()...)
	}
	if len(events) < 200000 {
		t.Fatalf("only %d events generated", len(events))
	}
	kafkatest.Produce(t, broker, events)
	total := int64(len(events))

	// waitFor polls Redis for progress: consumption has no event visible from outside.
	waitFor := func(frac float64) int64 {
		t.Helper()
		target := int64(frac * float64(total))
		var n int64
		testenv.Eventually(t, fmt.Sprintf("%d of %d events applied", target, total), 3*time.Minute, func() bool {
			n = appliedCount(t, client, store)
			return n >= target
		}, func() string { return fmt.Sprintf("%d applied", n) })
		return n
	}

	a := startServe(t, bin, redisSrv.Addr, broker)
	for i, frac := range []float64{0.10, 0.25, 0.40} {
		n := waitFor(frac)
		a.kill(t)
		t.Logf("kill %d: SIGKILL at %d/%d applied", i+1, n, total)
		a = startServe(t, bin, redisSrv.Addr, broker)
	}
	waitFor(0.50)
	b := startServe(t, bin, redisSrv.Addr, broker)
	n := waitFor(0.65)
	a.kill(t) // one of two members dies mid-stream; b takes its partitions over
	t.Logf("kill 4: SIGKILL of one of two members at %d/%d applied", n, total)
	waitFor(0.80)
	b.kill(t)
	t.Logf("kill 5: SIGKILL of the last member")
	startServe(t, bin, redisSrv.Addr, broker)
	waitFor(1.0)

	kafkatest.CheckTotals(t, client, store, events)
	if got := appliedCount(t, client, store); got != total {
		t.Fatalf("%d change entries for %d events", got, total)
	}
	fmt.Fprintf(t.Output(), "crash test: %d events, 5 SIGKILLs, exact totals\n", total)
}
