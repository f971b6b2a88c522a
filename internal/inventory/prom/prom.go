// Package prom is the Prometheus edge of the stock domain's use cases: it turns what the
// live-tail hub and the projector of the durable copy report (inventory.HubObserver,
// inventory.ProjectorObserver) into metrics, so that the domain imports no metrics library.
package prom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/jaego/jaego/internal/inventory"
)

// Hub is the live tail's metrics.
type Hub struct {
	subscribers prometheus.Gauge
	dropped     prometheus.Counter
	reads       prometheus.Counter
	caughtUp    *prometheus.CounterVec
}

var _ inventory.HubObserver = (*Hub)(nil)

// NewHub registers the live tail's metrics on reg.
func NewHub(reg prometheus.Registerer) *Hub {
	f := promauto.With(reg)
	return &Hub{
		subscribers: f.NewGauge(prometheus.GaugeOpts{Name: "jaego_tail_subscribers", Help: "Live-tail (SSE) subscribers of this instance."}),
		dropped: f.NewCounter(prometheus.CounterOpts{Name: "jaego_tail_dropped_total",
			Help: "Live-tail subscribers dropped for being too slow (each was told where to resume)."}),
		reads: f.NewCounter(prometheus.CounterOpts{Name: "jaego_tail_reads_total",
			Help: "Feed reads of the hub: one for all subscribers, whatever their number."}),
		caughtUp: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_tail_catchup_changes_total",
			Help: "Changes subscribers read on their own before joining the hub (a resume, a webhook's backlog), by how: paged or streamed."}, []string{"how"}),
	}
}

// Subscribers implements inventory.HubObserver.
func (h *Hub) Subscribers(delta int) { h.subscribers.Add(float64(delta)) }

// Dropped implements inventory.HubObserver.
func (h *Hub) Dropped() { h.dropped.Inc() }

// Read implements inventory.HubObserver.
func (h *Hub) Read() { h.reads.Inc() }

// CaughtUp implements inventory.HubObserver.
func (h *Hub) CaughtUp(streamed bool, changes int) {
	how := "paged"
	if streamed {
		how = "streamed"
	}
	h.caughtUp.WithLabelValues(how).Add(float64(changes))
}

// Projector is the durable copy's projector's metrics.
type Projector struct {
	changes prometheus.Counter
	commits prometheus.Histogram
	lag     prometheus.Gauge
	active  prometheus.Gauge
	errors  prometheus.Counter
}

var _ inventory.ProjectorObserver = (*Projector)(nil)

// NewProjector registers the projector's metrics on reg.
func NewProjector(reg prometheus.Registerer) *Projector {
	f := promauto.With(reg)
	return &Projector{
		changes: f.NewCounter(prometheus.CounterOpts{Name: "jaego_projector_changes_total",
			Help: "Changes the projector committed to the durable copy."}),
		commits: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_projector_commit_seconds",
			Help: "Time of one durable-copy commit (rows, ledger and position in one transaction).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		lag: f.NewGauge(prometheus.GaugeOpts{Name: "jaego_projector_lag_seconds",
			Help: "How far the durable copy is behind now, as this instance's projector last saw it (0 when it does not project)."}),
		active: f.NewGauge(prometheus.GaugeOpts{Name: "jaego_projector_active",
			Help: "1 while this instance holds the projector lock and projects."}),
		errors: f.NewCounter(prometheus.CounterOpts{Name: "jaego_projector_errors_total",
			Help: "Projector runs that failed and were retried (feed, copy or lock errors)."}),
	}
}

// Active implements inventory.ProjectorObserver.
func (p *Projector) Active(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	p.active.Set(v)
}

// Committed implements inventory.ProjectorObserver.
func (p *Projector) Committed(changes int, took time.Duration) {
	p.commits.Observe(took.Seconds())
	p.changes.Add(float64(changes))
}

// Behind implements inventory.ProjectorObserver.
func (p *Projector) Behind(lag time.Duration) { p.lag.Set(lag.Seconds()) }

// Failed implements inventory.ProjectorObserver.
func (p *Projector) Failed() { p.errors.Inc() }
