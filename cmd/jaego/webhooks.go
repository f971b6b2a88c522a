package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/webhook"
	whdb "github.com/jaego/jaego/internal/webhook/db"
	whhttp "github.com/jaego/jaego/internal/webhook/http"
	whprom "github.com/jaego/jaego/internal/webhook/prom"
)

// webhooks is the outbound events of design §14: the admin API, and the dispatcher that
// delivers (a worker).
type webhooks struct {
	api *whhttp.API
}

// addWebhooks wires webhooks when the instance has a durable copy (positions and the log
// live in its database) and a webhook key; otherwise their routes say what is missing.
func (s *server) addWebhooks(watcher *invredis.Watcher, dev bool) error {
	switch {
	case s.sql == nil:
		s.webhooks = &webhooks{api: whhttp.Disabled("webhooks need the durable copy's database: start jaego serve with --postgres", s.log)}
		return nil
	case s.cfg.WebhookKeyFile == "":
		s.webhooks = &webhooks{api: whhttp.Disabled("webhooks need a key that seals their signing secrets: start jaego serve with --webhook-key-file", s.log)}
		return nil
	}
	key, err := os.ReadFile(s.cfg.WebhookKeyFile)
	if err != nil {
		return fmt.Errorf("--webhook-key-file: %w", err)
	}
	sealer, err := webhook.NewSealer(key)
	if err != nil {
		return fmt.Errorf("--webhook-key-file %s: %w", s.cfg.WebhookKeyFile, err)
	}
	targets, _ := webhook.ParseAllowNets(s.cfg.WebhookAllowNet) // checked with the configuration
	if dev {
		targets = targets.With(webhook.AllowLoopback())
	}
	// A hub of the deliveries' own: one read of the feed for every subscription of this
	// instance, with no cap of the live tail's.
	hub := inventory.NewHub(s.feed, inventory.HubOptions{MaxStreams: 1 << 20, MaxPerKey: 1 << 20, Changed: watcher.Changed,
		Coalesce: webhookCoalesce, Logger: s.log})
	store := whdb.New(s.sql)
	sender := webhook.NewSender(targets, 0, "jaego-webhooks/"+readBuildInfo().Version)
	o := webhook.Options{Store: store, Feed: s.feed, Hub: hub, Ledger: s.copy, Prior: s.copy, Locker: s.locks, Sealer: sealer, Sender: sender,
		Retention: s.cfg.Retention, RetryMin: s.cfg.WebhookRetryMin, RetryMax: s.cfg.WebhookRetryMax, GiveUp: s.cfg.WebhookGiveUp,
		Observer: whprom.NewDeliveries(s.registry), Logger: s.log, Tracer: s.tracing.Tracer(), Propagator: s.tracing.Propagator()}
	d := webhook.NewDispatcher(o)
	s.webhooks = &webhooks{api: whhttp.New(webhook.NewAdmin(o, targets, d.Kick), store, s.log)}
	s.workers = append(s.workers,
		worker{name: "webhook hub", run: func(ctx context.Context) error { hub.Run(ctx); return nil }},
		worker{name: "webhook delivery", run: func(ctx context.Context) error { d.Run(ctx); return nil }, stop: sender.Close})
	return nil
}

// webhookCoalesce is how long the deliveries' hub lets changes gather before it reads:
// with a hundred subscriptions every read wakes a hundred deliverers, so at 1,000 events/s
// reading at each change cost the shop's lookups half their rate (jaegobench webhooks);
// a message waits up to a second to fill anyway.
const webhookCoalesce = 50 * time.Millisecond

// register adds the webhook routes.
func (w *webhooks) register(mux httpx.Mux) { w.api.Register(mux) }

// devWebhookKey is jaego dev's webhook key: a file in its data directory, made on the first
// run (so secrets made in one run open in the next).
func devWebhookKey(dir string) (string, error) {
	path := filepath.Join(dir, "webhook.key")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return path, os.WriteFile(path, []byte(rand.Text()+rand.Text()+"\n"), 0o600)
}
