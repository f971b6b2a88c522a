// Command jaego is the store-inventory and gift-promotion backend: `jaego dev` runs it all
// in one process with embedded servers, `jaego serve` runs it against real Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil && !isHelp(err) {
		fmt.Fprintln(os.Stderr, "jaego:", err)
		os.Exit(1)
	}
}

const usage = `usage: jaego <command> [flags]

commands:
  dev       everything in one process with embedded servers and demo data (no external server)
  serve     the production server against real Redis (--redis), with the POS event consumer (--kafka)
  relay     POS transactions (NDJSON on stdin, a file, or POST /relay) to stock events on Kafka
  loadgen   a realistic POS day of stock events, produced to Kafka
  keys      keys new: makes an API key (printed once) and its line for the keys file
  load      loads a stock snapshot (CSV store,sku,on_hand[,safety]) into Redis, checked first, with progress
  stores    stores load: puts a store directory (CSV store,name,lat,lon,capabilities,status), checked first
  migrate   applies the SQL schema migrations (gift promotions, durable stock copy) to --postgres
  restore   rebuilds an empty Redis from the durable copy in PostgreSQL and moves the consumer group back
  promo     promo rebuild: builds and publishes a new promotion cache version by hand
  capacity  the resources for a size: Redis masters and memory, G, partitions, PostgreSQL, instances
  version   prints the version, commit and build date (also --version)

Run 'jaego <command> -h' for the flags of a command.
`

// run is the whole program: main only wires the process to it, and tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "relay":
		return runRelay(ctx, rest, getenv, stdout, stderr, stdin)
	case "loadgen":
		return runLoadgen(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "load":
		return runLoad(ctx, rest, getenv, stdin, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "promo":
		return runPromo(ctx, rest, getenv, stdout, stderr)
	case "stores":
		return runStores(ctx, rest, getenv, stdin, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, getenv, stdout, stderr)
	case "capacity":
		return runCapacity(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		return runVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
