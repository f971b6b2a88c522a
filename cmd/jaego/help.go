package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// commandHelp is what `jaego <command> -h` says besides the flags: what the command is for
// and how it is used.
var commandHelp = map[string]struct{ about, examples, args string }{
	"dev": {
		about: "Runs everything in one process with embedded defaults and no external server: an in-process\n" +
			"Redis-protocol server and Kafka-protocol broker on free loopback ports, a SQLite file for the\n" +
			"promotions and the durable stock copy, demo stock and promotions, the API. It prints every\n" +
			"address it uses. With --data DIR, everything survives a restart: the stock with its idempotency\n" +
			"marks, the change feed within its retention, the history and the promotions (the copy in the\n" +
			"SQLite file is put back into the embedded Redis at start). Without it, each start is a fresh demo.",
		examples: "jaego dev\njaego dev --http 127.0.0.1:9090 --data ./jaego-data\njaego dev --redis-listen 127.0.0.1:6400   # then: redis-cli -p 6400",
	},
	"serve": {
		about: "The production server: the HTTP API against a real Redis (standalone or Cluster); with --kafka the\n" +
			"POS event consumer; with --postgres the gift promotions, the durable stock copy (its projector,\n" +
			"fallback reads while Redis fails, the history route). Every setting also has a JAEGO_* variable.",
		examples: "JAEGO_REDIS_URL=redis://10.0.0.5:6379/0 jaego serve --http :8080\n" +
			"jaego serve --redis 10.0.0.5:6379,10.0.0.6:6379,10.0.0.7:6379 --kafka 10.0.1.1:9092 --postgres postgres://jaego@10.0.0.9/jaego",
	},
	"relay": {
		about: "Reads POS transactions (NDJSON: stdin, --in FILE, or POST /relay with --http), keeps the stock\n" +
			"events and produces them to Kafka in asynchronous batches (docs/pos-format.md). A malformed line\n" +
			"stops a file relay with its line number and refuses an HTTP request whole.",
		examples: "jaego relay --kafka 10.0.1.1:9092 --in day.ndjson\ntail -f till.ndjson | jaego relay --kafka 10.0.1.1:9092\njaego relay --kafka 10.0.1.1:9092 --http :8090",
	},
	"loadgen": {
		about:    "Produces a realistic POS day of stock events to Kafka (thousands of stores, long-tail SKUs, lunch\nand after-work peaks), as fast as the broker takes them or at --rate. The same --seed gives the same day.",
		examples: "jaego loadgen --kafka 127.0.0.1:9092 --transactions 100000 --rate 5000",
	},
	"keys new": {
		about: "Makes a new random API key (256 bits) and prints it once, with the line to add to the keys file\n" +
			"(--api-keys): the file keeps only the key's SHA-256. jaego serve reloads the file on SIGHUP. Scopes:\n" +
			"read (stock, changes, history, gifts, availability, stores, sourcing), write (events, reservations,\n" +
			"sourcing with a hold), admin (/v1/admin/: the breaker, promotions, the store directory).",
		examples: "jaego keys new --name shop-web --scopes read,write\njaego keys new --name oncall-kim --scopes read,admin",
	},
	"load": {
		args: " FILE|-",
		about: "Loads a stock snapshot, CSV lines store,sku,on_hand[,safety] from FILE or - (stdin), a header line\n" +
			"allowed. It reads the whole file first and prints every bad line with its number; then nothing is\n" +
			"loaded. Each row sets on_hand (and the safety stock when given) as a set change in the feed, unless\n" +
			"the record already holds those numbers. Running the same file again changes nothing, also after an\n" +
			"interruption (it goes on where it stopped). A pair given twice: the later line wins.",
		examples: "jaego load --redis redis://10.0.0.5:6379/0 snapshot-20261125.csv\nzcat snapshot.csv.gz | jaego load --redis 10.0.0.5:6379,10.0.0.6:6379,10.0.0.7:6379 -",
	},
	"stores load": {
		args: " FILE|-",
		about: "Puts the store directory of sourcing (design §15): CSV lines store,name,lat,lon,capabilities,status\n" +
			"from FILE or - (stdin), a header line allowed; capabilities separated by ';' (or in a quoted field by\n" +
			"','), status open (or empty) or closed. It reads the whole file first and prints every bad line with\n" +
			"its number; then nothing is put. With --postgres each store goes to the durable copy first (what\n" +
			"jaego restore brings back), then to Redis's geo index. A store put again replaces what it was.",
		examples: "jaego stores load --redis redis://10.0.0.5:6379/0 --postgres postgres://jaego@10.0.0.9/jaego stores.csv",
	},
	"migrate": {
		about:    "Applies the SQL schema migrations (gift promotions, durable stock copy) to --postgres. Idempotent;\ntwo at once wait for each other. jaego serve refuses a schema that is behind.",
		examples: "JAEGO_POSTGRES_URL=postgres://jaego@10.0.0.9:5432/jaego jaego migrate",
	},
	"promo rebuild": {
		about:    "Builds and publishes a new version of the promotion cache now, from PostgreSQL, under the\npromo-rebuild lock (every admin change and each midnight do it by themselves).",
		examples: "jaego promo rebuild --redis redis://10.0.0.5:6379/0 --postgres postgres://jaego@10.0.0.9/jaego --promo-tz Asia/Seoul",
	},
	"capacity": {
		about: "Prints the resources for a size: Redis masters and maxmemory, --groups, Kafka partitions,\n" +
			"PostgreSQL for the copy and its ledger, jaego instances. The model and the numbers it stands on\n" +
			"(each measured by jaegobench on this project's machine) are in docs/capacity.md.",
		examples: "jaego capacity --rows 1e8 --events 20000 --lookups 50000\njaego capacity --rows 3e7 --events 8000 --daily-events 4e7 --ledger-days 30",
	},
	"restore": {
		about: "Rebuilds a Redis that lost its data from the durable copy in PostgreSQL: records with their\n" +
			"versions, idempotency marks, rising change ids, held reservations and load marks; with --kafka it\n" +
			"moves the consumer group back (once its members left) so that Kafka events lost with Redis are\n" +
			"applied again, exactly once. See docs/operations.md, \"Redis came back empty\". It refuses a whole\n" +
			"Redis (one with its epoch marks) unless --force; an interrupted restore is simply run again.",
		examples: "jaego restore --redis redis://10.0.0.5:6379/0 --postgres postgres://jaego@10.0.0.9/jaego --kafka 10.0.1.1:9092",
	},
}

// printUsage prints the command's description, its flags (defaults and env names) and
// examples: what -h shows.
func printUsage(fs *flag.FlagSet, name string, out io.Writer) {
	{
		h := commandHelp[name]
		fmt.Fprintf(out, "usage: jaego %s [flags]%s\n\n", name, h.args)
		if h.about != "" {
			fmt.Fprintf(out, "%s\n\n", h.about)
		}
		fmt.Fprintln(out, "flags:")
		fs.SetOutput(out)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		if h.examples != "" {
			fmt.Fprintf(out, "\nexamples:\n  %s\n", strings.ReplaceAll(h.examples, "\n", "\n  "))
		}
		if traced[name] {
			fmt.Fprint(out, "\ntracing: OpenTelemetry, only when OTEL_EXPORTER_OTLP_ENDPOINT names a collector (and the other\n"+
				"OTEL_* variables as the SDK documents them): docs/operations.md, \"Tracing\".\n")
		}
	}
}

// traced are the commands that trace when the OTEL_* variables ask (design §16).
var traced = map[string]bool{"serve": true, "dev": true, "relay": true, "restore": true, "load": true}

// suggest adds the nearest known flag to an unknown-flag error.
func suggest(fs *flag.FlagSet, err error) error {
	const prefix = "flag provided but not defined: -"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return err
	}
	bad := strings.TrimPrefix(msg, prefix)
	best, bestD := "", 4
	fs.VisitAll(func(f *flag.Flag) {
		if d := distance(bad, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	if best == "" {
		return err
	}
	return fmt.Errorf("%w (did you mean --%s?)", err, best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// isHelp reports whether err is a -h/--help request, which is not a failure.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
