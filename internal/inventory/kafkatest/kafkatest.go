// Package kafkatest holds the checks the POS pipeline tests share: exact stock totals and
// exactly one change-feed entry per event after a run, and reading a topic back.
package kafkatest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	"github.com/jaego/jaego/internal/testenv"
)

// CheckTotals asserts that the store holds exactly the effect of events applied once each
// (they must never be refused: sales, returns, cancels, receipts, adjusts): every pair's
// on_hand is the sum of its events, its version their count (so versions were gap-free),
// and the change streams under "jg:chg:" hold exactly one entry per event id.
func CheckTotals(t testing.TB, client rueidis.Client, store inventory.StockStore, events []inventory.Event) {
	t.Helper()
	ids := CheckStock(t, store, events)
	entries := ChangeEntries(t, client)
	dups, missing := 0, 0
	for id := range ids {
		switch entries[id] {
		case 1:
		case 0:
			missing++
		default:
			dups++
		}
		delete(entries, id)
	}
	if dups > 0 || missing > 0 || len(entries) > 0 {
		t.Fatalf("change feed: %d events with more than one entry, %d with none, %d entries of unknown events", dups, missing, len(entries))
	}
}

// CheckStock fails the test unless every store × SKU of events holds the sum of its events
// (each event id counted once) at the version of its event count; it returns the event ids.
func CheckStock(t testing.TB, store inventory.StockStore, events []inventory.Event) map[string]bool {
	t.Helper()
	type tot struct{ onHand, n int64 }
	want := map[inventory.Key]*tot{}
	ids := map[string]bool{}
	for _, e := range events {
		if ids[e.EventID] {
			continue
		}
		ids[e.EventID] = true
		k := inventory.Key{Store: e.Store, SKU: e.SKU}
		if want[k] == nil {
			want[k] = &tot{}
		}
		next, err := inventory.Apply(inventory.Stock{OnHand: want[k].onHand}, e)
		if err != nil {
			t.Fatalf("CheckTotals takes events that are never refused: %s %v", e.Type, err)
		}
		want[k].onHand, want[k].n = next.OnHand, want[k].n+1
	}
	keys := make([]inventory.Key, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	got, err := store.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, k := range keys {
		if !got[i].Found || got[i].Stock.OnHand != want[k].onHand || got[i].Stock.Version != want[k].n {
			if bad++; bad <= 10 {
				t.Errorf("%s/%s: on_hand %d version %d (found %v), want %d after %d events",
					k.Store, k.SKU, got[i].Stock.OnHand, got[i].Stock.Version, got[i].Found, want[k].onHand, want[k].n)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d pairs wrong", bad, len(keys))
	}
	return ids
}

// ChangeEntries counts the change-stream entries per event id over every "jg:chg:" stream.
func ChangeEntries(t testing.TB, client rueidis.Client) map[string]int {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
	for _, node := range client.Nodes() {
		// Masters only: a replica holds the same streams, and a dead node (a killed master
		// whose replica took over) nothing anymore.
		role, err := node.Do(ctx, node.B().Role().Build()).ToArray()
		if err != nil || len(role) == 0 {
			continue
		}
		if r, _ := role[0].ToString(); r != "master" {
			continue
		}
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match("jg:chg:*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range e.Elements {
				start := "-"
				for {
					page, err := node.Do(ctx, node.B().Xrange().Key(key).Start(start).End("+").Count(10000).Build()).AsXRange()
					if err != nil {
						t.Fatal(err)
					}
					for _, en := range page {
						counts[en.FieldValues["event_id"]]++
					}
					if len(page) < 10000 {
						break
					}
					start = "(" + page[len(page)-1].ID
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return counts
}

// ReadAll reads n records of topic from the start, failing after 30 s.
func ReadAll(t testing.TB, broker, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// Metric returns the sum of a metric's series in reg (0 when absent).
func Metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return testenv.Metric(t, reg, name)
}

// Describe is a short description of a record for failure messages.
func Describe(r *kgo.Record) string {
	return fmt.Sprintf("%s[%d]@%d %s", r.Topic, r.Partition, r.Offset, strings.TrimSpace(string(r.Value)))
}

// EndOffsets is the sum of the high watermarks of topic's partitions: how many records it
// holds when nothing was deleted.
func EndOffsets(t testing.TB, broker, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p.Partition, -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("list offsets %s[%d]: error %d", topic, p.Partition, p.ErrorCode)
			}
			n += p.Offset
		}
	}
	return n
}

// Produce sends events to the stock topic through the production producer and waits until
// every one is acknowledged.
func Produce(t testing.TB, broker string, events []inventory.Event) {
	t.Helper()
	p, err := invkafka.NewProducer(invkafka.ProducerOptions{Brokers: []string{broker}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if err := p.Produce(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
