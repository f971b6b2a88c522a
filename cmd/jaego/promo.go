package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/lock"
	"github.com/jaego/jaego/internal/promo"
	promodb "github.com/jaego/jaego/internal/promo/db"
	promohttp "github.com/jaego/jaego/internal/promo/http"
	promoprom "github.com/jaego/jaego/internal/promo/prom"
	promoredis "github.com/jaego/jaego/internal/promo/redis"
	"github.com/jaego/jaego/internal/sqldb"
)

// promotions is the gift-promotion part of a server: the SQL store, the versioned cache
// and its rebuilder.
type promotions struct {
	db        *promodb.DB
	cache     *promoredis.Cache
	rebuilder *promo.Rebuilder
}

// addPromotions serves gift promotions from db: it builds today's version now when the
// one served is not for today, and runs the daily batch as a worker.
func (s *server) addPromotions(ctx context.Context, db *promodb.DB, client rueidis.Client) error {
	if err := db.CheckSchema(ctx); err != nil {
		return err
	}
	loc, err := s.cfg.location()
	if err != nil {
		return err
	}
	cache := promoredis.New(client, promoredis.Options{PointerTTL: s.cfg.PromoPointerTTL, LocalTTL: s.cfg.PromoLocalTTL,
		LocalMax: s.cfg.PromoLocalMax, Registerer: s.registry, Logger: s.log})
	rb := promo.NewRebuilder(promo.RebuilderOptions{Source: db, Publisher: cache, Locker: s.locks, Location: loc,
		Rebuilt: promoprom.Rebuilds(s.registry), Logger: s.log})
	s.promo = &promotions{db: db, cache: cache, rebuilder: rb}
	s.ready.Add(httpx.Dependency{Name: "the promotions database", Ping: db.PingContext,
		Down: jaego.Errorf(jaego.CodePromotionsDBDown, "the promotions database does not answer")})
	if cat, err := cache.Current(ctx); err != nil || cat.Day != rb.Day() {
		if _, err := rb.Rebuild(ctx, "startup"); err != nil {
			s.log.Warn("promotion cache not built at startup; the daily batch retries", "err", err)
		}
	}
	s.workers = append(s.workers, worker{name: "promotion rebuilder", run: func(ctx context.Context) error {
		rb.Run(ctx)
		return nil
	}})
	return nil
}

// registerPromotions adds the promotion routes, or, without a promotion store, answers
// them with a problem that says how to turn them on.
func (s *server) registerPromotions(mux httpx.Mux) {
	if s.promo == nil {
		promohttp.Disabled("gift promotions are off: start jaego serve with --postgres (JAEGO_POSTGRES_URL)").Register(mux)
		return
	}
	promohttp.New(s.promo.db, s.promo.cache, s.promo.rebuilder, promohttp.Options{Timeout: s.cfg.RequestTimeout, Logger: s.log, Stock: s.giftStock}).Register(mux)
}

// runMigrate is `jaego migrate`: it applies the SQL migrations to --postgres.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	f := newEnvFlags("migrate", getenv, stderr)
	f.String(&cfg.PostgresURL, "postgres", "JAEGO_POSTGRES_URL", "", "PostgreSQL: postgres://user@host:port/db (or sqlite:PATH)")
	logFlags(f, &cfg)
	if err := f.Parse(args); err != nil {
		return err
	}
	db, err := openSQL(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.Migrate(ctx, cfg.logger(stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema at version %d\n", v)
	return nil
}

// openMigratedSQL opens jaego's SQL database and refuses one whose schema is behind this
// binary (run `jaego migrate`).
func openMigratedSQL(ctx context.Context, url string) (*sqldb.DB, error) {
	db, err := openSQL(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openSQL opens jaego's SQL database (PostgreSQL; sqlite:PATH for tests and dev).
func openSQL(ctx context.Context, url string) (*sqldb.DB, error) {
	if url == "" {
		return nil, errors.New("--postgres (JAEGO_POSTGRES_URL) is required, e.g. postgres://jaego@127.0.0.1:5432/jaego")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// runPromo is `jaego promo rebuild`: one rebuild of the promotion cache, by hand.
func runPromo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rebuild" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			args = []string{"rebuild", "-h"}
		} else {
			return errors.New("usage: jaego promo rebuild --redis URL --postgres URL [--promo-tz ZONE]; see jaego promo -h")
		}
	}
	var cfg config
	f := newEnvFlags("promo rebuild", getenv, stderr)
	f.String(&cfg.RedisURL, "redis", "JAEGO_REDIS_URL", "", "Redis: redis://host:port/db, or host:port,… for a Cluster")
	f.String(&cfg.PostgresURL, "postgres", "JAEGO_POSTGRES_URL", "", "PostgreSQL: postgres://user@host:port/db")
	f.String(&cfg.PromoTZ, "promo-tz", "JAEGO_PROMO_TZ", "UTC", "time zone of the day the version is built for")
	logFlags(f, &cfg)
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	loc, err := cfg.location()
	if err != nil {
		return err
	}
	client, _, err := redisClient(cfg.RedisURL, false, cfg.ShardGroups)
	if err != nil {
		return err
	}
	defer client.Close()
	sdb, err := openMigratedSQL(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer sdb.Close()
	db := promodb.New(sdb)
	locks := lock.New(client, lock.Options{ClassicPubSub: !shardedPubSub(ctx, client)})
	log := cfg.logger(stderr)
	rb := promo.NewRebuilder(promo.RebuilderOptions{Source: db, Publisher: promoredis.New(client, promoredis.Options{Logger: log}),
		Locker: locks, Location: loc, Logger: log})
	v, err := rb.Rebuild(ctx, "manual")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "promotion cache version %d published\n", v)
	return nil
}

// giftStock is the available stock of gift SKUs at a store, for stock-aware gifts: through
// the breaker (the copy answers while Redis is down).
func (s *server) giftStock(ctx context.Context, store string, skus []string) (map[string]int64, error) {
	return inventory.AvailableAt(ctx, s.guarded, store, skus)
}
