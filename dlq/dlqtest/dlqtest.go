// Package dlqtest is the DLQ's test environment on the real broker, for
// the dlq package's tests and the sweep's (maintenance): a namespace's
// topology with its connections, messages parked as the consumer's router
// parks them, and the check that a replayed copy is a fresh attempt.
package dlqtest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/retry"
)

// Env is one test's namespace on the real broker: the topology, a
// supervised reading connection, a confirm publisher on its own connection
// and a raw channel for parking by hand and for inspecting queues.
type Env struct {
	Topo broker.Topology
	Conn *broker.Conn
	Pub  *broker.Publisher
	Raw  *amqp.Connection
	Ch   *amqp.Channel
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// NewEnv declares a fresh namespace, its work queue with deliveryLimit,
// and connects to it.
func NewEnv(t *testing.T, deliveryLimit int) *Env {
	t.Helper()
	return NewEnvFor(t, testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), []time.Duration{50 * time.Millisecond}, deliveryLimit)))
}

// NewEnvSharing is another process on e's namespace: its own connections.
func NewEnvSharing(t *testing.T, e *Env) *Env {
	t.Helper()
	return NewEnvFor(t, e.Topo)
}

// NewEnvFor connects to topo, declared already; the connections close
// when t ends.
func NewEnvFor(t *testing.T, topo broker.Topology) *Env {
	t.Helper()
	return NewEnvAs(t, topo, testenv.AMQPURL())
}

// NewEnvAs is NewEnvFor as the user of amqpURL (testenv.RabbitUser).
func NewEnvAs(t *testing.T, topo broker.Topology, amqpURL string) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := func(name string) *broker.Conn {
		c := broker.NewConn(broker.ConnConfig{URL: amqpURL, Name: name, Topology: topo}, quietLogger())
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		if _, err := c.Await(actx); err != nil {
			t.Fatalf("connect %s: %v", name, err)
		}
		return c
	}
	e := &Env{Topo: topo, Conn: start(topo.Namespace + "-dlq")}
	e.Pub = broker.NewPublisher(start(topo.Namespace+"-publish"), 2, 5*time.Second)
	raw, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	e.Raw = raw
	if e.Ch, err = raw.Channel(); err != nil {
		t.Fatal(err)
	}
	return e
}

// Queue is the DLQ of e's namespace, its clock stopped at now.
func (e *Env) Queue(t *testing.T, now time.Time) *dlq.Queue {
	t.Helper()
	q, err := dlq.New(dlq.Config{Topology: e.Topo, Idle: 500 * time.Millisecond, Now: func() time.Time { return now }},
		quietLogger(), e.Conn, e.Pub)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// ParkedBody is the raw event a parked message carries.
func ParkedBody(id, typ string) []byte {
	return []byte(`{"id":"` + id + `","object":"event","type":"` + typ + `","created":1700000000,"data":{"object":{}}}`)
}

// Park puts a message in the DLQ the way the consumer's router does: the
// original body, properties and Stripe's signature through <ns>.dead with
// the reason headers.
func (e *Env) Park(t *testing.T, id, typ string, class failure.Class, parkedAt time.Time, extra amqp.Table) amqp.Publishing {
	t.Helper()
	h := amqp.Table{
		broker.HeaderAttempt:       int32(3),
		broker.HeaderError:         "billing: " + string(class) + " failure of " + id,
		broker.HeaderErrorClass:    string(class),
		broker.HeaderFirstFailedAt: parkedAt.Add(-time.Minute).UTC().Format(time.RFC3339Nano),
		broker.HeaderLastFailedAt:  parkedAt.UTC().Format(time.RFC3339Nano),
		broker.HeaderSourceQueue:   e.Topo.Work,
		broker.HeaderWorkerHost:    "worker-1",
		broker.HeaderParkedAt:      parkedAt.UTC().Format(time.RFC3339Nano),
	}
	for k, v := range extra {
		h[k] = v
	}
	msg := testenv.Signed(amqp.Publishing{
		Headers:      h,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Type:         typ,
		Timestamp:    parkedAt.Add(-time.Hour).Truncate(time.Second),
		AppId:        "billing-api",
		Body:         ParkedBody(id, typ),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Pub.Publish(ctx, e.Topo.Dead, typ, msg); err != nil {
		t.Fatalf("park %s: %v", id, err)
	}
	return msg
}

// Ready is the number of ready messages in queue, straight from the broker.
func (e *Env) Ready(t *testing.T, queue string) int {
	t.Helper()
	q, err := e.Ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect %s: %v", queue, err)
	}
	return q.Messages
}

// WaitReady waits until queue holds exactly n ready messages. Messages a
// closed channel returns to a quorum queue come back asynchronously.
func (e *Env) WaitReady(t *testing.T, queue string, n int) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() bool { return e.Ready(t, queue) == n }, "%s to hold %d ready messages (has %d)", queue, n, e.Ready(t, queue))
}

// TakeAll removes and returns every message of queue, in order.
func (e *Env) TakeAll(t *testing.T, queue string) []amqp.Delivery {
	return testenv.TakeAll(t, e.Ch, queue)
}

// EventIDs are the event ids of ps, in order.
func EventIDs(ps []dlq.Parked) []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.EventID)
	}
	return ids
}

// CheckReplayCopy asserts that d, delivered from the work queue, is a
// lossless fresh-attempt copy of the parked message sent, which came
// through topo's replay exchange.
func CheckReplayCopy(t *testing.T, d amqp.Delivery, sent amqp.Publishing, topo broker.Topology, redrive bool) {
	t.Helper()
	if string(d.Body) != string(sent.Body) {
		t.Errorf("%s: body %s, want %s", sent.MessageId, d.Body, sent.Body)
	}
	if d.MessageId != sent.MessageId || d.Type != sent.Type || d.ContentType != sent.ContentType ||
		d.DeliveryMode != amqp.Persistent || !d.Timestamp.Equal(sent.Timestamp) || d.AppId != sent.AppId {
		t.Errorf("%s: properties changed: id %q type %q content-type %q mode %d timestamp %s app %q",
			sent.MessageId, d.MessageId, d.Type, d.ContentType, d.DeliveryMode, d.Timestamp, d.AppId)
	}
	if n := broker.HeaderInt(d.Headers, "x-delivery-count"); n != 0 {
		t.Errorf("%s: first delivery from the work queue has x-delivery-count %d", sent.MessageId, n)
	}
	if d.Exchange != topo.Replay {
		t.Errorf("%s: delivered from exchange %q, want %s", sent.MessageId, d.Exchange, topo.Replay)
	}
	for k := range d.Headers {
		// The work queue stamps its own x-delivery-count on delivery.
		if strings.HasPrefix(k, "x-") && k != "x-delivery-count" {
			t.Errorf("%s: header %s copied", sent.MessageId, k)
		}
	}
	for k, v := range sent.Headers {
		if strings.HasPrefix(k, "x-") || k == broker.HeaderRedrives {
			continue
		}
		if got := d.Headers[k]; got != v {
			t.Errorf("%s: header %s = %v (%T), want %v (%T)", sent.MessageId, k, got, got, v, v)
		}
	}
	wantRedrives := broker.HeaderInt(sent.Headers, broker.HeaderRedrives)
	if redrive {
		wantRedrives++
	}
	if got := broker.HeaderInt(d.Headers, broker.HeaderRedrives); got != wantRedrives {
		t.Errorf("%s: %s = %d, want %d", sent.MessageId, broker.HeaderRedrives, got, wantRedrives)
	}
	// The replay count the consumer records: the copy comes through the
	// replay exchange, which the router counts as one more replay.
	r, err := dlq.NewRouter(dlq.RouterConfig{Topology: topo, Policy: retry.Policy{Delays: []time.Duration{time.Second}, MaxAttempts: 3}},
		quietLogger(), noopPublisher{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Attempt(d).Replays, broker.HeaderInt(sent.Headers, broker.HeaderReplays)+1; got != want {
		t.Errorf("%s: the consumer counts replay %d, want %d", sent.MessageId, got, want)
	}
}

// noopPublisher stands in for the router's publisher, which
// CheckReplayCopy never uses: it only reads an attempt.
type noopPublisher struct{}

func (noopPublisher) Publish(context.Context, string, string, amqp.Publishing) error {
	return nil
}
