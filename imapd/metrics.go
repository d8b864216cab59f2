package imapd

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts IMAP sessions and refused logins. A nil *Metrics counts
// nothing.
type Metrics struct {
	sessions     prometheus.Counter
	authFailures prometheus.Counter
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
	}
	reg.MustRegister(m.sessions, m.authFailures)
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
