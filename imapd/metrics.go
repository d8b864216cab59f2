package imapd

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts IMAP sessions and refused logins. A nil *Metrics counts
// nothing.
type Metrics struct {
	sessions     prometheus.Counter
	authFailures prometheus.Counter
	limited      *prometheus.CounterVec
}

// The same names as package submission's, with protocol="imap".
var imapLabel = prometheus.Labels{"protocol": "imap"}

// NewMetrics registers the IMAP metrics on reg (once per registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kep_sessions_total", Help: "Client sessions (connections) opened, by protocol.", ConstLabels: imapLabel}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kep_auth_failures_total", Help: "Refused logins (wrong credentials, or throttled after too many), by protocol.", ConstLabels: imapLabel}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kep_connections_limited_total",
			Help: "Connections refused by a connection cap (limit=total, per_address) or cut by a timeout (limit=handshake, command, data, session), by protocol.", ConstLabels: imapLabel}, []string{"limit"}),
	}
	reg.MustRegister(m.sessions, m.authFailures, m.limited)
	return m
}

func (m *Metrics) session() {
	if m != nil {
		m.sessions.Inc()
	}
}

func (m *Metrics) authFailed() {
	if m != nil {
		m.authFailures.Inc()
	}
}

// refused counts a connection refused by a cap (total, per_address).
func (m *Metrics) refused(which string) {
	if m != nil {
		m.limited.WithLabelValues(which).Inc()
	}
}
