package metrics

import "github.com/prometheus/client_golang/prometheus"

// Notify holds the collectors of `billing notify` (package notify),
// registered only by that process.
type Notify struct {
	// Notices counts the changes notify acted on, by notice
	// (payment_failed, dispute_opened; "" for a message it could not
	// read) and outcome: sent, refused (the SMTP server's 5xx, recorded,
	// not retried), no_recipient, duplicate (notified before),
	// bad_message.
	Notices *prometheus.CounterVec
	// Retries counts SMTP or MySQL failures notify waits out and retries.
	Retries prometheus.Counter
}

// NewNotify builds notify's collectors and registers them on reg.
func NewNotify(reg prometheus.Registerer) *Notify {
	m := &Notify{
		Notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_notify_notices_total",
			Help: "Changes billing notify acted on, by notice and outcome (sent, refused, no_recipient, duplicate, bad_message).",
		}, []string{"notice", "outcome"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_notify_retries_total",
			Help: "SMTP or MySQL failures billing notify retried.",
		}),
	}
	reg.MustRegister(m.Notices, m.Retries)
	return m
}

// Notice records what notify did with one change.
func (m *Notify) Notice(notice, outcome string) {
	if m == nil {
		return
	}
	m.Notices.WithLabelValues(notice, outcome).Inc()
}

// Retry records one failed attempt notify retries.
func (m *Notify) Retry() {
	if m == nil {
		return
	}
	m.Retries.Inc()
}
