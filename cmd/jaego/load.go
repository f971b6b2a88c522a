package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jaego/jaego/internal/inventory/load"
	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/tracing"
)

// runLoad is `jaego load FILE|-`: it checks a whole stock snapshot (CSV store,sku,on_hand[,safety]),
// reporting every bad line with its number and applying nothing if there is one, then loads
// it as set rows through the apply script, with progress (design §1, docs/operations.md).
func runLoad(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, batch, name, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)
	tr, stopTracing, err := startTracing(ctx, getenv, "jaego-load", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	src, name, closeSrc, err := openSnapshot(name, stdin)
	if err != nil {
		return err
	}
	defer closeSrc()
	// The first pass checks every line; the second loads.
	sum, err := load.Check(src, func(e load.LineError) { fmt.Fprintf(stderr, "%s:%d: %v\n", name, e.Line, e.Err) })
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if sum.Bad > 0 {
		return fmt.Errorf("%s: %d bad lines (each printed above with its number); nothing was loaded", name, sum.Bad)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	client, _, err := redisClient(cfg.RedisURL, false, cfg.ShardGroups)
	if err != nil {
		return err
	}
	defer client.Close()
	store, err := loadTarget(ctx, client, cfg, tr.Tracer())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "load: %s: %d rows checked, loading as %s\n", name, sum.Rows, sum.ID)
	bar := newProgress(stderr, sum.Rows)
	ctx, span := tracing.Start(ctx, tr.Tracer(), "load", trace.WithAttributes(
		attribute.String("jaego.file", name), attribute.String("jaego.load_id", sum.ID), attribute.Int64("jaego.rows", sum.Rows)))
	rep, err := load.Run(ctx, store, sum.ID, src, load.Options{Batch: batch, Progress: bar.show, Every: bar.every})
	bar.done()
	tracing.End(span, err)
	if err != nil {
		log.Error("load failed", "file", name, "load_id", sum.ID, "rows", rep.Rows, "err", err)
		return fmt.Errorf("load %s stopped after %d rows (running it again goes on from there): %w", name, rep.Rows, err)
	}
	log.Info("load done", "file", name, "load_id", sum.ID, "rows", rep.Rows, "applied", rep.Applied,
		"unchanged", rep.Unchanged, "duplicate", rep.Duplicate, "took_ms", rep.Took.Milliseconds())
	fmt.Fprintf(stdout, "load: done in %s: %d rows, %d changed, %d already so, %d loaded before by this file (%.0f rows/s)\n",
		rep.Took.Round(time.Millisecond), rep.Rows, rep.Applied, rep.Unchanged, rep.Duplicate, float64(rep.Rows)/rep.Took.Seconds())
	return nil
}

// loadConfig reads load's flags: the Redis, the layout, the batch, the write ack, and the
// file to load.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, int, string, error) {
	var cfg config
	var batch int
	f := newEnvFlags("load", getenv, stderr)
	f.args = 1
	f.String(&cfg.RedisURL, "redis", "JAEGO_REDIS_URL", "", "the Redis to load into: redis://host:port/db, or host:port,… for a Cluster (required)")
	layoutFlags(f, &cfg)
	f.Duration(&cfg.Retention, "changes-retention", "JAEGO_CHANGES_RETENTION", 48*time.Hour, "how long a day's change stream is kept")
	f.Int(&batch, "batch", "JAEGO_LOAD_BATCH", 4096, "rows per pipelined batch (one script call per shard group)")
	f.String(&cfg.WriteAck, "write-ack", "JAEGO_WRITE_ACK", "leader", "leader, or replicas: a batch counts as loaded once a replica confirmed it")
	logFlags(f, &cfg)
	if err := f.Parse(args); err != nil {
		return cfg, 0, "", err
	}
	switch {
	case cfg.RedisURL == "" || f.fs.NArg() != 1:
		return cfg, 0, "", errors.New("usage: jaego load --redis URL FILE (or - for stdin); see jaego load -h")
	case batch < 1:
		return cfg, 0, "", fmt.Errorf("--batch must be >= 1, got %d", batch)
	case cfg.WriteAck != "leader" && cfg.WriteAck != "replicas":
		return cfg, 0, "", fmt.Errorf("--write-ack must be leader or replicas, got %q", cfg.WriteAck)
	}
	return cfg, batch, f.fs.Arg(0), nil
}

// openSnapshot opens the file to load, or keeps stdin ("-") in a temporary file so that it
// can be read twice; close removes what it made.
func openSnapshot(name string, stdin io.Reader) (*os.File, string, func(), error) {
	if name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return nil, "", nil, err
		}
		return file, name, func() { file.Close() }, nil
	}
	tmp, err := os.CreateTemp("", "jaego-load-*.csv")
	if err != nil {
		return nil, "", nil, err
	}
	closeTmp := func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, stdin); err != nil {
		closeTmp()
		return nil, "", nil, fmt.Errorf("read stdin: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		closeTmp()
		return nil, "", nil, err
	}
	return tmp, "stdin", closeTmp, nil
}

// loadTarget is the store a load writes into: one that requires the epoch marks in a
// deployment with a durable copy (a Redis that lost its data is restored before anything is
// written into it, a load too).
func loadTarget(ctx context.Context, client rueidis.Client, cfg config, tr trace.Tracer) (*invredis.Store, error) {
	o := invredis.Options{Groups: cfg.ShardGroups, Retention: cfg.Retention, AckReplicas: cfg.WriteAck == "replicas", Tracer: tr}
	marked, err := invredis.New(client, o).Marked(ctx)
	if err != nil {
		return nil, err
	}
	o.RequireEpoch = marked
	return invredis.New(client, o), nil
}

// progress shows a load's progress: a bar redrawn in place on a terminal, a line every
// few seconds otherwise (a log file, CI).
type progress struct {
	out   io.Writer
	total int64
	tty   bool
	every time.Duration
}

func newProgress(out io.Writer, total int64) *progress {
	p := &progress{out: out, total: total, every: 5 * time.Second}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progress) show(r load.Report) {
	rate := float64(r.Rows) / max(r.Took.Seconds(), 1e-9)
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-r.Rows) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100 * float64(r.Rows) / float64(max(p.total, 1))
	if !p.tty {
		fmt.Fprintf(p.out, "load: %d/%d rows (%.0f%%), %.0f rows/s, ETA %s\n", r.Rows, p.total, pct, rate, eta)
		return
	}
	const width = 30
	filled := int(pct / 100 * width)
	fmt.Fprintf(p.out, "\r[%s%s] %3.0f%% %d/%d rows  %.0f rows/s  ETA %s   ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), pct, r.Rows, p.total, rate, eta)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.out)
	}
}
