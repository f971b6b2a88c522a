// Package prom is the Prometheus edge of the promotion domain: the rebuilder reports each
// rebuild (promo.RebuilderOptions.Rebuilt) and this package counts them, so that the domain
// imports no metrics library.
package prom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Rebuilds registers the rebuild metrics on reg and returns the function the rebuilder
// reports to.
func Rebuilds(reg prometheus.Registerer) func(reason, outcome string, took time.Duration) {
	f := promauto.With(reg)
	runs := f.NewCounterVec(prometheus.CounterOpts{Name: "jaego_promo_rebuilds_total",
		Help: "Promotion cache rebuilds by reason (admin, daily, startup, retry, not_built, manual) and outcome."}, []string{"reason", "outcome"})
	seconds := f.NewHistogram(prometheus.HistogramOpts{Name: "jaego_promo_rebuild_seconds",
		Help: "Time of one rebuild, lock wait included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	return func(reason, outcome string, took time.Duration) {
		runs.WithLabelValues(reason, outcome).Inc()
		seconds.Observe(took.Seconds())
	}
}
