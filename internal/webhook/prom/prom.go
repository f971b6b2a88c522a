// Package prom is the Prometheus side of webhooks (design §10, §14): the metrics the
// dispatcher's observer reports, kept outside the domain.
package prom

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Deliveries observes a webhook.Dispatcher.
type Deliveries struct {
	attempts   *prometheus.CounterVec
	latency    prometheus.Histogram
	lag        *prometheus.GaugeVec
	failing    *prometheus.GaugeVec
	partitions prometheus.Gauge
	gaveUp     *prometheus.GaugeVec
	pends      prometheus.Histogram
}

// NewDeliveries registers the webhook metrics on reg.
func NewDeliveries(reg prometheus.Registerer) *Deliveries {
	f := promauto.With(reg)
	return &Deliveries{
		attempts: f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), failed (another answer), error (no answer)."}, []string{"outcome"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_webhook_delivery_seconds",
			Help: "Time from sending a webhook message to its answer.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "jaego_webhook_lag_seconds",
			Help: "Age of the oldest change a subscription delivered by this instance has not delivered yet (0: caught up)."}, []string{"subscription"}),
		failing: f.NewGaugeVec(prometheus.GaugeOpts{Name: "jaego_webhook_failing_seconds",
			Help: "How long the message a subscription is delivering has failed (0: not failing)."}, []string{"subscription"}),
		partitions: f.NewGauge(prometheus.GaugeOpts{Name: "jaego_webhook_partitions",
			Help: "Webhook delivery partitions (of 16) this instance holds the lock of."}),
		gaveUp: f.NewGaugeVec(prometheus.GaugeOpts{Name: "jaego_webhook_failing_subscriptions",
			Help: "Subscriptions turned failing (they wait for an operator), by the delivery partition this instance holds."}, []string{"partition"}),
		pends: f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_webhook_pend_seconds",
			Help: "Time of one transaction that keeps formed webhook messages pending before they are sent (one for many messages in a backlog).", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}),
	}
}

// Pended implements webhook.Observer.
func (d *Deliveries) Pended(took time.Duration) { d.pends.Observe(took.Seconds()) }

// Attempted implements webhook.Observer.
func (d *Deliveries) Attempted(outcome string, took time.Duration) {
	d.attempts.WithLabelValues(outcome).Inc()
	d.latency.Observe(took.Seconds())
}

// Lag implements webhook.Observer.
func (d *Deliveries) Lag(sub string, lag time.Duration) {
	d.lag.WithLabelValues(sub).Set(lag.Seconds())
}

// Failing implements webhook.Observer.
func (d *Deliveries) Failing(sub string, since time.Duration) {
	d.failing.WithLabelValues(sub).Set(since.Seconds())
}

// Gone implements webhook.Observer: a subscription no longer delivered here has no series.
func (d *Deliveries) Gone(sub string) {
	d.lag.DeleteLabelValues(sub)
	d.failing.DeleteLabelValues(sub)
}

// Partitions implements webhook.Observer.
func (d *Deliveries) Partitions(delta int) { d.partitions.Add(float64(delta)) }

// GaveUp implements webhook.Observer.
func (d *Deliveries) GaveUp(partition, n int) {
	if n < 0 {
		d.gaveUp.DeleteLabelValues(strconv.Itoa(partition))
		return
	}
	d.gaveUp.WithLabelValues(strconv.Itoa(partition)).Set(float64(n))
}
