package consumer_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/internal/testenv"
)

// handled counts acked events by the ledger.Result they reported.
type handled struct{ counter }

func (h *handled) Observe(o consumer.Outcome) {
	h.counter.Observe(o)
	if o.Result == consumer.Acked {
		h.counter.Observe(consumer.Outcome{Result: consumer.Result("handled:" + string(o.Handled))})
	}
}

// TestSchemaFailureIsParkedAtOnce: through the consumer, an event whose
// payload lacks a field its handler cannot do without is parked on its
// first attempt with class schema, the reason naming the field and the
// API version; an invoice.upcoming (no id) is acked as a preview, not
// parked.
func TestSchemaFailureIsParkedAtOnce(t *testing.T) {
	t.Parallel()
	const v = "2025-05-28.basil"
	h := setup(t, []time.Duration{100 * time.Millisecond}, 3)
	store := openStore(t, testenv.Database(t))
	outcomes := &handled{}
	h.start(process(ledger.NewProcessor(store, nil)), h.router(store), func(c *consumer.Config) { c.Observer = outcomes })

	event := func(id, typ string, object map[string]any) []byte {
		b, err := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "api_version": v,
			"created": 1700000000, "livemode": true, "data": map[string]any{"object": object}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	noStatus := stripefixture.Object(v, "invoice")
	delete(noStatus, "status")
	upcoming := stripefixture.Object(v, "invoice")
	delete(upcoming, "id")
	h.publish("evt_NoStatus", "invoice.paid", event("evt_NoStatus", "invoice.paid", noStatus))
	h.publish("evt_Upcoming", "invoice.upcoming", event("evt_Upcoming", "invoice.upcoming", upcoming))
	for i := range 3 {
		id := fmt.Sprintf("evt_fine_%d", i)
		h.publish(id, "customer.created", billingtest.Event(id, "customer.created", time.Unix(1700000000, 0),
			billingtest.Customer(fmt.Sprintf("cus_fine_%d", i), "x@example.com")))
	}

	got := h.getDLQ(1, 5*time.Second)[0]
	reason := broker.HeaderString(got.Headers, broker.HeaderError)
	if got.MessageId != "evt_NoStatus" || broker.HeaderString(got.Headers, broker.HeaderErrorClass) != "schema" ||
		!strings.Contains(reason, "invoice.status is missing") || !strings.Contains(reason, "API version "+v) {
		t.Errorf("parked %s class %q reason %q, want evt_NoStatus, schema, naming invoice.status and %s",
			got.MessageId, broker.HeaderString(got.Headers, broker.HeaderErrorClass), reason, v)
	}
	if a := broker.HeaderInt(got.Headers, broker.HeaderAttempt); a != 1 {
		t.Errorf("parked on attempt %d, want 1: a schema failure is never retried", a)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 4 && outcomes.get("parked") == 1 }, "4 acked and 1 parked")
	if n := outcomes.get("retried"); n != 0 {
		t.Errorf("%d retries, want none", n)
	}
	if n := outcomes.get("handled:" + string(consumer.Preview)); n != 1 {
		t.Errorf("%d events handled as previews, want 1 (invoice.upcoming)", n)
	}
	if n := h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("DLQ holds %d more events, want none (the preview is not parked)", n)
	}
	if statuses := ledgerStatuses(t, store); statuses["evt_NoStatus"] != "dead" || statuses["evt_Upcoming"] != "ignored" {
		t.Errorf("ledger = %v, want evt_NoStatus dead and evt_Upcoming ignored", statuses)
	}
}

// TestDataErrorIsParkedAsSchema: a genuine event whose field its column
// cannot hold (an email longer than customers.email, a currency that is
// not ASCII) fails the same way on every attempt: MySQL's data error is
// class schema, parked on the first attempt with the reason naming the
// column, never retried; the fine events of the same batches commit.
func TestDataErrorIsParkedAsSchema(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{1, 8} {
		t.Run(fmt.Sprintf("Batch%d", batch), func(t *testing.T) {
			t.Parallel()
			h := setup(t, []time.Duration{100 * time.Millisecond}, 3)
			store := openStore(t, testenv.Database(t))
			outcomes := &handled{}
			h.start(process(ledger.NewProcessor(store, nil)), h.router(store), func(c *consumer.Config) {
				c.Observer = outcomes
				c.BatchSize = batch
				c.Batch = processBatch(ledger.NewProcessor(store, nil))
			})
			created := time.Unix(1700000000, 0)
			long, euro := billingtest.NewEventID(), billingtest.NewEventID()
			euroCustomer := billingtest.Customer("cus_"+euro[4:], "e@example.com")
			euroCustomer["currency"] = "€"
			want := map[string]string{long: "column email", euro: "column currency"}
			h.publish(long, "customer.created", billingtest.Event(long, "customer.created", created,
				billingtest.Customer("cus_"+long[4:], strings.Repeat("a", 600)+"@example.com")))
			h.publish(euro, "customer.created", billingtest.Event(euro, "customer.created", created, euroCustomer))
			for range 3 {
				id := billingtest.NewEventID()
				h.publish(id, "customer.created", billingtest.Event(id, "customer.created", created, billingtest.Customer("cus_"+id[4:], "x@example.com")))
			}
			for _, got := range h.getDLQ(2, 10*time.Second) {
				class, reason := broker.HeaderString(got.Headers, broker.HeaderErrorClass), broker.HeaderString(got.Headers, broker.HeaderError)
				if class != "schema" || !strings.Contains(reason, want[got.MessageId]+" cannot hold") {
					t.Errorf("parked %s class %q reason %q, want schema naming %q", got.MessageId, class, reason, want[got.MessageId])
				}
				if a := broker.HeaderInt(got.Headers, broker.HeaderAttempt); a != 1 {
					t.Errorf("%s parked on attempt %d, want 1: a data error is never retried", got.MessageId, a)
				}
			}
			testenv.Eventually(t, 10*time.Second, func() bool { return outcomes.get("acked") == 3 && outcomes.get("parked") == 2 }, "3 acked and 2 parked")
			if n := outcomes.get("retried"); n != 0 {
				t.Errorf("%d retries, want none", n)
			}
			if statuses := ledgerStatuses(t, store); statuses[long] != "dead" || statuses[euro] != "dead" {
				t.Errorf("ledger = %v, want both dead", statuses)
			}
		})
	}
}
