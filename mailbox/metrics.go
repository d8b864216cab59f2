package mailbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/store"
)

// Metrics counts the outcomes of delivery. A nil *Metrics counts nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
}

// NewMetrics registers the delivery metrics on reg (once per registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kep_deliveries_total",
			Help: "Delivery attempts per recipient, by outcome: delivered (evidence 40), not_delivered (41), retry (a temporary failure, tried again later).",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"delivered", "not_delivered", "retry"} {
		m.deliveries.WithLabelValues(o) // present from the start, at 0
	}
	reg.MustRegister(m.deliveries)
	return m
}

func (m *Metrics) delivered(outs []*outcome) {
	if m == nil {
		return
	}
	for _, o := range outs {
		if o.ok {
			m.deliveries.WithLabelValues("delivered").Inc()
		} else {
			m.deliveries.WithLabelValues("not_delivered").Inc()
		}
	}
}

func (m *Metrics) retried(n int) {
	if m != nil {
		m.deliveries.WithLabelValues("retry").Add(float64(n))
	}
}

// QueueCollector reports the delivery queue at scrape time: how many
// deliveries wait, and how long the oldest of them has waited since its
// message was accepted.
func QueueCollector(s *Service) prometheus.Collector { return queueCollector{s} }

type queueCollector struct{ s *Service }

var (
	queueDepthDesc = prometheus.NewDesc("kep_queue_depth", "Recipients whose copy is still travelling: pending a transport, or awaiting the other provider's evidence.", nil, nil)
	queueAgeDesc   = prometheus.NewDesc("kep_queue_oldest_age_seconds", "How long the oldest waiting delivery's message has waited since acceptance (0 when the queue is empty).", nil, nil)
)

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueAgeDesc
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var depth int64
	var oldest *int64
	err := c.s.DB.Q().QueryRow(ctx, `SELECT count(*), min(m.submitted_at) FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.transport_state IN ('pending', 'awaiting')`).Scan(&depth, &oldest)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, err)
		return
	}
	age := 0.0
	if oldest != nil {
		age = max(0, c.s.now().Sub(store.FromMillis(*oldest)).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, age)
}
