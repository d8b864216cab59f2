package submission

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the submission service does: sessions, failed
// logins, accepted messages and refused ones by the refusal's reason code
// (the same code the rejection evidence carries), and connections refused
// or cut by the limits. A nil *Metrics counts nothing.
type Metrics struct {
	sessions     prometheus.Counter
	authFailures prometheus.Counter
	accepted     prometheus.Counter
	refused      *prometheus.CounterVec
	limited      *prometheus.CounterVec
}

// The session and login metrics carry protocol="smtp"; package imapd
// declares the same names with protocol="imap".
var smtpLabel = prometheus.Labels{"protocol": "smtp"}

// NewMetrics registers the submission metrics on reg (once per registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kep_sessions_total", Help: "Client sessions (connections) opened, by protocol.", ConstLabels: smtpLabel}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kep_auth_failures_total", Help: "Refused logins (wrong credentials, or throttled after too many), by protocol.", ConstLabels: smtpLabel}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kep_submissions_accepted_total", Help: "Messages accepted at submission (evidence 10)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kep_submissions_refused_total",
			Help: "Messages refused at submission, by reason: the refusal's reason code (as in the rejection evidence 11), or \"temporary\" for a 4xx that nothing was accepted or refused by."}, []string{"reason"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kep_connections_limited_total",
			Help: "Connections refused by a connection cap (limit=total, per_address) or cut by a timeout (limit=handshake, command, data, session), by protocol.", ConstLabels: smtpLabel}, []string{"limit"}),
	}
	reg.MustRegister(m.sessions, m.authFailures, m.accepted, m.refused, m.limited)
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

func (m *Metrics) accept() {
	if m != nil {
		m.accepted.Inc()
	}
}

func (m *Metrics) refuse(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) limit(which string) {
	if m != nil {
		m.limited.WithLabelValues(which).Inc()
	}
}
