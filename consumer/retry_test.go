package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
)

// jsonHandler applies events whose data.object is an object and refuses
// the rest as permanent, recording every call.
func jsonHandler(rec *calls) consumer.Handler {
	return consumer.HandlerFunc(func(_ context.Context, d consumer.Delivery) error {
		var ev struct {
			ID      string
			Request struct{ ID *string }
			Data    struct{ Object map[string]any }
		}
		err := json.Unmarshal(d.Body, &ev)
		if err != nil {
			err = failure.MarkPermanent(fmt.Errorf("test: malformed event: %w", err))
		}
		rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt, err: err})
		return err
	})
}

func TestMalformedEventIsParkedWhileOthersFlow(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 3)
	rec := &calls{}
	h.start(jsonHandler(rec), h.router(nil), nil)

	start := time.Now()
	// An event the verifier passes (signed, of Stripe's form) and the
	// handler refuses.
	bad := `{"id":"evt_bad","object":"event","type":"invoice.paid","created":1700000000,"request":"not an object","data":{"object":{}}}`
	h.publish("evt_bad", "invoice.paid", []byte(bad))
	for i := range 5 {
		id := fmt.Sprintf("evt_good_%d", i)
		h.publish(id, "customer.created", eventJSON(id, "customer.created"))
	}
	parked := h.getDLQ(1, time.Second)
	got := parked[0]
	if got.MessageId != "evt_bad" || string(got.Body) != bad || got.Type != "invoice.paid" ||
		got.ContentType != "application/json" || got.DeliveryMode != amqp.Persistent || got.AppId != "billing-api" {
		t.Errorf("parked message lost its properties: id %q type %q ct %q mode %d body %q", got.MessageId, got.Type, got.ContentType, got.DeliveryMode, got.Body)
	}
	hd := got.Headers
	if e, _ := hd[broker.HeaderError].(string); !strings.Contains(e, "test: malformed event") {
		t.Errorf("%s = %q, want the handler's error", broker.HeaderError, e)
	}
	for k, want := range map[string]any{
		broker.HeaderErrorClass:  "permanent",
		broker.HeaderAttempt:     int32(1),
		broker.HeaderSourceQueue: h.topo.Work,
		broker.HeaderWorkerHost:  "test-host",
	} {
		if hd[k] != want {
			t.Errorf("header %s = %#v, want %#v", k, hd[k], want)
		}
	}
	for _, k := range []string{broker.HeaderFirstFailedAt, broker.HeaderLastFailedAt, broker.HeaderParkedAt} {
		s, _ := hd[k].(string)
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || at.Before(start.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) || at.Location() != time.UTC {
			t.Errorf("header %s = %q, want an RFC 3339 UTC time of this test (%v)", k, s, err)
		}
	}
	for k := range hd {
		if strings.HasPrefix(k, "x-") && k != "x-delivery-count" {
			t.Errorf("parked message carries broker header %s", k)
		}
	}
	for i := range 5 {
		id := fmt.Sprintf("evt_good_%d", i)
		testenv.Eventually(t, 10*time.Second, func() bool { return rec.succeeded(id) }, "%s handled", id)
	}
	if n := len(rec.get("evt_bad")); n != 1 {
		t.Errorf("malformed event handled %d times, want 1", n)
	}
}

func TestFailingHandlerIsRetriedThroughTheTiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failures int
		delays   []time.Duration
		max      int
	}{
		// Tiers of a few hundred milliseconds, so a retry that skipped its
		// tier would come back visibly early.
		{"one failure", 1, []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}, 5},
		{"four failures through two tiers: the last tier repeats", 4, []time.Duration{300 * time.Millisecond, 500 * time.Millisecond}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, tt.delays, tt.max)
			rec := &calls{}
			handler := consumer.HandlerFunc(func(_ context.Context, d consumer.Delivery) error {
				var err error
				if len(rec.get(d.ID)) < tt.failures {
					err = errors.New("test: lock wait timeout")
				}
				rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt, err: err})
				return err
			})
			h.start(handler, h.router(nil), nil)
			h.publish("evt_flaky", "invoice.paid", eventJSON("evt_flaky", "invoice.paid"))
			testenv.Eventually(t, 10*time.Second, func() bool { return rec.succeeded("evt_flaky") }, "evt_flaky applied")

			cs := rec.get("evt_flaky")
			if len(cs) != tt.failures+1 {
				t.Fatalf("handled %d times, want %d (%d retries)", len(cs), tt.failures+1, tt.failures)
			}
			for i, c := range cs {
				if c.attempt != i+1 {
					t.Errorf("call %d saw attempt %d, want %d", i+1, c.attempt, i+1)
				}
				if i == 0 {
					continue
				}
				want := h.policy.Delay(i)
				got := c.at.Sub(cs[i-1].at)
				t.Logf("retry %d: waited %s in tier %s", i, got.Round(time.Millisecond), want)
				// A lower bound only: a busy machine delays a retry, nothing
				// may bring one back before its tier's TTL (RabbitMQ keeps
				// time in whole milliseconds).
				if got < want-time.Millisecond {
					t.Errorf("retry %d came after %s, before its tier's delay %s", i, got.Round(time.Millisecond), want)
				}
			}
			if n := h.ready(h.topo.DLQ); n != 0 {
				t.Errorf("DLQ holds %d messages, want none", n)
			}
		})
	}
}

func TestExhaustedAttemptsAreParked(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{50 * time.Millisecond}, 3)
	rec := &calls{}
	handler := consumer.HandlerFunc(func(_ context.Context, d consumer.Delivery) error {
		err := fmt.Errorf("test: attempt %d: upstream timeout", d.Attempt)
		rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt, err: err})
		return err
	})
	h.start(handler, h.router(nil), nil)
	h.publish("evt_doomed", "invoice.paid", eventJSON("evt_doomed", "invoice.paid"))
	got := h.getDLQ(1, 3*time.Second)[0]
	if a := got.Headers[broker.HeaderAttempt]; a != int32(3) {
		t.Errorf("%s = %#v, want MAX_ATTEMPTS = 3", broker.HeaderAttempt, a)
	}
	if c := got.Headers[broker.HeaderErrorClass]; c != "transient" {
		t.Errorf("%s = %#v, want transient (exhausted)", broker.HeaderErrorClass, c)
	}
	if e := got.Headers[broker.HeaderError]; e != "test: attempt 3: upstream timeout" {
		t.Errorf("%s = %#v, want the last error", broker.HeaderError, e)
	}
	first, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(got.Headers[broker.HeaderFirstFailedAt]))
	last, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(got.Headers[broker.HeaderLastFailedAt]))
	if span := last.Sub(first); span < 80*time.Millisecond {
		t.Errorf("first failure %s, last %s: want the first one kept across retries", first, last)
	}
	if n := len(rec.get("evt_doomed")); n != 3 {
		t.Errorf("handled %d times, want 3", n)
	}
}

func TestPermanentFailuresAreParkedAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler func(context.Context, consumer.Delivery) error
		errText string
	}{
		{"handler says permanent", func(context.Context, consumer.Delivery) error {
			return failure.MarkPermanent(errors.New("test: currency xyz is not supported"))
		}, "test: currency xyz is not supported"},
		{"handler panics", func(context.Context, consumer.Delivery) error {
			var m map[string]int
			m["boom"]++ // assignment to a nil map
			return nil
		}, "consumer: handler panic: assignment to entry in nil map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, []time.Duration{50 * time.Millisecond}, 5)
			rec := &calls{}
			r := h.start(consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
				rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt})
				return tt.handler(ctx, d)
			}), h.router(nil), nil)
			h.publish("evt_poison", "charge.refunded", eventJSON("evt_poison", "charge.refunded"))
			got := h.getDLQ(1, time.Second)[0]
			if c := got.Headers[broker.HeaderErrorClass]; c != "permanent" {
				t.Errorf("%s = %#v, want permanent", broker.HeaderErrorClass, c)
			}
			if a := got.Headers[broker.HeaderAttempt]; a != int32(1) {
				t.Errorf("%s = %#v, want 1", broker.HeaderAttempt, a)
			}
			if e := got.Headers[broker.HeaderError]; e != tt.errText {
				t.Errorf("%s = %#v, want %q", broker.HeaderError, e, tt.errText)
			}
			h.quiet(r) // a wrongly scheduled retry would be in its tier or back
			if n := len(rec.get("evt_poison")); n != 1 {
				t.Errorf("handled %d times, want 1", n)
			}
		})
	}
}

func TestRetryPublishFailureKeepsTheEvent(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	// Without its binding the tier is unroutable: every retry publish is
	// returned by the broker and so not confirmed.
	if err := h.ch.QueueUnbind(h.topo.TierQueue(0), h.topo.TierName(0), h.topo.Retry, nil); err != nil {
		t.Fatal(err)
	}
	rec := &calls{}
	handler := consumer.HandlerFunc(func(_ context.Context, d consumer.Delivery) error {
		var err error
		if len(rec.get(d.ID)) == 0 {
			err = errors.New("test: transient")
		}
		rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt, err: err})
		return err
	})
	router := &failures{Failures: h.router(nil)}
	first := h.start(handler, router, nil)
	id := billingtest.NewEventID()
	h.publish(id, "invoice.paid", eventJSON(id, "invoice.paid"))
	testenv.Eventually(t, 10*time.Second, func() bool { return len(rec.get(id)) == 1 }, "first delivery")
	testenv.Eventually(t, 10*time.Second, func() bool { return router.n.Load() >= 3 }, "three attempts to republish")
	if n := h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.DLQ); n != 0 {
		t.Fatalf("tier + DLQ hold %d messages, want none", n)
	}
	// The consumer still holds it unacked: stopping it hands it back.
	first.stop(t, 5*time.Second)
	testenv.Eventually(t, 10*time.Second, func() bool { return h.ready(h.topo.Work) == 1 }, "the event back in the work queue")
	if n := len(rec.get(id)); n != 1 {
		t.Fatalf("handled %d times while the tier was unroutable, want 1", n)
	}

	if err := h.ch.QueueBind(h.topo.TierQueue(0), h.topo.TierName(0), h.topo.Retry, false, nil); err != nil {
		t.Fatal(err)
	}
	h.start(handler, h.router(nil), nil)
	testenv.Eventually(t, 10*time.Second, func() bool { return rec.succeeded(id) }, "%s applied", id)
	cs := rec.get(id)
	if len(cs) != 2 || cs[1].attempt != 1 {
		t.Errorf("calls = %+v, want a redelivery of the same fresh attempt", cs)
	}
}

func TestShutdownFinishesInFlightEvents(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	started := make(chan struct{})
	finished := make(chan struct{})
	handler := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		close(started)
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		close(finished)
		return nil
	})
	r := h.start(handler, h.router(nil), func(c *consumer.Config) { c.ShutdownTimeout = 2 * time.Second })
	h.publish("evt_slow", "invoice.paid", eventJSON("evt_slow", "invoice.paid"))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never started")
	}
	begin := time.Now()
	r.stop(t, 10*time.Second) // catches a hang; the wait itself is logged below
	select {
	case <-finished:
	default:
		t.Fatal("Run returned before the in-flight handler finished")
	}
	t.Logf("Run returned %s after the cancel", time.Since(begin).Round(time.Millisecond))
	h.idle(h.topo.Work)
	if n := h.ready(h.topo.Work); n != 0 {
		t.Errorf("work queue holds %d messages after shutdown: the in-flight event was not acked", n)
	}
}

func TestShutdownBoundLeavesStuckEventsForRedelivery(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	started := make(chan struct{}, 1)
	handler := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		started <- struct{}{}
		<-ctx.Done() // stuck until the shutdown bound cancels it
		return ctx.Err()
	})
	r := h.start(handler, h.router(nil), func(c *consumer.Config) { c.ShutdownTimeout = 300 * time.Millisecond })
	h.publish("evt_stuck", "invoice.paid", eventJSON("evt_stuck", "invoice.paid"))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never started")
	}
	r.stop(t, 5*time.Second) // the handler never returns: only the bound ends Run
	testenv.Eventually(t, 10*time.Second, func() bool { return h.ready(h.topo.Work) == 1 }, "the stuck event back in the work queue")
	if n := h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("tier + DLQ hold %d messages: a canceled handler must not be retried or parked", n)
	}
}

// failures counts the calls of Fail: each is an attempt to publish a
// failed event's copy.
type failures struct {
	consumer.Failures
	n atomic.Int64
}

func (f *failures) Fail(ctx context.Context, d amqp.Delivery, cause error) (failure.Decision, error) {
	f.n.Add(1)
	return f.Failures.Fail(ctx, d, cause)
}

func TestConnectionLossDropsInFlightAndResumes(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	rec := &calls{}
	var once sync.Once
	inFlight := make(chan struct{})
	handler := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		if d.ID == "evt_cut" {
			first := false
			once.Do(func() { first = true })
			if first {
				close(inFlight)
				<-ctx.Done() // the connection dies under this handler
				rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt, err: ctx.Err()})
				return ctx.Err()
			}
		}
		rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt})
		return nil
	})
	h.start(handler, h.router(nil), nil)
	h.publish("evt_cut", "invoice.paid", eventJSON("evt_cut", "invoice.paid"))
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never started")
	}
	closeConnection(t, t.Name()+" consumer")

	testenv.Eventually(t, 10*time.Second, func() bool { return rec.succeeded("evt_cut") }, "evt_cut redelivered and applied after the reconnect")
	h.publish("evt_after", "invoice.paid", eventJSON("evt_after", "invoice.paid"))
	testenv.Eventually(t, 5*time.Second, func() bool { return rec.succeeded("evt_after") }, "a new event applied after the reconnect")
	cs := rec.get("evt_cut")
	if len(cs) != 2 || cs[1].attempt != 1 {
		t.Errorf("evt_cut calls = %+v, want the canceled one then a redelivery of attempt 1", cs)
	}
	if n := h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("tier + DLQ hold %d messages: a handler canceled by a lost channel must not be retried or parked", n)
	}
}

// closeConnection force-closes the broker connection with that client
// name through the management API, as an operator (or a network) would.
func closeConnection(t *testing.T, name string) {
	t.Helper()
	var target string
	testenv.Eventually(t, 10*time.Second, func() bool {
		var conns []struct {
			Name             string `json:"name"`
			UserProvidedName string `json:"user_provided_name"`
		}
		if err := testenv.Management(http.MethodGet, "/api/connections?columns=name,user_provided_name", nil, &conns); err != nil {
			t.Fatalf("list connections: %v", err)
		}
		for _, c := range conns {
			if c.UserProvidedName == name {
				target = c.Name
			}
		}
		return target != ""
	}, "connection %q listed by the management API", name)
	if err := testenv.Management(http.MethodDelete, "/api/connections/"+url.PathEscape(target), nil, nil); err != nil {
		t.Fatalf("close connection: %v", err)
	}
}

// An event parked by the work queue's delivery limit carries x-death naming
// the work queue; the UI's "Move messages" keeps that header. If a retry
// copied it, the delay tier's dead-lettering back into the work queue would
// be a cycle without a rejection, and RabbitMQ would drop the event
// silently. The retry must reach the handler.
func TestRetryOfAMovedDeliveryLimitParkingIsNotDroppedAsACycle(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	rec := &calls{}
	handler := consumer.HandlerFunc(func(_ context.Context, d consumer.Delivery) error {
		var err error
		if len(rec.get(d.ID)) == 0 {
			err = errors.New("test: lock wait timeout")
		}
		rec.add(d.ID, call{at: time.Now(), attempt: d.Attempt, err: err})
		return err
	})
	h.start(handler, h.router(nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// What "Move messages" delivers: the default exchange, the work queue
	// as routing key, every header of the parked message kept.
	err := h.events.Publish(ctx, "", h.topo.Work, testenv.Signed(amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent,
		MessageId: "evt_moved", Type: "invoice.paid", Body: eventJSON("evt_moved", "invoice.paid"),
		Headers: amqp.Table{"x-death": []any{amqp.Table{
			"queue": h.topo.Work, "reason": "delivery_limit", "count": int64(1),
			"exchange": h.topo.Events, "routing-keys": []any{"invoice.paid"}, "time": time.Now().UTC().Truncate(time.Second),
		}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return rec.succeeded("evt_moved") }, "evt_moved applied after its retry")
	if n := len(rec.get("evt_moved")); n != 2 {
		t.Errorf("handled %d times, want 2 (one failure, one retry)", n)
	}
}
