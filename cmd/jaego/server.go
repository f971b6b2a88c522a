package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/api"
	"github.com/jaego/jaego/internal/auth"
	"github.com/jaego/jaego/internal/console"
	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	"github.com/jaego/jaego/internal/inventory/breaker"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	invprom "github.com/jaego/jaego/internal/inventory/prom"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/lock"
	lockhttp "github.com/jaego/jaego/internal/lock/http"
	promodb "github.com/jaego/jaego/internal/promo/db"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/tracing"
)

// server is jaego's serving part, wired by hand: the stores, the API and its listener.
type server struct {
	cfg      config
	log      *slog.Logger
	registry *prometheus.Registry
	stock    *invredis.Store // Redis itself: for startup work and the projector
	guarded  *breaker.Store  // Redis through the breaker: for every request path
	copy     *invdb.Copy     // nil: no durable copy (serve without --postgres)
	sql      *sqldb.DB       // the copy's database, nil with it
	feed     *invredis.Feed
	hub      *inventory.Hub
	locks    *lock.Locker
	promo    *promotions // nil: gift promotions are off
	sourcing *stores     // the store directory and sourcing
	webhooks *webhooks   // outbound events (their routes answer webhooks_disabled without a copy or key)
	// reservations are the store orders behind the breaker, for the API and sourcing.
	reservations *breaker.Reservations
	guard        *auth.Guard      // access control; open with --auth none
	ready        *httpx.Readiness // /readyz; Started once startup work (e.g. the dev seed) is done
	http         *http.Server
	listener     net.Listener
	workers      []worker         // run beside the HTTP server, e.g. the Kafka consumer
	patterns     []string         // every route pattern routes() registered
	tracing      *tracing.Tracing // nil: tracing off
}

// worker is a long-running part of the server; it returns nil when ctx ends.
type worker struct {
	name string
	run  func(ctx context.Context) error
	stop func() // after run returned
}

// newServer wires the serving part on client, with the durable copy in sdb when it is not
// nil (its schema checked): a list of steps, each a named function.
func newServer(ctx context.Context, cfg config, client rueidis.Client, sdb *sqldb.DB, tr *tracing.Tracing, log *slog.Logger) (*server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	tr.Register(reg)
	s := &server{cfg: cfg, log: log, registry: reg, sql: sdb, tracing: tr}
	if err := s.addAccessControl(); err != nil {
		return nil, err
	}
	s.addStock(client)
	watcher := s.addLiveTail()
	sharded := shardedPubSub(ctx, client)
	log.Debug("lock pub/sub", "sharded", sharded)
	s.locks = lock.New(client, lock.Options{ClassicPubSub: !sharded, WatchdogTimeout: cfg.LockWatchdog, Registerer: reg, Logger: log})
	if err := s.addCopy(ctx, watcher); err != nil {
		return nil, err
	}
	if err := s.addWebhooks(watcher, cfg.Dev); err != nil {
		return nil, err
	}
	s.addBreaker()
	s.reservations = breaker.NewReservations(s.stock, s.guarded.Breaker())
	s.addSourcing(client)
	s.addReadiness()
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// addAccessControl loads the keys file (none with --auth none) and reloads it on SIGHUP.
func (s *server) addAccessControl() error {
	keysFile := s.cfg.APIKeys
	if s.cfg.Auth == "none" {
		keysFile = ""
	}
	guard, err := auth.NewGuard(keysFile)
	if err != nil {
		return err
	}
	s.guard = guard
	limit, _ := auth.ParseLimit(s.cfg.RateLimit) // checked with the configuration
	guard.SetDefaultLimit(limit)
	if guard.Open() {
		s.log.Warn("access control is off (--auth none): every route answers anyone who can reach this address")
		return nil
	}
	keys := promauto.With(s.registry).NewGauge(prometheus.GaugeOpts{Name: "jaego_auth_keys", Help: "API keys loaded from the keys file."})
	keys.Set(float64(guard.Keys()))
	reload := guard.ReloadOnHangup(s.log, func(n int) { keys.Set(float64(n)) })
	s.workers = append(s.workers, worker{name: "keys reload", run: func(ctx context.Context) error {
		reload(ctx)
		return nil
	}})
	return nil
}

// addStock makes the Redis stock store and its change feed, and sweeps reservation
// expiries (every instance: the expire step is atomic, so a reservation expires once).
func (s *server) addStock(client rueidis.Client) {
	s.stock = invredis.New(client, invredis.Options{
		Groups:           s.cfg.ShardGroups,
		MarkBuckets:      s.cfg.MarkBuckets,
		Retention:        s.cfg.Retention,
		MaxHoldsPerStore: s.cfg.MaxHolds,
		AckReplicas:      s.cfg.WriteAck == "replicas",
		RequireEpoch:     s.sql != nil, // with a durable copy, an emptied Redis waits for a restore
		Registerer:       s.registry,
		Logger:           s.log,
		Tracer:           s.tracing.Tracer(),
	})
	s.feed = invredis.NewFeed(s.stock, invredis.FeedOptions{Registerer: s.registry})
	s.workers = append(s.workers, worker{name: "reservation expiry", run: func(ctx context.Context) error {
		s.stock.RunExpiry(ctx, 200*time.Millisecond)
		return nil
	}})
}

// addLiveTail starts the process's one Watcher of the feed (G blocking reads, shared by
// everything that waits for new changes) and the live tail's hub on it.
func (s *server) addLiveTail() *invredis.Watcher {
	watcher := invredis.NewWatcher(s.feed)
	s.hub = inventory.NewHub(s.feed, inventory.HubOptions{MaxStreams: s.cfg.MaxStreams, MaxPerKey: s.cfg.MaxStreamsKey,
		Changed: watcher.Changed, Observer: invprom.NewHub(s.registry), Logger: s.log})
	s.workers = append(s.workers,
		worker{name: "live tail", run: func(ctx context.Context) error { s.hub.Run(ctx); return nil }},
		worker{name: "live tail watcher", run: func(ctx context.Context) error { watcher.Run(ctx); return nil }})
	return watcher
}

// addCopy, with a SQL store, bootstraps the durable copy's projector before traffic and
// runs it, with the guard that notices a Redis that lost its data.
func (s *server) addCopy(ctx context.Context, watcher *invredis.Watcher) error {
	if s.sql == nil {
		return nil
	}
	if err := s.sql.CheckSchema(ctx); err != nil {
		return err
	}
	s.copy = invdb.New(s.sql)
	// A copy that never projected belongs to a new deployment: its Redis is whole by
	// definition. Otherwise a missing epoch mark means Redis lost its data.
	if pos, err := s.copy.Position(ctx); err != nil {
		return err
	} else if pos.Cursor == "" && pos.Changes == 0 {
		if err := s.stock.MarkEpoch(ctx, true); err != nil {
			return err
		}
	}
	p := inventory.NewProjector(inventory.ProjectorOptions{Feed: s.feed, Changed: watcher.Changed, Snapshots: s.stock, Copy: s.copy,
		Locker: s.locks, LedgerRetention: s.cfg.LedgerRetention, Lost: s.stock.Lost, Logger: s.log, Observer: invprom.NewProjector(s.registry),
		Tracer: s.tracing.Tracer()})
	if err := p.Start(ctx); err != nil {
		return fmt.Errorf("durable copy: %w", err)
	}
	s.workers = append(s.workers, worker{name: "stock projector", run: func(ctx context.Context) error { p.Run(ctx); return nil }})
	return nil
}

// addBreaker puts the breaker around the stock store (the copy its fallback, when there is
// one), with its probe and, with a copy, the loss guard.
func (s *server) addBreaker() {
	bo := s.cfg.Breaker
	bo.FailureRate, bo.SlowRate, bo.Registerer, bo.Logger = bo.FailureRate/100, bo.SlowRate/100, s.registry, s.log
	var fallback breaker.Copy
	if s.copy != nil {
		fallback = s.copy
	}
	s.guarded = breaker.NewStore(s.stock, fallback, breaker.New(bo), s.registry)
	s.workers = append(s.workers, worker{name: "breaker probe", run: func(ctx context.Context) error {
		// Ten pings a second while not closed: half-open closes within 3 s (30 trials) of an
		// auto or a recovery with no traffic; open ends early after 3 answered pings.
		s.guarded.Breaker().Probe(ctx, s.stock.Ping, 100*time.Millisecond)
		return nil
	}})
	if s.copy != nil {
		s.workers = append(s.workers, worker{name: "redis loss guard", run: func(ctx context.Context) error {
			breaker.GuardLoss(ctx, s.guarded.Breaker(), s.stock.Lost, time.Second, s.log)
			return nil
		}})
	}
}

// listen takes the HTTP address; the http.Server's Handler is set by serve, once every
// part is added.
func (s *server) listen() error {
	l, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen on %s: %w", s.cfg.HTTPAddr, err)
	}
	s.listener = l
	s.http = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// shardedPubSub reports whether the server knows SPUBLISH (Redis 7+; not the embedded
// server of jaego dev). Locks use sharded pub/sub where they can: on a Cluster a classic
// PUBLISH is broadcast to every node, a sharded one only to the lock's own slot.
func shardedPubSub(ctx context.Context, client rueidis.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := client.Do(ctx, client.B().CommandInfo().CommandName("spublish").Build()).ToArray()
	return err == nil && len(info) == 1 && !info[0].IsNil()
}

// routes is the one list of everything jaego serves over HTTP.
func (s *server) routes() http.Handler {
	mux := &httpx.Routes{ServeMux: http.NewServeMux()}
	mux.Handle("GET /openapi.json", api.Handler())
	mux.Handle("GET /console/", console.Handler()) // the web console (design §13): its pages ask for a key
	mux.Handle("GET /healthz", healthz())
	mux.Handle("GET /readyz", s.ready)
	mux.Handle("GET /metrics", metricsHandler(s.registry))
	opts := invhttp.Options{Timeout: s.cfg.RequestTimeout, Logger: s.log, Feed: s.feed, Tail: s.hub, Snapshots: s.stock, Breaker: s.guarded.Breaker(),
		Reservations: s.reservations}
	if s.copy != nil {
		opts.History, opts.Copy = s.copy, s.copy
	}
	invhttp.New(s.guarded, opts).Register(mux)
	lockhttp.New(s.locks, s.log).Register(mux)
	s.registerPromotions(mux)
	s.registerSourcing(mux)
	s.webhooks.register(mux)
	s.patterns = mux.Patterns
	o := httpx.Options{AccessLog: s.cfg.AccessLog, Tracing: s.tracing}
	if !s.guard.Open() {
		o.Authorize, o.Limit = s.guard.Authorize, s.guard.Limit
	}
	return httpx.Instrument(mux.ServeMux, s.registry, s.log, o)
}

// apiURL is where the API answers.
func (s *server) apiURL() string { return "http://" + s.listener.Addr().String() }

// metricsHandler serves reg at /metrics: the Prometheus text format, or OpenMetrics (with
// the exemplars that carry trace ids) to a scraper that asks for it.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// addReadiness makes /readyz: Redis, with the durable copy as its fallback (an instance
// with the copy stays ready with Redis down: it serves reads from the copy and refuses
// writes fast, which is better than no answer at all); the promotions add their database.
func (s *server) addReadiness() {
	stock := httpx.Dependency{Name: "Redis", Ping: s.stock.Ping,
		Down: jaego.Errorf(jaego.CodeUnavailable, "the stock store (Redis) does not answer")}
	if s.sql != nil {
		stock.Fallback, stock.Degraded = s.sql.PingContext, map[string]string{"redis": "down", "reads": "fallback"}
	}
	s.ready = httpx.NewReadiness(s.log, stock)
}

// serve answers HTTP and runs the workers until ctx ends or one of them fails, then drains
// in-flight requests for up to 10 s.
func (s *server) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Go(func() {
			if err := w.run(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", w.name, err))
			}
			if w.stop != nil {
				w.stop()
			}
		})
	}
	defer wg.Wait()
	s.http.Handler = s.routes()
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	select {
	case err := <-errc:
		cancel(nil)
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	failure := context.Cause(ctx)
	if errors.Is(failure, context.Canceled) {
		failure = nil
	}
	s.log.Info("shutting down", "cause", failure)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShutdown()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return failure
}

// addConsumer runs the POS event consumer on brokers as a worker.
func (s *server) addConsumer(brokers []string) error {
	opts := invkafka.ConsumerOptions{
		Brokers: brokers, Topic: s.cfg.KafkaTopic, Group: s.cfg.KafkaGroup, SessionTimeout: s.cfg.KafkaSession,
		Registerer: s.registry, Logger: s.log, Tracing: s.tracing,
	}
	if s.copy != nil {
		opts.WaitWhole, opts.Loss = s.guarded.Breaker().WaitWhole, s.guarded.Breaker().Loss
	}
	c, err := invkafka.NewConsumer(s.guarded, opts)
	if err != nil {
		return err
	}
	s.workers = append(s.workers, worker{name: "kafka consumer", run: c.Run, stop: c.Close})
	return nil
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, log, err := serverConfig("serve", args, getenv, stderr, func(f *envFlags, cfg *config) {
		f.String(&cfg.RedisURL, "redis", "JAEGO_REDIS_URL", "", "Redis: redis://host:port/db, or host:port,host:port,… for a Cluster")
		f.String(&cfg.KafkaBrokers, "kafka", "JAEGO_KAFKA_BROKERS", "", "Kafka brokers host:port,…; when set, the POS event consumer runs")
		f.String(&cfg.PostgresURL, "postgres", "JAEGO_POSTGRES_URL", "", "PostgreSQL of the gift promotions and the durable stock copy, postgres://user@host:port/db; without it both are off")
	})
	if err == nil {
		err = cfg.authMode("keys") // serve is closed unless told otherwise
	}
	if err != nil {
		return err
	}
	tr, stopTracing, err := startTracing(ctx, getenv, "jaego", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	client, budget, err := redisClient(cfg.RedisURL, cfg.PromoPointerTTL > 0, cfg.ShardGroups)
	if err != nil {
		return err
	}
	defer client.Close()
	var sdb *sqldb.DB
	if cfg.PostgresURL != "" {
		if sdb, err = openSQL(ctx, cfg.PostgresURL); err != nil {
			return err
		}
		defer sdb.Close()
	}
	s, err := newServer(ctx, cfg, client, sdb, tr, log)
	if err != nil {
		return err
	}
	s.registry.MustRegister(budget)
	if cfg.KafkaBrokers != "" {
		if err := s.addConsumer(splitList(cfg.KafkaBrokers)); err != nil {
			return err
		}
	}
	if sdb != nil {
		if err := s.addPromotions(ctx, promodb.New(sdb), client); err != nil {
			return err
		}
	}
	s.syncDirectory(ctx)
	s.ready.Started()
	fmt.Fprintf(stdout, "jaego serve (%s)\n  redis:     %s\n  kafka:     %s\n  postgres:  %s\n  api:       %s\n  auth:      %s\n",
		readBuildInfo().Version, jaego.RedactURL(cfg.RedisURL), orNone(cfg.KafkaBrokers), orNone(jaego.RedactURL(cfg.PostgresURL)), s.apiURL(), authLine(cfg))
	log.Info("serving", "version", readBuildInfo().Version, "http", s.apiURL(), "redis", jaego.RedactURL(cfg.RedisURL), "kafka", cfg.KafkaBrokers, "groups", cfg.ShardGroups)
	return s.serve(ctx)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
