package provider

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// The node's own metrics: the evidence log's size and the age of its
// newest checkpoint, read at scrape time, and the time-stamp authority's
// latency and failures, measured around every request. The services'
// metrics are declared in their packages (evidence, mailbox, submission,
// imapd) and registered on the same registry, Node.Metrics.

var (
	logSizeDesc = prometheus.NewDesc("kep_log_size", "Entries (evidences) in the evidence log.", nil, nil)
	cpAgeDesc   = prometheus.NewDesc("kep_checkpoint_age_seconds", "Seconds since the newest signed, time-stamped checkpoint was made (absent before the first).", nil, nil)
	cpSizeDesc  = prometheus.NewDesc("kep_checkpoint_size", "Entries covered by the newest checkpoint; kep_log_size minus this is what no checkpoint covers yet.", nil, nil)
)

// logCollector reports the log at scrape time.
type logCollector struct{ n *Node }

func (c logCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- logSizeDesc
	ch <- cpAgeDesc
	ch <- cpSizeDesc
}

func (c logCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(c.n.Log.Size()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp, err := tlog.LatestCheckpoint(ctx, c.n.DB.Q())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return
	case err != nil:
		ch <- prometheus.NewInvalidMetric(cpAgeDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(cpAgeDesc, prometheus.GaugeValue, max(0, c.n.Now().Sub(cp.CreatedAt).Seconds()))
	ch <- prometheus.MustNewConstMetric(cpSizeDesc, prometheus.GaugeValue, float64(cp.Size))
}

// stampMetrics measures a Stamper: how long each time stamp took, and how
// many failed.
type stampMetrics struct {
	tlog.Stamper
	latency  prometheus.Histogram
	failures prometheus.Counter
}

func newStampMetrics(s tlog.Stamper, reg prometheus.Registerer) *stampMetrics {
	m := &stampMetrics{Stamper: s,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kep_timestamp_seconds",
			Help:    "Time taken by each RFC 3161 time-stamp request for a checkpoint, successful or not.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kep_timestamp_failures_total",
			Help: "RFC 3161 time-stamp requests that failed (the checkpoint waits and is stamped later).",
		}),
	}
	reg.MustRegister(m.latency, m.failures)
	return m
}

func (m *stampMetrics) Stamp(ctx context.Context, data []byte) ([]byte, time.Time, error) {
	start := time.Now()
	tok, at, err := m.Stamper.Stamp(ctx, data)
	m.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		m.failures.Inc()
	}
	return tok, at, err
}
