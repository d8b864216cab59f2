package notice

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts notices (docs/notices.md, "Reliability"). A nil *Metrics
// counts nothing.
type Metrics struct {
	notices *prometheus.CounterVec
}

// NewMetrics registers the notices' metrics on reg (once per registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{notices: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kep_notices_total",
		Help: "Notice attempts by channel (sms, email) and outcome: sent, retry (the gateway or relay failed; retried after the back-off), failed (given up once moot; see the error log), dropped (read before its reminder, or the channel turned off or its grant revoked).",
	}, []string{"channel", "outcome"})}
	for _, ch := range []Channel{SMS, Email} {
		for _, o := range []string{"sent", "retry", "failed", "dropped"} {
			m.notices.WithLabelValues(string(ch), o)
		}
	}
	reg.MustRegister(m.notices)
	return m
}

func (m *Metrics) inc(ch Channel, outcome string) {
	if m != nil {
		m.notices.WithLabelValues(string(ch), outcome).Inc()
	}
}
