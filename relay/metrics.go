package relay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/store"
)

// Metrics counts evidence that crosses providers (docs/relay.md). A nil
// *Metrics counts nothing.
type Metrics struct {
	received *prometheus.CounterVec
	returns  *prometheus.CounterVec
	overdue  prometheus.Gauge
}

// NewMetrics registers the relay's metrics on reg (once per registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kep_relay_evidence_received_total",
			Help: "Evidence returned by other providers, by outcome: stored, duplicate (received before), refused (did not verify against the directory or names no message of ours; see the error log).",
		}, []string{"outcome"}),
		returns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kep_relay_evidence_returns_total",
			Help: "Attempts to return this provider's evidence to the sender's provider, by outcome: sent, retry (a temporary fault), refused (a 5xx, retried at the back-off's ceiling; see the error log).",
		}, []string{"outcome"}),
		overdue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kep_relay_evidence_overdue",
			Help: "Recipients the other provider took (250) whose relay acceptance evidence (20) has not come back within federation.evidence_alarm of acceptance (each is logged once at WARN).",
		}),
	}
	for _, o := range []string{"stored", "duplicate", "refused"} {
		m.received.WithLabelValues(o)
	}
	for _, o := range []string{"sent", "retry", "refused"} {
		m.returns.WithLabelValues(o)
	}
	reg.MustRegister(m.received, m.returns, m.overdue)
	return m
}

func (m *Metrics) receivedInc(outcome string) {
	if m != nil {
		m.received.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) returnInc(outcome string) {
	if m != nil {
		m.returns.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) overdueSet(n int) {
	if m != nil {
		m.overdue.Set(float64(n))
	}
}

// AwaitingCollector reports, at scrape time, how long the oldest recipient
// awaiting another provider's evidence has waited since its message was
// accepted (kep_relay_awaiting_oldest_seconds, docs/relay.md "Data
// model"): an operator alarm for evidence that does not come back.
func AwaitingCollector(db *store.DB, now func() time.Time) prometheus.Collector {
	return awaitingCollector{db, now}
}

type awaitingCollector struct {
	db  *store.DB
	now func() time.Time
}

var awaitingDesc = prometheus.NewDesc("kep_relay_awaiting_oldest_seconds",
	"How long the oldest recipient awaiting another provider's evidence has waited since its message was accepted (0 when none waits).", nil, nil)

func (c awaitingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- awaitingDesc }

func (c awaitingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var oldest int64
	err := c.db.Q().QueryRow(ctx, `SELECT COALESCE(MIN(m.submitted_at), 0) FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.transport_state = 'awaiting'`).Scan(&oldest)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(awaitingDesc, err)
		return
	}
	age := 0.0
	if oldest != 0 {
		now := time.Now
		if c.now != nil {
			now = c.now
		}
		age = now().Sub(store.FromMillis(oldest)).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(awaitingDesc, prometheus.GaugeValue, age)
}
