package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/jaego/jaego/internal/capacity"
)

// runCapacity is `jaego capacity`: the resources for a retailer's size, from the capacity
// model (internal/capacity, docs/capacity.md) on what docs/benchmarks.md measured.
func runCapacity(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var l capacity.Load
	f := newEnvFlags("capacity", getenv, stderr)
	f.fs.Float64Var(&l.Rows, "rows", 10e6, "store × SKU rows (100M: 1e8)")
	f.fs.Float64Var(&l.PeakEvents, "events", 5000, "stock events a second at the busiest minute")
	f.fs.Float64Var(&l.DailyEvents, "daily-events", 0, "stock events a day (default: three hours of -events: a shop day is far from its lunch and after-work peaks)")
	f.fs.Float64Var(&l.PeakLookups, "lookups", 10000, "stock lookups a second at the busiest minute")
	f.fs.Float64Var(&l.LedgerDays, "ledger-days", 90, "days of the copy's ledger (--ledger-retention)")
	if err := f.Parse(args); err != nil {
		return err
	}
	if l.Rows <= 0 || l.PeakEvents < 0 || l.PeakLookups < 0 || l.DailyEvents < 0 {
		return fmt.Errorf("-rows must be > 0, -events, -daily-events and -lookups >= 0")
	}
	l = l.Defaults()
	p := capacity.For(l, capacity.Benchmarks)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "load\t%.0f rows, %.0f events/s at peak (%.0f a day), %.0f lookups/s at peak\n", l.Rows, l.PeakEvents, l.DailyEvents, l.PeakLookups)
	fmt.Fprintf(w, "Redis data\t%.1f GiB (rows, marks of %.1f days, changes of %.0f h)\n", p.RedisDataGiB, l.MarkDays, l.FeedHours)
	fmt.Fprintf(w, "Redis masters\t%d, each with %d replica, maxmemory %.1f GiB each (data × 1.5)\n", p.Masters, p.ReplicasPerMaster, p.RedisMaxmemoryGiB)
	fmt.Fprintf(w, "--groups\t%d\n", p.Groups)
	fmt.Fprintf(w, "Kafka partitions\t%d\n", p.KafkaPartitions)
	fmt.Fprintf(w, "PostgreSQL\t%.1f GiB of copy, %.1f GiB of ledger (%.0f days)\n", p.CopyGiB, p.LedgerGiB, l.LedgerDays)
	fmt.Fprintf(w, "jaego serve\t%d instances of %.0f cores\n", p.Instances, l.InstanceCores)
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note\t%s\n", n)
	}
	return w.Flush()
}
