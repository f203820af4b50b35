package dlq_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
)

// replayWorld is a running worker (the real consumer, router and billing
// processor) whose handler fails the events failing permanently until fixed.
type replayWorld struct {
	*dlqtest.Env
	dsn     string // the world's database
	store   *models.Store
	fixed   atomic.Bool
	mu      sync.Mutex
	results map[string][]string // event id → outcome of each delivery
}

func newReplayWorld(t *testing.T, failing ...string) *replayWorld {
	t.Helper()
	dsn := testenv.Database(t)
	w := &replayWorld{Env: dlqtest.NewEnv(t, 20), dsn: dsn, store: testenv.StoreAt(t, dsn), results: map[string][]string{}}
	proc := ledger.NewProcessor(w.store, quietLogger())
	handler := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		if slices.Contains(failing, d.ID) && !w.fixed.Load() {
			w.record(d.ID, "failed")
			return failure.MarkPermanent(errors.New("billing: customer " + d.ID + " rejected by a bug"))
		}
		res, err := proc.Process(ctx, d.Body)
		if err == nil {
			w.record(d.ID, string(res))
		}
		return err
	})
	router, err := dlq.NewRouter(dlq.RouterConfig{Topology: w.Topo, Policy: retry.Policy{Delays: w.Topo.Delays, MaxAttempts: 3}, Host: "worker-1"},
		quietLogger(), w.Pub, w.store)
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(consumer.Config{Queue: w.Topo.Work, Concurrency: 2, ShutdownTimeout: 2 * time.Second, Name: "replay-test", Verifier: testenv.Verifier(t, nil)},
		quietLogger(), dlqtest.NewEnvSharing(t, w.Env).Conn, handler, router)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer: %v", err)
		}
	})
	return w
}

// sendFailing publishes event id (type typ, creating customer cus) as the
// api does, signed, and waits until the bug has parked it: in the DLQ and
// dead in the ledger (the router marks it after the DLQ confirmed the
// copy). It returns the event's body.
func (w *replayWorld) sendFailing(t *testing.T, id, typ, cus string) []byte {
	t.Helper()
	body := billingtest.Event(id, typ, time.Now(), billingtest.Customer(cus, "ada@example.com"))
	err := w.Pub.Publish(context.Background(), w.Topo.Events, typ, testenv.Signed(amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: typ, Body: body}))
	if err != nil {
		t.Fatal(err)
	}
	w.WaitReady(t, w.Topo.DLQ, 1)
	testenv.Eventually(t, 10*time.Second, func() bool {
		var ev models.StripeEvent
		return w.store.DB().Where("id = ?", id).Take(&ev).Error == nil && ev.Status == models.EventDead
	}, "ledger row %s dead", id)
	return body
}

func (w *replayWorld) record(id, outcome string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.results[id] = append(w.results[id], outcome)
}

func (w *replayWorld) outcomes(id string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.results[id]...)
}

func (w *replayWorld) ledger(t *testing.T, id string) models.StripeEvent {
	t.Helper()
	var ev models.StripeEvent
	if err := w.store.DB().Where("id = ?", id).Take(&ev).Error; err != nil {
		t.Fatalf("ledger row %s: %v", id, err)
	}
	return ev
}

func (w *replayWorld) customers(t *testing.T, stripeID string) int {
	t.Helper()
	var n int64
	if err := w.store.DB().Model(&models.Customer{}).Where("stripe_id = ?", stripeID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// The three ways a support agent sends a parked event back in the RabbitMQ
// management UI, driven through the management HTTP API as the UI does.
var uiReplays = map[string]func(t *testing.T, w *replayWorld, typ string, body []byte){
	// Queues → <dlq> → "Move messages": the UI creates a dynamic shovel
	// "Move from <queue>" that deletes itself once the queue length it saw
	// has been moved.
	"move messages": func(t *testing.T, w *replayWorld, _ string, _ []byte) {
		name := "Move from " + w.Topo.DLQ
		path := "/api/parameters/shovel/%2F/" + url.PathEscape(name)
		t.Cleanup(func() { _ = testenv.Management(http.MethodDelete, path, nil, nil) })
		err := testenv.Management(http.MethodPut, path, map[string]any{
			"vhost": "/", "component": "shovel", "name": name,
			"value": map[string]any{
				"src-uri": "amqp:///%2F", "src-queue": w.Topo.DLQ, "src-protocol": "amqp091",
				"src-prefetch-count": 1000, "src-delete-after": "queue-length",
				"dest-protocol": "amqp091", "dest-uri": "amqp:///%2F", "dest-add-forward-headers": false,
				"ack-mode": "on-confirm", "dest-queue": w.Topo.Work,
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	},
	// Queues → <dlq> → "Get messages", Ack mode "Reject requeue false":
	// the DLQ dead-letters the message through its own exchange to work.
	"get messages, reject requeue false": func(t *testing.T, w *replayWorld, _ string, _ []byte) {
		var got []map[string]any
		err := testenv.Management(http.MethodPost, "/api/queues/%2F/"+url.PathEscape(w.Topo.DLQ)+"/get",
			map[string]any{"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto", "truncate": 50000}, &got)
		if err != nil || len(got) != 1 {
			t.Fatalf("get messages: %v, %d messages", err, len(got))
		}
	},
	// Exchanges → <ns>.events → "Publish message": the event JSON pasted
	// as payload, routing key = type, and the parked message's
	// stripe-signature header copied (a signature of these bytes by our
	// secret here: the same proof), no properties. Without the header the
	// worker would fetch the event from Stripe (consumer's
	// TestOnlyStripeWrites).
	"publish message": func(t *testing.T, w *replayWorld, typ string, body []byte) {
		var res struct {
			Routed bool `json:"routed"`
		}
		headers := map[string]any{broker.HeaderStripeSignature: testenv.Sign(body, testenv.WebhookSecret, time.Now())}
		err := testenv.Management(http.MethodPost, "/api/exchanges/%2F/"+url.PathEscape(w.Topo.Events)+"/publish",
			map[string]any{"properties": map[string]any{"headers": headers}, "routing_key": typ, "payload": string(body), "payload_encoding": "string"}, &res)
		if err != nil || !res.Routed {
			t.Fatalf("publish message: %v, routed %v", err, res.Routed)
		}
	},
}

func TestUIReplayAppliesAParkedEventOnceItsCauseIsFixed(t *testing.T) {
	t.Parallel()
	for name, replay := range uiReplays {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const id, typ, cus = "evt_ui_replay", "customer.created", "cus_ui_replay"
			w := newReplayWorld(t, id)
			body := w.sendFailing(t, id, typ, cus)
			w.fixed.Store(true)

			replay(t, w, typ, body)
			testenv.Eventually(t, 10*time.Second, func() bool { return w.ledger(t, id).Status == models.EventProcessed }, "the replayed event processed")
			if n := w.customers(t, cus); n != 1 {
				t.Fatalf("%d customer rows, want 1", n)
			}
			if name == "publish message" {
				// A hand-published copy leaves the parked original behind;
				// the runbook has the agent remove it with "Get messages",
				// Ack mode "Automatic ack".
				w.WaitReady(t, w.Topo.DLQ, 1)
				var got []map[string]any
				err := testenv.Management(http.MethodPost, "/api/queues/%2F/"+url.PathEscape(w.Topo.DLQ)+"/get",
					map[string]any{"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}, &got)
				if err != nil || len(got) != 1 {
					t.Fatalf("remove the parked original: %v, %d messages", err, len(got))
				}
			}
			w.WaitReady(t, w.Topo.DLQ, 0)
			applied := w.ledger(t, id)

			// Replaying the processed event again (parked once more, say by
			// an operator's mistake) changes nothing and is acked.
			if name != "publish message" {
				w.Park(t, id, typ, failure.Permanent, time.Now(), nil)
				w.WaitReady(t, w.Topo.DLQ, 1)
			}
			replay(t, w, typ, body)
			testenv.Eventually(t, 10*time.Second, func() bool { return len(w.outcomes(id)) == 3 }, "the second replay consumed (outcomes %v)", w.outcomes(id))
			if got := w.outcomes(id); got[0] != "failed" || got[1] != string(ledger.Processed) || got[2] != string(ledger.Duplicate) {
				t.Errorf("outcomes %v, want failed, processed, duplicate", got)
			}
			again := w.ledger(t, id)
			if again.Status != applied.Status || !again.ProcessedAt.Equal(*applied.ProcessedAt) || again.Attempts != applied.Attempts {
				t.Errorf("ledger changed by a duplicate replay: %+v → %+v", applied, again)
			}
			if n := w.customers(t, cus); n != 1 {
				t.Errorf("%d customer rows after the duplicate, want 1", n)
			}
			w.WaitReady(t, w.Topo.DLQ, 0)
			w.WaitReady(t, w.Topo.Work, 0)
			testenv.Eventually(t, 5*time.Second, func() bool { n, err := testenv.QueueDepth(w.Topo.Work); return err == nil && n == 0 }, "work queue drained, acked")
		})
	}
}
