package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	invredis "github.com/jaego/jaego/internal/inventory/redis"
	"github.com/jaego/jaego/internal/sourcing"
	srcdb "github.com/jaego/jaego/internal/sourcing/db"
	srcredis "github.com/jaego/jaego/internal/sourcing/redis"
)

// runStores is `jaego stores load FILE|-`: it checks a whole store directory file (CSV
// store,name,lat,lon,capabilities,status), printing every bad line with its number and
// putting nothing if there is one; then puts every store, in the SQL directory first when
// --postgres is given, then in Redis's geo index (design §15).
func runStores(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "load" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			args = []string{"load", "-h"}
		} else {
			return errors.New("usage: jaego stores load --redis URL [--postgres URL] FILE|-; see jaego stores -h")
		}
	}
	var cfg config
	f := newEnvFlags("stores load", getenv, stderr)
	f.args = 1
	f.String(&cfg.RedisURL, "redis", "JAEGO_REDIS_URL", "", "Redis: redis://host:port/db, or host:port,… for a Cluster (required)")
	f.String(&cfg.PostgresURL, "postgres", "JAEGO_POSTGRES_URL", "", "PostgreSQL of the durable copy: the directory is put there first (what a restore brings back)")
	layoutFlags(f, &cfg)
	logFlags(f, &cfg)
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	if cfg.RedisURL == "" || f.fs.NArg() != 1 {
		return errors.New("usage: jaego stores load --redis URL [--postgres URL] FILE|-; see jaego stores -h")
	}
	name, in := f.fs.Arg(0), stdin
	if name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	}
	bad := 0
	stores, err := sourcing.ReadDirectory(in, func(e sourcing.LineError) {
		bad++
		fmt.Fprintf(stderr, "%s:%d: %v\n", name, e.Line, e.Err)
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d bad lines (each printed above with its number); nothing was put", name, bad)
	}
	return putStores(ctx, cfg, stores, stdout)
}

// putStores puts the stores of a checked file: the SQL directory first, then Redis.
func putStores(ctx context.Context, cfg config, stores []sourcing.Store, stdout io.Writer) error {
	if cfg.PostgresURL != "" {
		sdb, err := openMigratedSQL(ctx, cfg.PostgresURL)
		if err != nil {
			return err
		}
		defer sdb.Close()
		dir := srcdb.New(sdb)
		for _, s := range stores {
			if err := dir.Put(ctx, s); err != nil {
				return fmt.Errorf("store %s: %w", s.ID, err)
			}
		}
	}
	client, _, err := redisClient(cfg.RedisURL, false, cfg.ShardGroups)
	if err != nil {
		return err
	}
	defer client.Close()
	store := invredis.New(client, invredis.Options{Groups: cfg.ShardGroups})
	marked, err := store.Marked(ctx)
	if err != nil {
		return err
	}
	if err := srcredis.New(client, store.Keys(), marked, sourcingKeep).PutMany(ctx, stores); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	fmt.Fprintf(stdout, "stores: %s put\n", plural(len(stores), "store"))
	return nil
}
