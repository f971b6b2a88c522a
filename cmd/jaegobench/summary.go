package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// goalRow is one line of the summary: a measured path against its goal (issue 27's table,
// and the goals of the issues since).
type goalRow struct {
	Bench    string  `json:"bench"`
	Path     string  `json:"path"`
	Baseline string  `json:"baseline"` // "" for an absolute value
	Value    float64 `json:"value"`    // a ratio to the baseline, or Unit's value
	Min      float64 `json:"min"`      // over the rounds, when the benchmark has rounds
	Max      float64 `json:"max"`
	Unit     string  `json:"unit"` // "×" or "ms"
	AtLeast  bool    `json:"at_least"`
	Goal     float64 `json:"goal"`
	Met      bool    `json:"met"`
	// Stolen is the CPU the hypervisor took for other guests while the benchmark ran, in
	// cores on average (`all` only): a row measured while the host stole is not comparable
	// with one measured while it did not.
	Stolen float64 `json:"stolen_cores"`
}

// report is the writer every benchmark prints to, which also collects its goal rows.
type report struct {
	io.Writer
	bench string
	rows  []goalRow
}

// measured adds a row to the report out is (a benchmark run alone, or by all); Min and
// Max default to Value.
func measured(out io.Writer, r goalRow) {
	rp, ok := out.(*report)
	if !ok {
		return
	}
	if r.Min == 0 && r.Max == 0 {
		r.Min, r.Max = r.Value, r.Value
	}
	if r.Unit == "" {
		r.Unit = "×"
	}
	r.Bench = rp.bench
	r.Met = r.Value <= r.Goal
	if r.AtLeast {
		r.Met = r.Value >= r.Goal
	}
	rp.rows = append(rp.rows, r)
}

// minMax is the least and the most of xs.
func minMax(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	return slices.Min(xs), slices.Max(xs)
}

// writeSummary prints the rows as one table.
func writeSummary(out io.Writer, rows []goalRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(out, "\n| bench | path | baseline | measured (min–max) | goal | met? | host steal (cores) |\n|---|---|---|---:|---:|---|---:|\n")
	for _, r := range rows {
		cmp, met := "≤", "yes"
		if r.AtLeast {
			cmp = "≥"
		}
		if !r.Met {
			met = "**no**"
		}
		base := r.Baseline
		if base == "" {
			base = "—"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %.2f %s (%.2f–%.2f) | %s %.2f %s | %s | %.2f |\n", r.Bench, r.Path, base, r.Value, r.Unit, r.Min, r.Max, cmp, r.Goal, r.Unit, met, r.Stolen)
	}
}

// allOrder is the order `jaegobench all` runs the benchmarks in.
var allOrder = []string{"store", "pipeline", "http", "feed", "copy", "sourcing", "tracing", "webhooks", "orders", "tail", "lock", "promo", "restore", "scale"}

// allFlags reads the flags of `jaegobench all`: every benchmark with its default flags
// (but those skipped), one summary table to stdout and to a JSON file.
func allFlags(fs *flag.FlagSet) func(context.Context, io.Writer) error {
	jsonPath := fs.String("json", "jaegobench-summary.json", "where the summary goes as JSON")
	skip := fs.String("skip", "", "benchmarks not run, comma-separated (e.g. scale,feed: the longest)")
	return func(ctx context.Context, out io.Writer) error {
		skipped := strings.Split(*skip, ",")
		var rows []goalRow
		var failed []string
		for _, name := range allOrder {
			if slices.Contains(skipped, name) {
				continue
			}
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			bench := benches[name](fs)
			rp := &report{Writer: out, bench: name}
			start, cpu := time.Now(), cpuNow(nil)
			fmt.Fprintf(out, "\n## %s\n\n", name)
			if err := bench(ctx, rp); err != nil { // the others still run: one failure must not lose the summary
				fmt.Fprintf(out, "\n%s failed: %v\n", name, err)
				failed = append(failed, name+": "+err.Error())
				if ctx.Err() != nil {
					break
				}
			}
			took := time.Since(start)
			stolen := cpuNow(nil).minus(cpu).per(took.Seconds()).stolen
			fmt.Fprintf(out, "\n(%s took %s; the host stole %.2f of a core on average)\n", name, took.Round(time.Second), stolen)
			for i := range rp.rows {
				rp.rows[i].Stolen = stolen
			}
			rows = append(rows, rp.rows...)
		}
		fmt.Fprintf(out, "\n## Summary\n")
		writeSummary(out, rows)
		b, err := json.MarshalIndent(map[string]any{"at": time.Now().UTC(), "rows": rows, "failed": failed}, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonPath, append(b, '\n'), 0o644)
		}
		if err == nil && len(failed) > 0 {
			err = fmt.Errorf("%d benchmarks failed: %s", len(failed), strings.Join(failed, "; "))
		}
		return err
	}
}
