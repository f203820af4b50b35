package consumer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
)

// recorder is an Observer that keeps every outcome by event type.
type recorder struct {
	mu  sync.Mutex
	all []consumer.Outcome
}

func (r *recorder) Observe(o consumer.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, o)
}

func (r *recorder) outcomes() []consumer.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]consumer.Outcome(nil), r.all...)
}

// TestOutcomeSaysWhatBecameOfTheEvent checks what an Observer learns: the
// handler's own result of an acked event (Process reports ledger.Result),
// the retry decision of a retried or parked one, and whether a delivery is
// a replay from the DLQ and through which exchange.
func TestOutcomeSaysWhatBecameOfTheEvent(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{50 * time.Millisecond}, 2)
	store := testenv.Store(t)
	proc := process(ledger.NewProcessor(store, nil))
	// flaky fails its first attempt (transient), then succeeds;
	// broken always fails permanently.
	handler := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		switch d.Type {
		case "test.flaky":
			if d.Attempt == 1 {
				return errors.New("not yet")
			}
			d.Report("flaky-ok")
			return nil
		case "test.broken":
			return failure.MarkPermanent(errors.New("never"))
		}
		return proc.HandleEvent(ctx, d)
	})
	rec := &recorder{}
	r := h.start(handler, h.router(store), func(c *consumer.Config) { c.Observer = rec; c.Concurrency = 1 })

	created := billingtest.Event("evt_o_1", "customer.created", time.Unix(1700000000, 0), billingtest.Customer("cus_o_1", "o@example.com"))
	unknown := billingtest.Event("evt_o_2", "balance.available", time.Unix(1700000001, 0), map[string]any{"object": "balance"})
	h.publish("evt_o_1", "customer.created", created)
	h.publish("evt_o_1", "customer.created", created)
	h.publish("evt_o_2", "balance.available", unknown)
	h.publish("evt_o_3", "test.flaky", eventJSON("evt_o_3", "test.flaky"))
	h.publish("evt_o_4", "test.broken", eventJSON("evt_o_4", "test.broken"))
	// A replay as the UI's "Move messages" does it: the default exchange,
	// routing key = the work queue.
	if err := h.ch.PublishWithContext(context.Background(), "", h.topo.Work, false, false, testenv.Signed(amqp.Publishing{
		MessageId: "evt_o_5", Type: "customer.created", DeliveryMode: amqp.Persistent,
		Body: billingtest.Event("evt_o_5", "customer.created", time.Unix(1700000002, 0), billingtest.Customer("cus_o_5", "p@example.com")),
	})); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return len(rec.outcomes()) >= 7 }, "7 outcomes")
	h.quiet(r) // nothing more may come

	type key struct{ typ, result, handled string }
	got := map[key]int{}
	for _, o := range rec.outcomes() {
		got[key{o.EventType, string(o.Result), string(o.Handled)}]++
		switch {
		case o.EventType == "test.flaky" && o.Result == "retried":
			if o.Decision.Parked || o.Decision.Tier != 0 || o.Decision.Class != failure.Transient || o.Attempt != 1 {
				t.Errorf("retried outcome decision = %+v attempt %d, want tier 0 transient attempt 1", o.Decision, o.Attempt)
			}
		case o.EventType == "test.broken":
			if !o.Decision.Parked || o.Decision.Class != failure.Permanent {
				t.Errorf("parked outcome decision = %+v, want parked permanent", o.Decision)
			}
		case o.Origin.Replay():
			if o.Origin != broker.Moved || o.Handled != consumer.Processed {
				t.Errorf("replayed outcome: origin %q handled %q, want moved and processed", o.Origin, o.Handled)
			}
		}
		if o.Origin.Replay() != (o.Result == consumer.Acked && o.EventType == "customer.created" && o.Origin == broker.Moved) {
			t.Errorf("outcome %+v: replay = %v", o, o.Origin.Replay())
		}
		if o.Duration <= 0 {
			t.Errorf("outcome %+v: no duration", o)
		}
	}
	want := map[key]int{
		{"customer.created", "acked", "processed"}: 2, // evt_o_1 and the replayed evt_o_5
		{"customer.created", "acked", "duplicate"}: 1,
		{"balance.available", "acked", "ignored"}:  1,
		{"test.flaky", "retried", ""}:              1,
		{"test.flaky", "acked", "flaky-ok"}:        1,
		{"test.broken", "parked", ""}:              1,
	}
	if len(got) != len(want) {
		t.Errorf("outcomes = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("outcome %v seen %d times, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

func TestReportOutsideAConsumerIsANoOp(t *testing.T) {
	t.Parallel()
	consumer.Delivery{ID: "evt_1"}.Report("processed") // must not panic
}
