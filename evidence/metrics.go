package evidence

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the evidence this provider issues. A nil *Metrics counts
// nothing.
type Metrics struct {
	issued *prometheus.CounterVec
}

// NewMetrics registers the issuer's metrics on reg (once per registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kep_evidence_issued_total",
			Help: "Evidence signed and logged, by evidence code (10 accepted, 11 rejected, 40 delivered, 41 not delivered, 60 read, 61 deemed read, ...).",
		}, []string{"code"}),
	}
	reg.MustRegister(m.issued)
	return m
}

// count records recs as issued when err is nil.
func (m *Metrics) count(recs []*Record, err error) {
	if m == nil || err != nil {
		return
	}
	for _, r := range recs {
		m.issued.WithLabelValues(strconv.Itoa(int(r.Evidence.Code))).Inc()
	}
}
