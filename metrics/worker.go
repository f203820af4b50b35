package metrics

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/verify"
)

// EventObserver turns the consumer's outcomes into the event metrics:
// billing_events_processed_total, the processing latency, retries by tier,
// parked events by class (unverified ones by reason too) and replays by the way they came back.
type EventObserver struct {
	m       *Metrics
	topo    broker.Topology
	handled map[string]bool
}

// OtherType is the "type" label of every event type the worker has no
// handler for: the type comes from the message, which anyone with access
// to the broker can write, so only the handled types get series of their own.
const OtherType = "other"

// NewEventObserver returns the consumer.Observer of a worker consuming
// topo's work queue whose handlers take the event types handled
// (ledger.Processor.Handled).
func NewEventObserver(m *Metrics, topo broker.Topology, handled []string) *EventObserver {
	e := &EventObserver{m: m, topo: topo, handled: make(map[string]bool, len(handled))}
	for _, t := range handled {
		e.handled[t] = true
	}
	if m == nil {
		return e
	}
	// The retries, parkings and database errors a worker can have start at
	// zero, so that rate() and the dashboard's panels see the series from
	// the first scrape rather than from the first failure.
	for i := range topo.Delays {
		m.Retries.WithLabelValues(topo.TierName(i))
	}
	for _, c := range []failure.Class{failure.Transient, failure.Permanent, failure.Schema, failure.Unverified} {
		m.Parked.WithLabelValues(string(c))
	}
	for _, c := range []string{models.ErrorUnavailable, models.ErrorDeadlock, models.ErrorLockWaitTimeout, models.ErrorOther} {
		m.DBErrors.WithLabelValues(c)
	}
	return e
}

// Observe records one delivery's outcome. An acked event counts under the
// consumer.Handled its handler reported (processed, ignored, duplicate,
// preview). A dropped
// delivery comes back, so its replay is counted when it is finally handled.
func (e *EventObserver) Observe(o consumer.Outcome) {
	outcome := string(o.Result)
	switch o.Result {
	case consumer.Acked:
		outcome = string(o.Handled)
		if outcome == "" {
			outcome = string(consumer.Processed)
		}
	case consumer.Retried:
		tier := "unknown"
		if o.Decision.Tier >= 0 && o.Decision.Tier < len(e.topo.Delays) {
			tier = e.topo.TierName(o.Decision.Tier)
		}
		e.m.Retry(tier)
	case consumer.Parked:
		e.m.Park(string(o.Decision.Class))
		if o.Decision.Class == failure.Unverified {
			e.m.Unverify(string(verify.ReasonOf(o.Cause)))
		}
	}
	if o.Origin.Replay() && o.Result != consumer.Dropped {
		e.m.Replay(string(o.Origin))
	}
	eventType := o.EventType
	if !e.handled[eventType] {
		eventType = OtherType
	}
	e.m.Event(eventType, outcome, o.Duration)
}

// Connection is an open AMQP connection when there is one: broker.Conn.
type Connection interface {
	Connection() (*amqp.Connection, error)
}

// QueueDepths returns a DepthFunc that reads the ready messages of each of
// queues by declaring it passively on a short-lived channel of conn.
func QueueDepths(conn Connection, queues []string) DepthFunc {
	return func(ctx context.Context) (map[string]int, error) {
		c, err := conn.Connection()
		if err != nil {
			return nil, err
		}
		ch, err := c.Channel()
		if err != nil {
			return nil, fmt.Errorf("metrics: queue depths: open channel: %w", err)
		}
		defer ch.Close()
		out := make(map[string]int, len(queues))
		for _, q := range queues {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			if err != nil {
				return nil, fmt.Errorf("metrics: queue depths: %s: %w", q, err)
			}
			out[q] = st.Messages
		}
		return out, nil
	}
}

// RecordSweep counts one sweep pass's results in
// billing_sweep_results_total. Its re-drives are not counted as replays
// here: the worker counts them when they arrive, as it counts every replay.
func (m *Metrics) RecordSweep(rep maintenance.Report) {
	if rep.Skipped {
		m.Sweep("skipped_locked")
		return
	}
	counts := map[string]int{"redriven": len(rep.Redriven), "permanent": rep.Permanent, "out_of_redrives": rep.OutOfRedrives, "waiting": rep.Waiting, "error": len(rep.Errors)}
	if r := rep.Reconciled; r != nil {
		counts["reconciled"] = r.Enqueued
	}
	for result, n := range counts {
		m.SweepResults.WithLabelValues(result).Add(float64(n))
	}
	m.PayloadsPruned.Add(float64(rep.Pruned))
	if a := rep.Audit; a != nil {
		m.AuditDrift.Set(float64(a.Differ))
		m.AuditLast.Set(float64(a.At.UnixNano()) / 1e9)
	}
	if len(rep.Errors) == 0 {
		m.SweepLastSuccess.Set(float64(rep.At.UnixNano()) / 1e9)
	}
}
