// Package metrics owns every Prometheus collector of the billing system,
// each defined once here and registered on a registry the caller owns: there
// is no global registry and no init side effect, so every process and every
// test builds its own with New.
//
// It also holds the adapters that feed the collectors from the worker
// (EventObserver for the consumer's outcomes,
// QueueDepths for the poller) and Server, the worker's small HTTP server
// for /metrics, /healthz and /readyz. The api serves Handler on its own
// server.
//
// Components take a *Metrics and call its methods; the methods are safe on a
// nil *Metrics, so a component built without metrics (a unit test) needs no
// special case.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/buildinfo"
)

// Sources of a replayed (re-driven) parked event: the "source" label of
// billing_events_replayed_total, the broker.Origin's name.
const (
	// Through the default exchange without our source header: the UI's
	// "Move messages" shovel.
	ReplayMove = string(broker.Moved)
	// Through the DLQ's dead-letter exchange: the UI's "Get messages,
	// Reject requeue false".
	ReplayReject = string(broker.Rejected)
	// `billing dlq replay` and `billing sweep`: the default exchange with
	// billing-replay-source.
	ReplayCLI   = string(broker.ReplayedByCLI)
	ReplaySweep = string(broker.Redriven)
	// The broker's own dead-lettering out of the DLQ (x-death reason
	// delivery_limit, expired or maxlen): no person sent it back.
	ReplayDeadLettered = string(broker.DeadLettered)
)

// Buckets of the publish-confirm latency: 1 ms to 5 s, the PUBLISH_TIMEOUT default.
var publishBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Buckets of the processing latency: 1 ms to 10 s (one MySQL transaction,
// possibly retried on a deadlock).
var processingBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics holds every collector. The fields are exported for tests and for
// callers that need a label the helpers do not cover; prefer the methods.
type Metrics struct {
	// Webhooks counts answered webhook requests by outcome (accepted,
	// bad_signature, too_large, unavailable, ...) and HTTP status code.
	Webhooks *prometheus.CounterVec
	// PublishConfirm is the time from publish to the broker's confirm (or
	// the failure) for one webhook.
	PublishConfirm prometheus.Histogram
	// EventsProcessed counts events at the worker by Stripe event type and
	// outcome: a consumer.Handled for an acked event, else the
	// consumer.Result.
	EventsProcessed *prometheus.CounterVec
	// Processing is the time one delivery spends in the worker, from
	// receipt to ack, retry or park.
	Processing prometheus.Histogram
	// Retries counts events sent to a delay tier, by tier name ("10s").
	Retries *prometheus.CounterVec
	// Parked counts events sent to the DLQ by class (permanent, exhausted, ...).
	Parked *prometheus.CounterVec
	// Replayed counts parked events that came back to the work queue, by
	// source (the Replay* constants).
	Replayed *prometheus.CounterVec
	// SweepResults counts what `billing sweep` did with each parked event
	// it looked at (redriven, skipped_young, skipped_permanent, ...).
	SweepResults *prometheus.CounterVec
	// SweepInterval is the period of `sweep --every`, for the alert on a
	// sweep that stopped succeeding.
	SweepInterval prometheus.Gauge
	// SweepLastSuccess is when this process's last sweep pass without an
	// error ended (Unix seconds); 0 until one has.
	SweepLastSuccess prometheus.Gauge
	// PayloadsPruned counts the ledger payloads the sweep emptied under
	// LEDGER_PAYLOAD_RETENTION.
	PayloadsPruned prometheus.Counter
	// AuditDrift is how many objects the last `billing audit` found
	// differing from Stripe's, and AuditLast when it ran (Unix seconds),
	// as the sweep read them; unset until an audit ran.
	AuditDrift, AuditLast prometheus.Gauge
	// QueueDepth is the number of messages in each queue of the topology
	// (work, each retry tier, DLQ), set by a QueueDepthPoller.
	QueueDepth *prometheus.GaugeVec
	// QueueDepthErrors counts failed polls of the queue depths: a rising
	// value means QueueDepth is stale.
	QueueDepthErrors prometheus.Counter
	// OldestParkedAge is how long ago the oldest event still parked (dead
	// in the ledger) was first received; 0 when none is.
	OldestParkedAge prometheus.Gauge
	// DeadEvents is the number of events dead in the ledger. More of them
	// than messages in all the queues means parked events went somewhere
	// else (a mistyped "Move messages" destination).
	DeadEvents prometheus.Gauge
	// DBErrors counts database errors by class (deadlock, lock_wait_timeout,
	// unavailable, other, ...).
	DBErrors *prometheus.CounterVec
	// Unverified counts messages parked because the worker could not
	// verify them as Stripe's, by verify.Reason: a rise means someone
	// publishes to the broker by hand, or a secret or key is wrong.
	Unverified *prometheus.CounterVec
	// StripeCalls counts calls to Stripe's API by purpose (verify, tie:
	// the worker's fetches; reconcile: the sweep's) and outcome (ok,
	// not_found, refused, rate_limited, error; cache_hit and limited made
	// no call).
	StripeCalls *prometheus.CounterVec
	// ChangesRelayed counts the changes `billing relay` published and
	// the broker confirmed; ChangeOutboxDepth and ChangeOutboxLag are the
	// outbox's unpublished rows and the age of the oldest, in seconds.
	ChangesRelayed                     prometheus.Counter
	ChangeOutboxDepth, ChangeOutboxLag prometheus.Gauge
	// BuildInfo is 1, labelled with the module version, Go version and VCS
	// revision of the running binary.
	BuildInfo *prometheus.GaugeVec
}

// New builds every collector and registers it on reg. It panics only if a
// collector is registered twice on reg, which is a programming error.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_webhooks_total",
			Help: "Webhook requests answered, by outcome and HTTP status code.",
		}, []string{"outcome", "code"}),
		PublishConfirm: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "billing_publish_confirm_duration_seconds",
			Help:    "Time from publishing a webhook event to the broker's confirm or the failure.",
			Buckets: publishBuckets,
		}),
		EventsProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_events_processed_total",
			Help: "Events handled by the worker, by Stripe event type and outcome (processed, ignored, duplicate, retried, parked, dropped).",
		}, []string{"type", "outcome"}),
		Processing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "billing_event_processing_duration_seconds",
			Help:    "Time the worker spends on one delivery, from receipt to ack, retry or park.",
			Buckets: processingBuckets,
		}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_retries_total",
			Help: "Events sent to a retry delay tier, by tier.",
		}, []string{"tier"}),
		Parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_events_parked_total",
			Help: "Events parked in the dead-letter queue, by error class.",
		}, []string{"class"}),
		Replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_events_replayed_total",
			Help: "Parked events that came back to the work queue, by source (move, reject, publish, dlq-cli, sweep).",
		}, []string{"source"}),
		SweepResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_sweep_results_total",
			Help: "Parked events examined by the sweep, by result.",
		}, []string{"result"}),
		PayloadsPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_ledger_payloads_pruned_total",
			Help: "Payloads of processed or ignored events emptied by the sweep's payload retention; the rows stay.",
		}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "billing_queue_messages",
			Help: "Messages in each queue of the topology (work, retry tiers, DLQ), as last polled.",
		}, []string{"queue"}),
		QueueDepthErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_queue_depth_poll_errors_total",
			Help: "Failed polls of the queue depths; while it rises billing_queue_messages is stale.",
		}),
		SweepInterval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_sweep_interval_seconds",
			Help: "The period of sweep --every, in seconds.",
		}),
		SweepLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_sweep_last_success_timestamp_seconds",
			Help: "When the last sweep pass without an error ended, Unix seconds (sweep --every).",
		}),
		AuditDrift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_audit_drift_objects",
			Help: "Objects the last billing audit found differing from Stripe's and left so, as the sweep read it.",
		}),
		AuditLast: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_audit_last_timestamp_seconds",
			Help: "When the last billing audit ended, Unix seconds, as the sweep read it.",
		}),
		OldestParkedAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_oldest_parked_event_age_seconds",
			Help: "Age of the oldest event parked in the DLQ and dead in the ledger, since it was first received; 0 when none.",
		}),
		DeadEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_dead_events",
			Help: "Events dead in the ledger: parked, or moved out of the DLQ and not processed yet.",
		}),
		DBErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_database_errors_total",
			Help: "Database errors seen by the worker, by class.",
		}, []string{"class"}),
		Unverified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_events_unverified_total",
			Help: "Messages parked as unverified: neither signed by Stripe nor known to Stripe's Events API, or of a form Stripe never sends; by reason.",
		}, []string{"reason"}),
		StripeCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_stripe_calls_total",
			Help: "Calls to Stripe's API, by purpose (verify, tie, reconcile) and outcome (ok, not_found, refused, rate_limited, error; cache_hit and limited made no call).",
		}, []string{"purpose", "outcome"}),
		ChangesRelayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_changes_published_total",
			Help: "Changes the relay published to the change feed and the broker confirmed.",
		}),
		ChangeOutboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_change_outbox_rows",
			Help: "Changes in the outbox not published yet, as the relay last measured.",
		}),
		ChangeOutboxLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_change_outbox_lag_seconds",
			Help: "Age of the oldest change not published yet; 0 when none waits.",
		}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "billing_build_info",
			Help: "Always 1; the labels describe the running binary.",
		}, []string{"version", "goversion", "revision"}),
	}
	reg.MustRegister(
		m.Webhooks, m.PublishConfirm, m.EventsProcessed, m.Processing,
		m.Retries, m.Parked, m.Replayed, m.SweepResults, m.SweepInterval, m.SweepLastSuccess, m.AuditDrift, m.AuditLast, m.PayloadsPruned,
		m.QueueDepth, m.QueueDepthErrors, m.OldestParkedAge, m.DeadEvents, m.DBErrors, m.BuildInfo,
		m.Unverified, m.StripeCalls, m.ChangesRelayed, m.ChangeOutboxDepth, m.ChangeOutboxLag,
	)
	bi := buildinfo.Read()
	m.BuildInfo.WithLabelValues(bi.Version, bi.GoVersion, bi.Revision).Set(1)
	// Every source starts at zero, so that rate() sees the series from the
	// first scrape. A hand-published copy ("Publish message") is a fresh
	// event to the worker, not a replay.
	for _, o := range broker.Origins {
		m.Replayed.WithLabelValues(string(o))
	}
	return m
}

// NewRegistry returns a fresh registry holding the Go runtime and process
// collectors, ready for New and Handler.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg in the Prometheus exposition format. A collector that
// fails does not hide the others.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Webhook records one answered webhook request.
func (m *Metrics) Webhook(outcome string, code int) {
	if m == nil {
		return
	}
	m.Webhooks.WithLabelValues(outcome, strconv.Itoa(code)).Inc()
}

// ObservePublish records the time one publish took to be confirmed or to fail.
func (m *Metrics) ObservePublish(d time.Duration) {
	if m == nil {
		return
	}
	m.PublishConfirm.Observe(d.Seconds())
}

// Event records one delivery handled by the worker: its type, its outcome
// (a consumer.Handled or consumer.Result) and the time it took.
func (m *Metrics) Event(eventType, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	if eventType == "" {
		eventType = "unknown"
	}
	m.EventsProcessed.WithLabelValues(eventType, outcome).Inc()
	m.Processing.Observe(d.Seconds())
}

// Retry records one event sent to the delay tier named tier.
func (m *Metrics) Retry(tier string) {
	if m == nil {
		return
	}
	m.Retries.WithLabelValues(tier).Inc()
}

// Park records one event parked in the DLQ with the error class class.
func (m *Metrics) Park(class string) {
	if m == nil {
		return
	}
	m.Parked.WithLabelValues(class).Inc()
}

// Unverify records one message parked as unverified, for reason (a
// verify.Reason).
func (m *Metrics) Unverify(reason string) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = "other"
	}
	m.Unverified.WithLabelValues(reason).Inc()
}

// StripeCall records one fetch from Stripe's API: its purpose and outcome
// (reconcile.Purpose*, reconcile.Outcome*; reconcile.FetcherConfig's
// Observe).
func (m *Metrics) StripeCall(purpose, outcome string) {
	if m == nil {
		return
	}
	m.StripeCalls.WithLabelValues(purpose, outcome).Inc()
}

// Replay records one parked event back in the work queue from source (a
// Replay* constant).
func (m *Metrics) Replay(source string) {
	if m == nil {
		return
	}
	m.Replayed.WithLabelValues(source).Inc()
}

// Sweep records the sweep's result for one parked event.
func (m *Metrics) Sweep(result string) {
	if m == nil {
		return
	}
	m.SweepResults.WithLabelValues(result).Inc()
}

// DBError records one database error of class class.
func (m *Metrics) DBError(class string) {
	if m == nil {
		return
	}
	m.DBErrors.WithLabelValues(class).Inc()
}

// ObserveRequest implements api.Observer: a request to the "webhook" route
// counts in billing_webhooks_total; probes and unknown paths do not.
func (m *Metrics) ObserveRequest(route, outcome string, status int, _ time.Duration) {
	if route != "webhook" {
		return
	}
	m.Webhook(outcome, status)
}

// ChangesPublished records n changes the relay published.
func (m *Metrics) ChangesPublished(n int) {
	if m == nil {
		return
	}
	m.ChangesRelayed.Add(float64(n))
}

// ChangeBacklog records the outbox's backlog as the relay measured it.
func (m *Metrics) ChangeBacklog(depth int64, lag time.Duration) {
	if m == nil {
		return
	}
	m.ChangeOutboxDepth.Set(float64(depth))
	m.ChangeOutboxLag.Set(lag.Seconds())
}
