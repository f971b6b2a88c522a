package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/demo"
	"github.com/jaego/jaego/internal/embedded"
	"github.com/jaego/jaego/internal/inventory"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	promodb "github.com/jaego/jaego/internal/promo/db"
	"github.com/jaego/jaego/internal/sqldb"
)

// runDev is `jaego dev`: the production server on an in-process Redis-protocol server,
// seeded with demo stock before /readyz turns 200. The embedded server listens on a free
// loopback port unless --redis-listen says otherwise, so a real Redis on 6379 never stops it.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, log, err := devConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	tr, stopTracing, err := startTracing(ctx, getenv, "jaego", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	kept := "promotions and stock (through the durable copy) are kept in " + cfg.DataDir
	if cfg.DataDir == "" {
		kept = "nothing is kept"
		dir, err := os.MkdirTemp("", "jaego-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	sqlURL, sdb, db, err := devSQL(ctx, cfg.DataDir)
	if err == nil && cfg.WebhookKeyFile == "" {
		cfg.WebhookKeyFile, err = devWebhookKey(cfg.DataDir)
	}
	if err != nil {
		return err
	}
	defer db.Close()
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
	s, err := newServer(ctx, cfg, client, sdb, tr, log)
	if err != nil {
		return err
	}
	if err := s.addConsumer([]string{broker.Addr}); err != nil {
		return err
	}
	if err := s.devStock(ctx, cfg); err != nil {
		return err
	}
	if n := s.syncDirectory(ctx); n == 0 { // a first run: the demo stores
		if err := demo.PutDirectory(ctx, s.sourcing.directory); err != nil {
			return err
		}
	}
	if err := s.addPromotions(ctx, db, client); err != nil {
		return err
	}
	s.ready.Started()
	devBanner(stdout, s.apiURL(), kept, sqlURL, redisSrv, broker.Addr, cfg)
	log.Info("dev serving", "http", s.apiURL(), "redis", redisSrv.Addr(), "kafka", broker.Addr)
	return s.serve(ctx)
}

// devBanner prints every address jaego dev uses, and what to try first.
func devBanner(stdout io.Writer, api, kept, sqlURL string, redisSrv *embedded.Redis, brokerAddr string, cfg config) {
	fmt.Fprintf(stdout, `jaego dev %s is running (Ctrl-C stops it; %s)
  redis:  %s   (redis-cli -p %d)
  kafka:  %s   (topic %s; kcat -b %s -t %s -P)
  sql:    %s
  try:    curl %s/v1/stores/S001/skus/8809461234567
          curl %s/v1/products/8809461234567/gifts
          curl '%s/v1/stores?near=37.5663,126.9779'
  api:    %s
  console: %s/console/
  auth:   %s
`, readBuildInfo().Version, kept, redisSrv.Addr(), redisSrv.Server().Addr().Port, brokerAddr, cfg.KafkaTopic, brokerAddr, cfg.KafkaTopic, sqlURL, api, api, api, api, api, authLine(cfg))
}

// devConfig reads dev's flags: the server's, where its embedded servers listen, --data.
func devConfig(args []string, getenv func(string) string, stderr io.Writer) (config, *slog.Logger, error) {
	cfg, log, err := serverConfig("dev", args, getenv, stderr, func(f *envFlags, cfg *config) {
		f.String(&cfg.RedisListen, "redis-listen", "JAEGO_DEV_REDIS_LISTEN", "127.0.0.1:0", "where the embedded Redis-protocol server listens (for redis-cli)")
		f.String(&cfg.KafkaListen, "kafka-listen", "JAEGO_DEV_KAFKA_LISTEN", "127.0.0.1:0", "where the embedded Kafka-protocol broker listens (for kcat)")
		f.String(&cfg.DataDir, "data", "JAEGO_DEV_DATA", "", "directory of the embedded SQL store of the promotions (kept across runs); default: a temporary one")
	})
	if err != nil {
		return cfg, nil, err
	}
	if err := cfg.authMode("none"); err != nil { // dev is open unless given keys
		return cfg, nil, err
	}
	cfg.Dev = true
	if cfg.PromoPointerTTL > 0 {
		return cfg, nil, errors.New("--promo-pointer-cache needs RESP3 client tracking, which the embedded Redis of jaego dev lacks: use jaego serve")
	}
	return cfg, log, nil
}

// devSQL opens (and migrates) the SQLite store in dir: the promotions, seeded with the demo
// ones, and the durable stock copy.
func devSQL(ctx context.Context, dir string) (string, *sqldb.DB, *promodb.DB, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, nil, fmt.Errorf("--data: %w", err)
	}
	sqlURL := "sqlite:" + filepath.Join(dir, "jaego.db")
	sdb, err := sqldb.Open(ctx, sqlURL)
	if err != nil {
		return "", nil, nil, err
	}
	db := promodb.New(sdb)
	if _, err := db.Migrate(ctx, nil); err != nil {
		db.Close()
		return "", nil, nil, err
	}
	if err := demo.Promotions(ctx, db, time.Now()); err != nil {
		db.Close()
		return "", nil, nil, fmt.Errorf("seed demo promotions: %w", err)
	}
	return sqlURL, sdb, db, nil
}

// devStock puts the stock in the embedded Redis, which starts empty every time: with --data
// the copy kept the stock of the last run, put back (idempotency marks included) before
// anything is written; a first run gets the demo stock.
func (s *server) devStock(ctx context.Context, cfg config) error {
	lost, err := s.stock.Lost(ctx)
	if err != nil {
		return err
	}
	if !lost {
		if err := demo.Stock(ctx, s.stock); err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
		return nil
	}
	rep, err := inventory.Restore(ctx, s.copy, s.stock, inventory.RestoreOptions{Locks: s.locks, Retention: cfg.Retention})
	if err != nil {
		return fmt.Errorf("restoring the stock kept in %s: %w", cfg.DataDir, err)
	}
	s.log.Info("dev: stock restored from the durable copy", "records", rep.Records, "marks", rep.Marks)
	return nil
}

// authLine says in the banner who may call the API.
func authLine(cfg config) string {
	if cfg.Auth == "none" {
		return "none: every route answers anyone who can reach it (--api-keys FILE to require keys)"
	}
	return "API keys of " + cfg.APIKeys + " (Authorization: Bearer <key>)"
}
