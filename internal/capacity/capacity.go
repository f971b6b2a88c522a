// Package capacity is jaego's capacity model (docs/capacity.md): from a retailer's size
// (store × SKU rows, events a second at peak and a day, lookups a second at peak) to the
// resources that carry it, computed from what docs/benchmarks.md measured on this project's
// two shared cores. `jaego capacity` prints it.
package capacity

import (
	"fmt"
	"math"
)

// Measured is what the model is built from: the numbers of docs/benchmarks.md (a test holds
// the two together).
type Measured struct {
	RowBytes         float64 // Redis bytes per stock row (scale, 10M rows)
	EventBytes       float64 // Redis bytes per POS event: idempotency mark + change (scale)
	ChangeBytes      float64 // of which the change entry, kept for the feed's retention
	ApplyPerCore     float64 // events/s one Redis core applies, batched (scale, G = 16)
	LookupsPerCore   float64 // single-SKU HTTP lookups/s per jaego core, with an API key: half of what two cores did (http; shared with Redis and the load generator, so low)
	ProjectorPerSec  float64 // changes/s the one projector writes to PostgreSQL (copy)
	PipelinePerSec   float64 // POS events/s through one consumer group member into Redis (pipeline)
	CopyRowBytes     float64 // PostgreSQL bytes per record of the copy (restore)
	LedgerChangeByte float64 // PostgreSQL bytes per change of the ledger (copy)
}

// Benchmarks is what docs/benchmarks.md measured (2026-11-25 to 2026-12-02).
var Benchmarks = Measured{
	RowBytes: 93.2, EventBytes: 97.0, ChangeBytes: 81, ApplyPerCore: 59581, LookupsPerCore: 26255.0 / 2,
	ProjectorPerSec: 84156, PipelinePerSec: 41557, CopyRowBytes: 129.1, LedgerChangeByte: 325.7,
}

// Load is what a deployment must carry.
type Load struct {
	Rows          float64 // store × SKU rows
	PeakEvents    float64 // stock events a second at the busiest minute
	DailyEvents   float64 // stock events a day
	PeakLookups   float64 // lookups a second at the busiest minute
	LedgerDays    float64 // the copy's ledger retention, days (90)
	FeedHours     float64 // the change feed's retention in Redis, hours (48)
	MarkDays      float64 // how long an idempotency mark lives, days (7-10.5: 10.5)
	Headroom      float64 // planned use of a measured rate, 0..1 (0.5)
	MasterMaxGiB  float64 // the most data one Redis master should hold, GiB (25)
	InstanceCores float64 // cores of one jaego instance (2)
}

// Plan is the resources for a Load.
type Plan struct {
	RedisDataGiB      float64 // stock rows, marks and changes, without headroom
	RedisMaxmemoryGiB float64 // per master, with room for fragmentation and an AOF rewrite's copy-on-write
	Masters           int
	ReplicasPerMaster int
	Groups            int // --groups
	KafkaPartitions   int
	CopyGiB           float64 // PostgreSQL: the copy's records
	LedgerGiB         float64 // PostgreSQL: the ledger of LedgerDays
	Instances         int     // jaego serve instances
	Notes             []string
}

// Defaults fills the zero fields of l with the defaults above.
func (l Load) Defaults() Load {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.DailyEvents, l.PeakEvents*3*3600) // a day's events: about three hours of the peak rate
	def(&l.LedgerDays, 90)
	def(&l.FeedHours, 48)
	def(&l.MarkDays, 10.5)
	def(&l.Headroom, 0.5)
	def(&l.MasterMaxGiB, 25)
	def(&l.InstanceCores, 2)
	return l
}

const gib = 1 << 30

// For plans l on m.
func For(l Load, m Measured) Plan {
	l = l.Defaults()
	var p Plan
	markBytes := m.EventBytes - m.ChangeBytes
	data := l.Rows*m.RowBytes + l.DailyEvents*l.MarkDays*markBytes + l.DailyEvents*l.FeedHours/24*m.ChangeBytes
	p.RedisDataGiB = data / gib
	byMemory := math.Ceil(p.RedisDataGiB / l.MasterMaxGiB)
	byEvents := math.Ceil(l.PeakEvents / (m.ApplyPerCore * l.Headroom))
	p.Masters = int(max(1, byMemory, byEvents))
	if p.Masters > 1 {
		p.Masters = max(p.Masters, 3) // a Cluster has at least three masters
	}
	p.RedisMaxmemoryGiB = math.Ceil(p.RedisDataGiB/float64(p.Masters)*1.5*10) / 10
	p.ReplicasPerMaster = 1
	switch { // docs/architecture.md, "Choosing G": how evenly groups fall on masters
	case p.Masters == 1:
		p.Groups = 16
	case p.Masters <= 3:
		p.Groups = 64
	default:
		p.Groups = 512
	}
	// Consumers: one group member per instance; four partitions per member needed, so that
	// instances can be added at peak without repartitioning.
	consumers := math.Ceil(l.PeakEvents / (m.PipelinePerSec * l.Headroom))
	p.KafkaPartitions = int(max(8, 4*consumers))
	p.CopyGiB = l.Rows * m.CopyRowBytes / gib
	p.LedgerGiB = l.DailyEvents * l.LedgerDays * m.LedgerChangeByte / gib
	p.Instances = int(max(2, consumers, math.Ceil(l.PeakLookups/(m.LookupsPerCore*l.InstanceCores*l.Headroom))))
	if l.PeakEvents > m.ProjectorPerSec*l.Headroom {
		p.Notes = append(p.Notes, fmt.Sprintf("%.0f events/s is past half of what one projector writes to PostgreSQL (%.0f/s): the copy's lag will grow at peak", l.PeakEvents, m.ProjectorPerSec))
	}
	return p
}
