package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/httpx"
	invhttp "github.com/jaego/jaego/internal/inventory/http"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
	lockhttp "github.com/jaego/jaego/internal/lock/http"
)

// server is jaego's serving part, wired by hand: the stores, the API and its listener.
type server struct {
	cfg      config
	log      *slog.Logger
	registry *prometheus.Registry
	stock    *invredis.Store
	locks    *lock.Locker
	ready    atomic.Bool // set once startup work (e.g. the dev seed) is done
	http     *http.Server
	listener net.Listener
}

// newServer wires the serving part on client.
func newServer(ctx context.Context, cfg config, client rueidis.Client, log *slog.Logger) (*server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &server{cfg: cfg, log: log, registry: reg}
	s.stock = invredis.New(client, invredis.Options{
		Groups:     cfg.ShardGroups,
		Retention:  cfg.Retention,
		Registerer: reg,
		Logger:     log,
	})
	sharded := shardedPubSub(ctx, client)
	log.Debug("lock pub/sub", "sharded", sharded)
	s.locks = lock.New(client, lock.Options{ClassicPubSub: !sharded, Registerer: reg, Logger: log})
	l, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http listen on %s: %w", cfg.HTTPAddr, err)
	}
	s.listener = l
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
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
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", healthz())
	mux.Handle("GET /readyz", s.readyz())
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	invhttp.New(s.stock, invhttp.Options{Timeout: s.cfg.RequestTimeout, Logger: s.log}).Register(mux)
	lockhttp.New(s.locks, s.log).Register(mux)
	return httpx.Instrument(mux, s.registry, s.log)
}

// apiURL is where the API answers.
func (s *server) apiURL() string { return "http://" + s.listener.Addr().String() }

func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// readyz answers 200 only when startup is done and Redis answers within a second.
func (s *server) readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			httpx.WriteProblem(w, httpx.Problem{Status: http.StatusServiceUnavailable, Code: "starting", Detail: "jaego is still starting"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := s.stock.Ping(ctx); err != nil {
			httpx.WriteProblem(w, httpx.Problem{Status: http.StatusServiceUnavailable, Code: "store_unavailable", Detail: err.Error()})
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// serve answers HTTP until ctx ends, then drains in-flight requests for up to 10 s.
func (s *server) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	f := newEnvFlags("serve", getenv, stderr)
	commonFlags(f, &cfg)
	f.String(&cfg.RedisURL, "redis", "JAEGO_REDIS_URL", "", "Redis: redis://host:port/db, or host:port,host:port,… for a Cluster")
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	log := cfg.logger(stderr)
	opt, err := redisOption(cfg.RedisURL)
	if err != nil {
		return err
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return fmt.Errorf("connect to redis %s: %w", cfg.RedisURL, err)
	}
	defer client.Close()
	s, err := newServer(ctx, cfg, client, log)
	if err != nil {
		return err
	}
	s.ready.Store(true)
	fmt.Fprintf(stdout, "jaego serve\n  redis:  %s\n  api:    %s\n", cfg.RedisURL, s.apiURL())
	log.Info("serving", "http", s.apiURL(), "redis", cfg.RedisURL, "groups", cfg.ShardGroups)
	return s.serve(ctx)
}
