package metrics

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
)

// EventObserver turns the consumer's outcomes into the event metrics:
// billing_events_processed_total, the processing latency, retries by tier,
// parked events by class and replays by the way they came back.
type EventObserver struct {
	m    *Metrics
	topo broker.Topology
}

// NewEventObserver returns the consumer.Observer of a worker consuming
// topo's work queue.
func NewEventObserver(m *Metrics, topo broker.Topology) *EventObserver {
	return &EventObserver{m: m, topo: topo}
}

// Observe records one delivery's outcome. An acked event counts under the
// result its handler reported (processed, ignored, duplicate). A dropped
// delivery comes back, so its replay is counted when it is finally handled.
func (e *EventObserver) Observe(o consumer.Outcome) {
	outcome := o.Result
	switch o.Result {
	case "acked":
		outcome = o.Handled
		if outcome == "" {
			outcome = OutcomeProcessed
		}
	case OutcomeRetried:
		tier := "unknown"
		if o.Decision.Tier >= 0 && o.Decision.Tier < len(e.topo.Delays) {
			tier = e.topo.TierName(o.Decision.Tier)
		}
		e.m.Retry(tier)
	case OutcomeParked:
		e.m.Park(string(o.Decision.Class))
	}
	if o.Replayed && o.Result != OutcomeDropped {
		switch o.Exchange {
		case "":
			e.m.Replay(ReplayMove)
		case e.topo.Replay:
			e.m.Replay(ReplayReject)
		}
	}
	e.m.Event(o.EventType, outcome, o.Duration)
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
