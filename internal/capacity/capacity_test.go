package capacity_test

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jaego/jaego/internal/capacity"
)

// The model's numbers are docs/benchmarks.md's: each is found there, in its table, so a
// benchmark run that changes them must change the model too.
func TestMeasuredAreTheBenchmarks(t *testing.T) {
	b, err := os.ReadFile("../../docs/benchmarks.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	m := capacity.Benchmarks
	for _, c := range []struct {
		what    string
		pattern string // the first group is the number
		want    float64
	}{
		{"bytes per stock row", `Redis bytes per stock row \| \*\*([\d.]+)\*\*`, m.RowBytes},
		{"bytes per POS event", `Redis bytes per POS event \(idempotency mark \+ change\) \| \*\*([\d.]+)\*\*`, m.EventBytes},
		{"apply events/s at G = 16", `\| 16 \| ([\d,]+) \| 1\.00 \|`, m.ApplyPerCore},
		{"HTTP lookups/s with a key, two cores", `\| jaego with an API key \| ([\d,]+) `, 2 * m.LookupsPerCore},
		{"projector changes/s", `projector on a 200,000-change backlog[^|]*\| [\d,]+ \| ([\d,]+) \|`, m.ProjectorPerSec},
		{"pipeline events/s", `produce → kfake → consumer group → Redis, end to end \| ([\d,]+) \|`, m.PipelinePerSec},
		{"copy bytes per record", `\*\*([\d.]+) bytes per record\*\*`, m.CopyRowBytes},
		{"ledger bytes per change", `\*\*([\d.]+) bytes per\s+change\*\*`, m.LedgerChangeByte},
	} {
		got := regexp.MustCompile(c.pattern).FindStringSubmatch(doc)
		if got == nil {
			t.Errorf("%s: %q is not in docs/benchmarks.md", c.what, c.pattern)
			continue
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(got[1], ",", ""), 64)
		if err != nil || v != c.want {
			t.Errorf("%s: docs/benchmarks.md says %s, the model has %g", c.what, got[1], c.want)
		}
	}
	// The change entry's bytes are architecture.md's layout table.
	a, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(a), "~"+strconv.FormatFloat(m.ChangeBytes, 'f', -1, 64)+" B a change") {
		t.Errorf("docs/architecture.md's layout table does not say ~%g B a change", m.ChangeBytes)
	}
}

// The model against the measured 10M-row run of docs/benchmarks.md: 10M rows and 1M POS
// events kept (their marks and changes) are 93.2 B a row and 97 B an event in Redis.
func TestModelAtTheMeasuredRun(t *testing.T) {
	p := capacity.For(capacity.Load{Rows: 10e6, PeakEvents: 1, DailyEvents: 1e6, MarkDays: 1, FeedHours: 24, PeakLookups: 1},
		capacity.Benchmarks)
	measured := 10e6*93.2 + 1e6*97.0
	if got := p.RedisDataGiB * (1 << 30); math.Abs(got-measured) > 1 {
		t.Fatalf("the model puts 10M rows and 1M events at %.0f bytes, the run measured %.0f", got, measured)
	}
	if p.Masters != 1 || p.Groups != 16 || p.Instances != 2 {
		t.Fatalf("10M rows on one node: %+v", p)
	}
}

// The issue's size: 100M rows, 20k events/s and 50k lookups/s at peak.
func TestPlanForTheIssuesSize(t *testing.T) {
	l := capacity.Load{Rows: 1e8, PeakEvents: 20000, PeakLookups: 50000}
	p := capacity.For(l, capacity.Benchmarks)
	perMaster := p.RedisDataGiB / float64(p.Masters)
	switch {
	case p.Masters < 3 || perMaster > 25:
		t.Errorf("%d masters for %.1f GiB: a Cluster of at least 3, at most 25 GiB each", p.Masters, p.RedisDataGiB)
	case p.RedisMaxmemoryGiB < perMaster*1.5-0.1:
		t.Errorf("maxmemory %.1f GiB for %.1f GiB of data a master: no room for an AOF rewrite", p.RedisMaxmemoryGiB, perMaster)
	case p.Groups != 512:
		t.Errorf("--groups %d on %d masters, want 512 (docs/architecture.md, Choosing G)", p.Groups, p.Masters)
	case float64(p.Instances)*capacity.Benchmarks.LookupsPerCore*2*0.5 < 50000:
		t.Errorf("%d instances cannot answer 50k lookups/s at half their measured rate", p.Instances)
	case p.LedgerGiB < 1000:
		t.Errorf("90 days of 216M events a day in %.0f GiB of ledger: below the measured bytes per change", p.LedgerGiB)
	}
}
