package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/embedded"
	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
)

// runDev is `jaego dev`: the production server on an in-process Redis-protocol server,
// seeded with demo stock before /readyz turns 200. The embedded server listens on a free
// loopback port unless --redis-listen says otherwise, so a real Redis on 6379 never stops it.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, log, err := serverConfig("dev", args, getenv, stderr, func(f *envFlags, cfg *config) {
		f.String(&cfg.RedisListen, "redis-listen", "JAEGO_DEV_REDIS_LISTEN", "127.0.0.1:0", "where the embedded Redis-protocol server listens (for redis-cli)")
		f.String(&cfg.KafkaListen, "kafka-listen", "JAEGO_DEV_KAFKA_LISTEN", "127.0.0.1:0", "where the embedded Kafka-protocol broker listens (for kcat)")
	})
	if err != nil {
		return err
	}

	redisSrv, err := embedded.StartRedis(cfg.RedisListen)
	if err != nil {
		return err
	}
	defer redisSrv.Close()
	client, err := rueidis.NewClient(redisSrv.ClientOption())
	if err != nil {
		return fmt.Errorf("connect to embedded redis: %w", err)
	}
	defer client.Close()

	broker, err := embedded.StartKafka(cfg.KafkaListen, 8, cfg.KafkaTopic, cfg.KafkaTopic+invkafka.DLQSuffix)
	if err != nil {
		return err
	}
	defer broker.Close()

	s, err := newServer(ctx, cfg, client, log)
	if err != nil {
		return err
	}
	if err := s.addConsumer([]string{broker.Addr}); err != nil {
		return err
	}
	if err := seedDemo(ctx, s.stock); err != nil {
		return fmt.Errorf("seed demo data: %w", err)
	}
	s.ready.Store(true)
	api := s.apiURL()
	fmt.Fprintf(stdout, `jaego dev is running (Ctrl-C stops it; nothing is kept)
  redis:  %s   (redis-cli -p %d)
  kafka:  %s   (topic %s; kcat -b %s -t %s -P)
  api:    %s
  try:    curl %s/v1/stores/S001/skus/8809461234567
`, redisSrv.Addr(), redisSrv.Server().Addr().Port, broker.Addr, cfg.KafkaTopic, broker.Addr, cfg.KafkaTopic, api, api)
	log.Info("dev serving", "http", api, "redis", redisSrv.Addr(), "kafka", broker.Addr)
	return s.serve(ctx)
}

// Demo data: three stores and five SKUs of a beauty and health shop.
var (
	demoStores = []string{"S001", "S002", "S003"}
	demoSKUs   = []string{"8809461234567", "8809461234574", "8809461234581", "8801234567890", "8807654321098"}
)

// seedDemo applies the demo stock as ordinary events with fixed ids, so the seed is
// idempotent and shows up in the change feed like any till event.
func seedDemo(ctx context.Context, store inventory.StockStore) error {
	var events []inventory.Event
	for i, st := range demoStores {
		for j, sku := range demoSKUs {
			id := fmt.Sprintf("seed-%s-%s", st, sku)
			events = append(events,
				inventory.Event{EventID: id + "-count", Type: inventory.Set, Store: st, SKU: sku, Qty: int64(5 + 7*i + 3*j), Source: "seed"},
				inventory.Event{EventID: id + "-safety", Type: inventory.SetSafety, Store: st, SKU: sku, Qty: 1, Source: "seed"},
			)
			if j%2 == 0 {
				events = append(events, inventory.Event{EventID: id + "-reserve", Type: inventory.Reserve, Store: st, SKU: sku, Qty: 2, Source: "seed"})
			}
		}
	}
	results, err := store.Apply(ctx, events)
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Status == inventory.Rejected {
			return fmt.Errorf("seed event %s rejected: %w", r.EventID, r.Err)
		}
	}
	return nil
}
