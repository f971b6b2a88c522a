package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/inventory/kafkatest"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/pos"
	"github.com/jaego/jaego/internal/testenv"
)

const topic = invkafka.DefaultTopic

type env struct {
	broker string
	client rueidis.Client
	redis  *testenv.RedisServer
	store  *invredis.Store
}

func newEnv(t *testing.T) *env {
	client, srv := testenv.Redis(t)
	return &env{
		broker: testenv.Kafka(t, 8, topic, topic+invkafka.DLQSuffix),
		client: client, redis: srv,
		store: invredis.New(client, invredis.Options{}),
	}
}

func (e *env) consumer(t *testing.T, opts invkafka.ConsumerOptions) *invkafka.Consumer {
	c, _ := e.stoppableConsumer(t, opts)
	return c
}

// stoppableConsumer runs a consumer until the test ends or stop is called (it leaves the
// group); stop returns once Run returned.
func (e *env) stoppableConsumer(t *testing.T, opts invkafka.ConsumerOptions) (*invkafka.Consumer, func()) {
	opts.Brokers = []string{e.broker}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := invkafka.NewConsumer(e.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer: %v", err)
			}
			c.Close()
		})
	}
	t.Cleanup(stop)
	return c, stop
}

func (e *env) produce(t *testing.T, events []inventory.Event) { kafkatest.Produce(t, e.broker, events) }

// waitHandled waits until the consumers together handled n records. The consumer has no
// event to wait on from outside; this polls its counter, bounded.
func waitHandled(t *testing.T, n int64, cs ...*invkafka.Consumer) {
	t.Helper()
	handled := func() (got int64) {
		for _, c := range cs {
			got += c.Handled()
		}
		return got
	}
	testenv.Eventually(t, fmt.Sprintf("the consumers to handle %d records", n), 60*time.Second, func() bool { return handled() >= n },
		func() string { return fmt.Sprintf("%d handled", handled()) })
}

// dayEvents is a POS day of n transactions; every seed is another day, so the event ids of
// two seeds never collide.
func dayEvents(n int, seed int64) []inventory.Event {
	var out []inventory.Event
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(seed))
	for tx := range pos.Day(pos.DayOptions{Transactions: n, Stores: 40, SKUs: 300, Seed: seed, Date: day}) {
		out = append(out, tx.Events()...)
	}
	return out
}

func TestEndToEndExactTotals(t *testing.T) {
	e := newEnv(t)
	events := dayEvents(3000, 1)
	c := e.consumer(t, invkafka.ConsumerOptions{})
	e.produce(t, events)
	waitHandled(t, int64(len(events)), c)
	kafkatest.CheckTotals(t, e.client, e.store, events)
}

func TestRedeliveryAppliesOnce(t *testing.T) {
	e := newEnv(t)
	events := dayEvents(1000, 2)
	c := e.consumer(t, invkafka.ConsumerOptions{})
	e.produce(t, events)
	e.produce(t, events) // the relay retried everything
	waitHandled(t, int64(2*len(events)), c)
	kafkatest.CheckTotals(t, e.client, e.store, events)
}

// TestPoisonGoesToDLQ: undecodable and invalid records go to the DLQ with the reason and
// their origin; the good records after them on the same partition still apply; a refused
// event is neither retried nor dead-lettered.
func TestPoisonGoesToDLQ(t *testing.T) {
	e := newEnv(t)
	c := e.consumer(t, invkafka.ConsumerOptions{})
	good := func(id string, typ inventory.EventType, qty int64) string {
		return fmt.Sprintf(`{"event_id":%q,"type":%q,"store":"S001","sku":"A","qty":%d}`, id, typ, qty)
	}
	values := []string{
		good("g1", inventory.Receipt, 5),
		`{"event_id":"p1","type":"sale","store":"S001",`,                            // cut off
		good("p2", inventory.Sale, -3),                                              // negative qty
		good("p3", "steal", 1),                                                      // unknown type
		good("g2", inventory.Reserve, 99),                                           // refused: not poison
		`{"event_id":"p4","type":"sale","store":"S001","sku":"A","qty":1,"till":3}`, // unknown field
		good("g3", inventory.Sale, 2),
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range values {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte("S001"), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitHandled(t, int64(len(values)), c)
	st, err := e.store.Get(context.Background(), "S001", "A")
	if err != nil || st.OnHand != 3 || st.Reserved != 0 || st.Version != 2 {
		t.Fatalf("after poison: %+v %v", st, err)
	}
	dead := kafkatest.ReadAll(t, e.broker, topic+invkafka.DLQSuffix, 4)
	want := map[string]string{"p1": "invalid_json", "p2": "invalid_input", "p3": "invalid_input", "p4": "invalid_json"}
	for _, r := range dead {
		h := map[string]string{}
		for _, hd := range r.Headers {
			h[hd.Key] = string(hd.Value)
		}
		id := ""
		for k := range want {
			if strings.Contains(string(r.Value), `"`+k+`"`) {
				id = k
			}
		}
		if id == "" || h[invkafka.HeaderError] != want[id] || h[invkafka.HeaderDetail] == "" || h[invkafka.HeaderTopic] != topic ||
			h[invkafka.HeaderOffset] == "" || h[invkafka.HeaderPartition] == "" || string(r.Key) != "S001" {
			t.Errorf("DLQ record %s: %v", r.Value, h)
		}
		delete(want, id)
	}
	if len(want) != 0 {
		t.Errorf("not dead-lettered: %v", want)
	}
}

// TestLargePollAppliesInOrder: a poll of 2,500 records on one partition is applied in
// chunks (decoding the next while one applies). Every event is a set that expects the
// version the one before it leaves, so an event applied out of order, twice or not at all
// is a version conflict; the poison in the second and third chunks still goes to the DLQ.
func TestLargePollAppliesInOrder(t *testing.T) {
	e := newEnv(t)
	const n = 2500
	poison := map[int]bool{1500: true, 2200: true}
	var records []*kgo.Record
	version := int64(0)
	for i := range n {
		v := fmt.Sprintf(`{"event_id":"e%d","type":"set","store":"S001","sku":"A","qty":%d,"expected_version":%d}`, i, i, version)
		if poison[i] {
			v = fmt.Sprintf(`{"event_id":"e%d","type":"set","store":"S001"`, i) // cut off
		} else {
			version++
		}
		records = append(records, &kgo.Record{Topic: topic, Key: []byte("S001"), Value: []byte(v)})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := e.consumer(t, invkafka.ConsumerOptions{MaxPoll: n, Registerer: reg})
	waitHandled(t, n, c)
	st, err := e.store.Get(context.Background(), "S001", "A")
	if err != nil || st.OnHand != n-1 || st.Version != n-int64(len(poison)) {
		t.Fatalf("after %d sets: %+v %v", n, st, err)
	}
	if got := kafkatest.Metric(t, reg, "jaego_consumer_records_total"); got != n {
		t.Errorf("records counted: %v, want %d", got, n)
	}
	if refused := testenv.Metric(t, reg, "jaego_consumer_records_total", "outcome", "refused"); refused != 0 {
		t.Errorf("%v events refused: applied out of order", refused)
	}
	if dead := kafkatest.ReadAll(t, e.broker, topic+invkafka.DLQSuffix, len(poison)); len(dead) != len(poison) {
		t.Errorf("dead-lettered %d, want %d", len(dead), len(poison))
	}
	// The chunks were exercised only if a poll held more than one chunk of records.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "jaego_consumer_batch_seconds" {
			if polls := mf.GetMetric()[0].GetHistogram().GetSampleCount(); polls > 2 {
				t.Errorf("%d records came in %d polls: no poll held two chunks", n, polls)
			}
		}
	}
}

// TestRedisDownLosesNothing: while Redis hangs the consumer retries without committing;
// when it is back every event is applied exactly once.
func TestRedisDownLosesNothing(t *testing.T) {
	e := newEnv(t)
	events := dayEvents(600, 3)
	reg := prometheus.NewRegistry()
	c := e.consumer(t, invkafka.ConsumerOptions{ApplyTimeout: 300 * time.Millisecond, RetryBackoff: 50 * time.Millisecond, Registerer: reg})
	if err := e.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	e.produce(t, events)
	testenv.Eventually(t, "the consumer retrying while Redis hangs", 30*time.Second, func() bool {
		return kafkatest.Metric(t, reg, "jaego_consumer_store_retries_total") >= 2
	})
	if c.Handled() != 0 {
		t.Fatalf("handled %d records while Redis hung", c.Handled())
	}
	if err := e.redis.Resume(); err != nil {
		t.Fatal(err)
	}
	waitHandled(t, int64(len(events)), c)
	kafkatest.CheckTotals(t, e.client, e.store, events)
}

// TestLeavesWhileAMemberIsStuck: a member shut down while another is stuck applying to a
// hung Redis leaves within its session timeout, not the group's rebalance timeout. The
// stuck member holds every partition; the second one's join starts a rebalance that waits
// for the stuck one (here up to ten minutes, a minute by default), and kgo lets a join in
// flight finish before it leaves. Once Redis is back the stuck member applies every event
// exactly once.
func TestLeavesWhileAMemberIsStuck(t *testing.T) {
	e := newEnv(t)
	events := dayEvents(300, 22)
	reg := prometheus.NewRegistry()
	opts := invkafka.ConsumerOptions{ApplyTimeout: 300 * time.Millisecond, RetryBackoff: 50 * time.Millisecond,
		SessionTimeout: time.Second, ClientOpts: []kgo.Opt{kgo.RebalanceTimeout(10 * time.Minute)}, Registerer: reg}
	if err := e.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	stuck := e.consumer(t, opts)
	e.produce(t, events)
	testenv.Eventually(t, "the first member to retry while Redis hangs", 30*time.Second, func() bool {
		return kafkatest.Metric(t, reg, "jaego_consumer_store_retries_total") >= 2
	})
	opts.Registerer = nil
	_, stop := e.stoppableConsumer(t, opts)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	testenv.Eventually(t, "the second member's join to wait for the stuck one", 30*time.Second, func() bool {
		groups, err := adm.DescribeGroups(context.Background(), invkafka.DefaultGroup)
		return err == nil && groups[invkafka.DefaultGroup].State == "PreparingRebalance"
	})
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(60 * time.Second): // the session timeout is 1 s; the rebalance timeout 10 min
		t.Fatal("a member shut down while another was stuck had not left after a minute")
	}
	if err := e.redis.Resume(); err != nil {
		t.Fatal(err)
	}
	waitHandled(t, int64(len(events)), stuck)
	kafkatest.CheckTotals(t, e.client, e.store, events)
}

// TestTwoConsumersShareTheGroup: a second member joins mid-stream and the first leaves;
// the effect is still exact.
func TestTwoConsumersShareTheGroup(t *testing.T) {
	e := newEnv(t)
	events := dayEvents(4000, 4)
	opts := invkafka.ConsumerOptions{SessionTimeout: time.Second, MaxPoll: 100}
	a, stopA := e.stoppableConsumer(t, opts)
	e.produce(t, events[:len(events)/2])
	b := e.consumer(t, opts)
	e.produce(t, events[len(events)/2:])
	waitHandled(t, int64(len(events)), a, b)
	// Both members must have taken part.
	events = produceUntilHandledBy(t, e, b, events, 40, a, b)
	if a.Handled() == 0 {
		t.Fatal("the first member handled nothing")
	}
	kafkatest.CheckTotals(t, e.client, e.store, events)

	// The first member leaves: the survivor takes all its partitions over, and every event
	// produced afterwards is applied, exactly once, by the survivor alone.
	stopA()
	handledByA, handledByB := a.Handled(), b.Handled()
	later := dayEvents(2000, 5)
	e.produce(t, later)
	events = append(events, later...)
	waitHandled(t, handledByB+int64(len(later)), b)
	if a.Handled() != handledByA {
		t.Errorf("the stopped member handled %d more records", a.Handled()-handledByA)
	}
	kafkatest.CheckTotals(t, e.client, e.store, events)
}

// produceUntilHandledBy keeps producing small days (seeds from seed on) until member has been
// given partitions and handled records, and all handled everything; it returns events with
// what it produced.
func produceUntilHandledBy(t *testing.T, e *env, member *invkafka.Consumer, events []inventory.Event, seed int64, all ...*invkafka.Consumer) []inventory.Event {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for ; member.Handled() == 0; seed++ {
		if time.Now().After(deadline) {
			t.Fatal("the member was given no records in 60s")
		}
		more := dayEvents(20, seed)
		e.produce(t, more)
		events = append(events, more...)
		waitHandled(t, int64(len(events)), all...)
	}
	return events
}

// TestLagGaugeFollowsAssignment: when a second member takes partitions over, the first
// stops reporting their lag (a stale gauge would keep a lag alert firing forever).
func TestLagGaugeFollowsAssignment(t *testing.T) {
	e := newEnv(t)
	opts := invkafka.ConsumerOptions{SessionTimeout: time.Second, MaxPoll: 100}
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	opts.Registerer = regA
	a := e.consumer(t, opts)
	events := dayEvents(300, 11)
	e.produce(t, events)
	waitHandled(t, int64(len(events)), a)
	if got := lagPartitions(t, regA); len(got) < 2 {
		t.Fatalf("the first member reports lag for %v; the test needs records on several partitions", got)
	}
	opts.Registerer = regB
	b := e.consumer(t, opts)
	events = produceUntilHandledBy(t, e, b, events, 12, a, b)
	la, lb := lagPartitions(t, regA), lagPartitions(t, regB)
	for p := range lb {
		if la[p] {
			t.Errorf("partition %s: both members report its lag (first %v, second %v)", p, la, lb)
		}
	}
}

// lagPartitions lists the partitions a consumer's registry reports lag for.
func lagPartitions(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "jaego_consumer_lag" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

// TestKcatInterop: Debian's kcat (librdkafka: a client nobody here wrote) produces events;
// jaego applies them.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not found: run scripts/test.sh (it installs kcat) or apt-get install -y kcat")
	}
	e := newEnv(t)
	c := e.consumer(t, invkafka.ConsumerOptions{})
	input := `S001|{"event_id":"kcat-1","type":"receipt","store":"S001","sku":"8809461234567","qty":10}
S001|{"event_id":"kcat-2","type":"sale","store":"S001","sku":"8809461234567","qty":3}
S002|{"event_id":"kcat-3","type":"receipt","store":"S002","sku":"8809461234567","qty":4}
S001|{"event_id":"kcat-2","type":"sale","store":"S001","sku":"8809461234567","qty":3}
`
	cmd := exec.Command(kcat, "-b", e.broker, "-t", topic, "-P", "-K", "|", "-X", "partitioner=murmur2_random")
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	waitHandled(t, 4, c)
	for store, want := range map[string]int64{"S001": 7, "S002": 4} {
		st, err := e.store.Get(context.Background(), store, "8809461234567")
		if err != nil || st.OnHand != want {
			t.Errorf("%s: %+v %v, want on_hand %d", store, st, err, want)
		}
	}
}

// groupLag sums jaego_consumer_group_lag of reg and counts its partitions.
func groupLag(t *testing.T, reg *prometheus.Registry) (sum float64, partitions int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "jaego_consumer_group_lag" {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
				partitions++
			}
		}
	}
	return sum, partitions
}

// TestGroupLag: with Redis dead no member applies or commits anything, and no member
// reports the lag of its own partitions; the group lag is still there, for every
// partition of the topic, summing to every record waiting.
func TestGroupLag(t *testing.T) {
	e := newEnv(t)
	e.redis.Stop()
	reg := prometheus.NewRegistry()
	e.consumer(t, invkafka.ConsumerOptions{Registerer: reg, GroupLagEvery: 50 * time.Millisecond, SessionTimeout: time.Second})
	e.consumer(t, invkafka.ConsumerOptions{GroupLagEvery: 50 * time.Millisecond, SessionTimeout: time.Second})
	events := dayEvents(300, 21)
	e.produce(t, events)
	deadline := time.Now().Add(60 * time.Second)
	for {
		sum, partitions := groupLag(t, reg)
		if sum == float64(len(events)) && partitions == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group lag %v over %d partitions, want %d over 8", sum, partitions, len(events))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if own := lagPartitions(t, reg); len(own) != 0 {
		t.Errorf("a member that applied nothing reports its own lag for %v", own)
	}
}
