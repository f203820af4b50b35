package dlq_test

import (
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestBrokerDeadLetteringIsNoPersonsReplay gives the DLQ a delivery limit
// of 1 by policy, as RabbitMQ 4's default of 20 would after enough looks,
// and looks at a parked event with Nack requeue until the broker
// dead-letters it into the work queue; another parked event a person
// sends back with Reject requeue false. The worker reads the first as the
// broker's dead-lettering (reason delivery_limit), the second as the
// person's reject.
func TestBrokerDeadLetteringIsNoPersonsReplay(t *testing.T) {
	t.Parallel()
	e := dlqtest.NewEnv(t, 20)
	testenv.QueuePolicy(t, e.Topo.DLQ, map[string]any{"delivery-limit": 1})

	looked, rejected := billingtest.NewEventID(), billingtest.NewEventID()
	e.Park(t, looked, "invoice.paid", failure.Permanent, time.Now(), nil)
	e.WaitReady(t, e.Topo.DLQ, 1)
	// Each look returns the message asynchronously: wait for it to be
	// ready again (or dead-lettered) before the next.
	for range 5 {
		testenv.Eventually(t, 5*time.Second, func() bool { return e.Ready(t, e.Topo.DLQ)+e.Ready(t, e.Topo.Work) == 1 }, "%s back in a queue", looked)
		if e.Ready(t, e.Topo.Work) == 1 {
			break
		}
		d, ok, err := e.Ch.Get(e.Topo.DLQ, false)
		if err != nil || !ok {
			t.Fatalf("look at %s: %v, %v", looked, ok, err)
		}
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
	}
	e.WaitReady(t, e.Topo.Work, 1)
	e.Park(t, rejected, "invoice.paid", failure.Permanent, time.Now(), nil)
	e.WaitReady(t, e.Topo.DLQ, 1)
	d, ok, err := e.Ch.Get(e.Topo.DLQ, false)
	if err != nil || !ok {
		t.Fatalf("get %s: %v, %v", rejected, ok, err)
	}
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	e.WaitReady(t, e.Topo.Work, 2)

	got := map[string]broker.Attempt{}
	for _, d := range e.TakeAll(t, e.Topo.Work) {
		got[d.MessageId] = broker.ReadAttempt(d, e.Topo)
	}
	if a := got[looked]; a.Origin != broker.DeadLettered || a.DeathReason != "delivery_limit" || !a.Origin.Replay() {
		t.Errorf("the event the broker dead-lettered reads as %+v, want origin dead_letter, reason delivery_limit", a)
	}
	if a := got[rejected]; a.Origin != broker.Rejected || a.DeathReason != "" {
		t.Errorf("the event a person rejected reads as %+v, want origin reject", a)
	}
}
