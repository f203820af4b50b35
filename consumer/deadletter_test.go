package consumer_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestBrokerDeadLetteredReplayIsLogged: a parked event the broker
// dead-letters out of the DLQ (a delivery limit of 1, reached by looks)
// reaches the worker as origin dead_letter, and the worker warns with the
// reason: nobody replayed it.
func TestBrokerDeadLetteredReplayIsLogged(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{time.Minute}, 3)
	var log testenv.SyncBuffer
	h.logger = slog.New(slog.NewTextHandler(&log, nil))
	testenv.QueuePolicy(t, h.topo.DLQ, map[string]any{"delivery-limit": 1})
	rec := &recorder{}
	h.start(consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { return nil }), h.router(nil), func(c *consumer.Config) { c.Observer = rec })

	id := billingtest.NewEventID()
	if err := h.ch.PublishWithContext(context.Background(), "", h.topo.DLQ, false, false, testenv.Signed(amqp.Publishing{
		MessageId: id, Type: "test.parked", DeliveryMode: amqp.Persistent, Body: eventJSON(id, "test.parked"),
	})); err != nil {
		t.Fatal(err)
	}
	// Look until the broker dead-letters it (each look returns it
	// asynchronously: wait until it is ready again).
	for range 5 {
		testenv.Eventually(t, 5*time.Second, func() bool { return h.ready(h.topo.DLQ) == 1 || len(rec.outcomes()) > 0 }, "%s ready again", id)
		d, ok, err := h.ch.Get(h.topo.DLQ, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return len(rec.outcomes()) == 1 }, "the worker to take %s", id)
	if o := rec.outcomes()[0]; o.Origin != broker.DeadLettered || o.Result != consumer.Acked {
		t.Errorf("outcome %+v, want origin dead_letter, acked", o)
	}
	if !strings.Contains(log.String(), `msg="parked event dead-lettered out of the DLQ by the broker, not replayed by a person"`) ||
		!strings.Contains(log.String(), "dead_letter_reason=delivery_limit") || !strings.Contains(log.String(), "event_id="+id) {
		t.Errorf("worker log lacks the warning with its reason:\n%s", log.String())
	}
}
