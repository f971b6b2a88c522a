package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/inventory"
	invdb "github.com/jaego/jaego/internal/inventory/db"
	invkafka "github.com/jaego/jaego/internal/inventory/kafka"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/lock"
	srcdb "github.com/jaego/jaego/internal/sourcing/db"
	srcredis "github.com/jaego/jaego/internal/sourcing/redis"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/tracing"
)

// runRestore is `jaego restore`: it rebuilds an empty Redis from the durable copy in
// PostgreSQL (design §8) and, with --kafka, moves the consumer group back to the last
// offsets the copy holds (less --replay-margin), so that Kafka events lost with Redis are
// applied again, exactly once.
func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, ro, err := restoreConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)
	tr, stopTracing, err := startTracing(ctx, getenv, "jaego-restore", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	sdb, err := openMigratedSQL(ctx, cfg.PostgresURL)
	if err != nil {
		return err
	}
	defer sdb.Close()
	client, _, err := redisClient(cfg.RedisURL, false, cfg.ShardGroups)
	if err != nil {
		return err
	}
	defer client.Close()
	store := invredis.New(client, invredis.Options{Groups: cfg.ShardGroups, MarkBuckets: cfg.MarkBuckets, Retention: cfg.Retention, RequireEpoch: true})
	start, last := time.Now(), time.Time{}
	ctx, span := tracing.Start(ctx, tr.Tracer(), "restore")
	stage := ""
	ro.Locks = lock.New(client, lock.Options{})
	ro.Progress = func(st string, n int64) {
		if st != stage { // one span event per stage: where a slow restore spends its time
			span.AddEvent("restore "+st, trace.WithAttributes(attribute.Int64("jaego.done", n)))
			stage = st
		}
		if time.Since(last) >= 2*time.Second {
			fmt.Fprintf(stdout, "restore: %d %s (%.0fs)\n", n, st, time.Since(start).Seconds())
			last = time.Now()
		}
	}
	ro.BeforeWhole = func(ctx context.Context, offsets map[int32]inventory.OffsetRange) error {
		if err := restoreDirectory(ctx, sdb, client, store, stdout); err != nil {
			return err
		}
		return rewindConsumers(ctx, cfg, offsets, stdout)
	}
	rep, err := inventory.Restore(ctx, invdb.New(sdb), store, ro)
	span.SetAttributes(attribute.Int64("jaego.records", rep.Records), attribute.Int64("jaego.changes", rep.Changes),
		attribute.Int64("jaego.reservations", rep.Reservations))
	tracing.End(span, err)
	if err != nil {
		log.Error("restore failed", "err", err)
		return fmt.Errorf("restore: %w", err)
	}
	log.Info("restore done", "records", rep.Records, "marks", rep.Marks, "changes", rep.Changes, "reservations", rep.Reservations, "load_marks", rep.LoadMarks,
		"kafka_partitions", len(rep.KafkaOffsets), "took_ms", time.Since(start).Milliseconds())
	fmt.Fprintf(stdout, "restore: done in %s: %d records, %d idempotency marks, %d changes of the feed, %d reservations (%d held), %s, Kafka offsets of %s; Redis accepts writes again\n",
		time.Since(start).Round(time.Millisecond), rep.Records, rep.Marks, rep.Changes, rep.Reservations, rep.Held,
		plural(int(rep.LoadMarks), "load mark"), plural(len(rep.KafkaOffsets), "partition"))
	return nil
}

// restoreConfig reads restore's flags; the replay margin travels in cfg.
func restoreConfig(args []string, getenv func(string) string, stderr io.Writer) (config, inventory.RestoreOptions, error) {
	var cfg config
	var ro inventory.RestoreOptions
	f := newEnvFlags("restore", getenv, stderr)
	f.String(&cfg.RedisURL, "redis", "JAEGO_REDIS_URL", "", "the Redis to rebuild: redis://host:port/db, or host:port,… for a Cluster (required)")
	f.String(&cfg.PostgresURL, "postgres", "JAEGO_POSTGRES_URL", "", "the PostgreSQL that holds the durable copy (required)")
	f.String(&cfg.KafkaBrokers, "kafka", "JAEGO_KAFKA_BROKERS", "", "Kafka brokers: when set, the consumer group is moved back to the copy's offsets")
	kafkaFlags(f, &cfg)
	layoutFlags(f, &cfg)
	f.Duration(&cfg.Retention, "changes-retention", "JAEGO_CHANGES_RETENTION", 48*time.Hour, "the change feed's retention: the ledger's changes of that span go back into the streams")
	f.Int(&cfg.ReplayMargin, "replay-margin", "JAEGO_RESTORE_REPLAY_MARGIN", 4000,
		"records per partition replayed before the copy's last offset (two consumer polls: a poll's events reach the copy in feed order, not offset order)")
	f.Duration(&ro.Window, "idempotency-window", "JAEGO_IDEMPOTENCY_WINDOW", 7*24*time.Hour, "how long applied event ids are remembered")
	f.fs.BoolVar(&ro.Force, "force", false, "write over a whole Redis (one with its epoch marks); an interrupted restore needs no --force")
	logFlags(f, &cfg)
	if err := f.Parse(args); err != nil {
		return cfg, ro, err
	}
	if cfg.PostgresURL == "" || cfg.RedisURL == "" {
		return cfg, ro, errors.New("--redis (JAEGO_REDIS_URL) and --postgres (JAEGO_POSTGRES_URL) are required")
	}
	if cfg.ReplayMargin < 0 {
		return cfg, ro, fmt.Errorf("--replay-margin must be >= 0, got %d", cfg.ReplayMargin)
	}
	ro.Retention = cfg.Retention
	return cfg, ro, nil
}

// restoreDirectory puts the store directory of the copy back in Redis's geo index.
func restoreDirectory(ctx context.Context, sdb *sqldb.DB, client rueidis.Client, store *invredis.Store, stdout io.Writer) error {
	all, err := srcdb.New(sdb).All(ctx)
	if err == nil {
		err = srcredis.New(client, store.Keys(), false, sourcingKeep).PutMany(ctx, all)
	}
	if err != nil {
		return fmt.Errorf("store directory: %w", err)
	}
	fmt.Fprintf(stdout, "restore: store directory of %s put back\n", plural(len(all), "store"))
	return nil
}

// rewindConsumers moves the consumer group (with --kafka) back to where the copy's offsets
// say, less the replay margin, before the restored Redis takes writes.
func rewindConsumers(ctx context.Context, cfg config, offsets map[int32]inventory.OffsetRange, stdout io.Writer) error {
	if cfg.KafkaBrokers == "" {
		return nil
	}
	at := map[int32]int64{}
	for p, o := range offsets {
		at[p] = o.ResumeAt(int64(cfg.ReplayMargin))
	}
	waiting := func(members int) {
		fmt.Fprintf(stdout, "restore: waiting for the %s of group %s to leave it (jaego serve leaves on a loss)\n", plural(members, "member"), cfg.KafkaGroup)
	}
	if err := invkafka.RewindGroup(ctx, splitList(cfg.KafkaBrokers), cfg.KafkaGroup, cfg.KafkaTopic, at, time.Minute, waiting); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restore: consumer group %s moved back on %s of %s\n", cfg.KafkaGroup, plural(len(at), "partition"), cfg.KafkaTopic)
	return nil
}

// plural is "1 partition", "2 partitions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
