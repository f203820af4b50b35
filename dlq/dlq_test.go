package dlq_test

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

// dlqEnv is one test's namespace on the real broker: the topology, a
// supervised reading connection, a confirm publisher on its own connection
// and a raw channel for parking by hand and for inspecting queues.
type dlqEnv struct {
	topo broker.Topology
	conn *broker.Conn
	pub  *broker.Publisher
	raw  *amqp.Connection
	ch   *amqp.Channel
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newDLQEnv(t *testing.T, deliveryLimit int) dlqEnv {
	t.Helper()
	return newDLQEnvFor(t, testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), []time.Duration{50 * time.Millisecond}, deliveryLimit)))
}

// newDLQEnvSharing is another process on e's namespace: its own connections.
func newDLQEnvSharing(t *testing.T, e dlqEnv) dlqEnv {
	t.Helper()
	return newDLQEnvFor(t, e.topo)
}

func newDLQEnvFor(t *testing.T, topo broker.Topology) dlqEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := func(name string) *broker.Conn {
		c := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: name, Topology: topo}, quietLogger())
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		if _, err := c.Await(actx); err != nil {
			t.Fatalf("connect %s: %v", name, err)
		}
		return c
	}
	e := dlqEnv{topo: topo, conn: start(topo.Namespace + "-dlq")}
	e.pub = broker.NewPublisher(start(topo.Namespace+"-publish"), 2, 5*time.Second)
	raw, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	e.raw = raw
	if e.ch, err = raw.Channel(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e dlqEnv) newDLQ(t *testing.T, now time.Time) *dlq.Queue {
	t.Helper()
	q, err := dlq.New(dlq.Config{Topology: e.topo, Idle: 500 * time.Millisecond, Now: func() time.Time { return now }},
		quietLogger(), e.conn, e.pub)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// parkedBody is the raw event a parked message carries.
func parkedBody(id, typ string) []byte {
	return []byte(`{"id":"` + id + `","object":"event","type":"` + typ + `","created":1700000000,"data":{"object":{}}}`)
}

// park puts a message in the DLQ the way the consumer's router does: the
// original body, properties and Stripe's signature through <ns>.dead with
// the reason headers.
func (e dlqEnv) park(t *testing.T, id, typ string, class failure.Class, parkedAt time.Time, extra amqp.Table) amqp.Publishing {
	t.Helper()
	h := amqp.Table{
		broker.HeaderAttempt:       int32(3),
		broker.HeaderError:         "billing: " + string(class) + " failure of " + id,
		broker.HeaderErrorClass:    string(class),
		broker.HeaderFirstFailedAt: parkedAt.Add(-time.Minute).UTC().Format(time.RFC3339Nano),
		broker.HeaderLastFailedAt:  parkedAt.UTC().Format(time.RFC3339Nano),
		broker.HeaderSourceQueue:   e.topo.Work,
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
		Body:         parkedBody(id, typ),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.pub.Publish(ctx, e.topo.Dead, typ, msg); err != nil {
		t.Fatalf("park %s: %v", id, err)
	}
	return msg
}

// ready is the number of ready messages in queue, straight from the broker.
func (e dlqEnv) ready(t *testing.T, queue string) int {
	t.Helper()
	q, err := e.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect %s: %v", queue, err)
	}
	return q.Messages
}

// waitReady waits until queue holds exactly n ready messages. Messages a
// closed channel returns to a quorum queue come back asynchronously.
func (e dlqEnv) waitReady(t *testing.T, queue string, n int) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() bool { return e.ready(t, queue) == n }, "%s to hold %d ready messages (has %d)", queue, n, e.ready(t, queue))
}

// takeAll removes and returns every message of queue, in order.
func (e dlqEnv) takeAll(t *testing.T, queue string) []amqp.Delivery {
	return testenv.TakeAll(t, e.ch, queue)
}

func eventIDs(ps []dlq.Parked) []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.EventID)
	}
	return ids
}

func TestDLQListShowsParkedEventsAndKeepsThem(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 20)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e.park(t, "evt_perm", "invoice.paid", failure.Permanent, now.Add(-2*time.Hour), nil)
	e.park(t, "evt_trans", "customer.updated", failure.Transient, now.Add(-30*time.Minute), amqp.Table{broker.HeaderReplays: int32(2), broker.HeaderRedrives: int32(1)})
	e.park(t, "evt_third", "charge.refunded", failure.Permanent, now.Add(-time.Minute), nil)
	e.waitReady(t, e.topo.DLQ, 3)
	q := e.newDLQ(t, now)

	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"all", 0, []string{"evt_perm", "evt_trans", "evt_third"}},
		{"limit", 2, []string{"evt_perm", "evt_trans"}},
		{"again, same order", 0, []string{"evt_perm", "evt_trans", "evt_third"}},
	}
	for _, tt := range tests {
		got, err := q.List(context.Background(), tt.limit)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if g := strings.Join(eventIDs(got), ","); g != strings.Join(tt.want, ",") {
			t.Fatalf("%s: listed %s, want %s", tt.name, g, strings.Join(tt.want, ","))
		}
		e.waitReady(t, e.topo.DLQ, 3)
		if tt.name == "all" {
			p := got[1]
			want := dlq.Parked{
				EventID: "evt_trans", Type: "customer.updated", Class: failure.Transient, Attempts: 3,
				Error:    "billing: transient failure of evt_trans",
				ParkedAt: now.Add(-30 * time.Minute), AgeSeconds: 1800,
				FirstFailedAt: now.Add(-31 * time.Minute), LastFailedAt: now.Add(-30 * time.Minute),
				SourceQueue: e.topo.Work, WorkerHost: "worker-1", Replays: 2, Redrives: 1,
			}
			if p != want {
				t.Errorf("parked = %+v\nwant     %+v", p, want)
			}
		}
	}
	if n := e.ready(t, e.topo.Work); n != 0 {
		t.Errorf("listing put %d messages in the work queue", n)
	}
	// Back to back, as support runs it: each list finds every message,
	// though a quorum queue requeues the previous list's asynchronously.
	for i := range 10 {
		got, err := q.List(context.Background(), 0)
		if err != nil || len(got) != 3 {
			t.Fatalf("list %d right after another: %d messages (%v), want 3", i, len(got), err)
		}
	}
}

// A worker that dies on a message looks to the broker like a consumer that
// takes the delivery and goes away without an ack. The work queue's
// x-delivery-limit must park it after the limit, with no billing-* headers.
func TestAMessageThatKillsTheWorkerOnEveryDeliveryIsParkedByTheDeliveryLimit(t *testing.T) {
	t.Parallel()
	const limit = 2
	e := newDLQEnv(t, limit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := parkedBody("evt_crash", "invoice.created")
	err := e.pub.Publish(ctx, e.topo.Events, "invoice.created", amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: "evt_crash", Type: "invoice.created", Body: body,
	})
	if err != nil {
		t.Fatal(err)
	}
	deliveries := 0
	for e.ready(t, e.topo.DLQ) == 0 {
		if deliveries > limit+1 {
			t.Fatalf("still not parked after %d deliveries with x-delivery-limit %d", deliveries, limit)
		}
		ch, err := e.raw.Channel()
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := ch.ConsumeWithContext(ctx, e.topo.Work, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-msgs:
			deliveries++
		case <-time.After(2 * time.Second):
			// The message is on its way to the DLQ.
		}
		ch.Close() // the "crash": the delivery returns unacked
		testenv.Eventually(t, 3*time.Second, func() bool { return e.ready(t, e.topo.Work)+e.ready(t, e.topo.DLQ) == 1 }, "the message back in a queue")
	}
	if deliveries != limit+1 {
		t.Errorf("parked after %d deliveries, want %d (x-delivery-limit %d)", deliveries, limit+1, limit)
	}
	now := time.Now()
	got, err := e.newDLQ(t, now).List(ctx, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("list = %+v, %v; want the one parked message", got, err)
	}
	p := got[0]
	if p.EventID != "evt_crash" || p.Type != "invoice.created" || p.Class != failure.DeliveryLimit || p.SourceQueue != e.topo.Work {
		t.Errorf("parked = %+v; want evt_crash, invoice.created, class %s from %s", p, failure.DeliveryLimit, e.topo.Work)
	}
	if p.Attempts != 1 || !strings.Contains(p.Error, "x-delivery-limit") {
		t.Errorf("attempts = %d, error %q; want the x-death count 1 and the limit named", p.Attempts, p.Error)
	}
	if p.ParkedAt.IsZero() || p.AgeSeconds < 0 || p.AgeSeconds > 60 {
		t.Errorf("parked at %s, age %.1fs: want the x-death time of a moment ago", p.ParkedAt, p.AgeSeconds)
	}
	e.waitReady(t, e.topo.DLQ, 1)
}

func TestDLQMove(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := []string{"evt_a", "evt_b", "evt_c", "evt_d"}
	typeOf := map[string]string{"evt_a": "invoice.paid", "evt_b": "customer.updated", "evt_c": "invoice.paid", "evt_d": "charge.refunded"}
	byID := func(id string) func(context.Context, dlq.Parked) (bool, error) {
		return func(_ context.Context, p dlq.Parked) (bool, error) { return p.EventID == id, nil }
	}
	byType := func(typ string) func(context.Context, dlq.Parked) (bool, error) {
		return func(_ context.Context, p dlq.Parked) (bool, error) { return p.Type == typ, nil }
	}
	slow := func(ctx context.Context, _ dlq.Parked) (bool, error) {
		select {
		case <-time.After(700 * time.Millisecond): // newDLQ's Idle is 500ms
		case <-ctx.Done():
		}
		return true, nil
	}
	tests := []struct {
		name      string
		opts      dlq.MoveOptions
		wantMoved []string
		wantLeft  []string // in DLQ order
	}{
		{"dry run moves nothing", dlq.MoveOptions{DryRun: true}, nil, ids},
		{"one event", dlq.MoveOptions{Match: byID("evt_c")}, []string{"evt_c"}, []string{"evt_a", "evt_b", "evt_d"}},
		{"by type", dlq.MoveOptions{Match: byType("invoice.paid")}, []string{"evt_a", "evt_c"}, []string{"evt_b", "evt_d"}},
		{"all, limit 2", dlq.MoveOptions{Limit: 2}, []string{"evt_a", "evt_b"}, []string{"evt_c", "evt_d"}},
		{"all", dlq.MoveOptions{}, ids, nil},
		// Time spent on a message (a slow confirm or ledger write) is not
		// idleness: the pass still reaches every message.
		{"all, each slower than Idle", dlq.MoveOptions{Match: slow}, ids, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newDLQEnv(t, 20)
			sent := map[string]amqp.Publishing{}
			for _, id := range ids {
				sent[id] = e.park(t, id, typeOf[id], failure.Permanent, now.Add(-time.Hour), amqp.Table{"x-custom": "dropped", "tenant": "acme"})
			}
			e.waitReady(t, e.topo.DLQ, len(ids))
			res, err := e.newDLQ(t, now).Move(context.Background(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			wantIDs := tt.wantMoved
			if tt.opts.DryRun {
				wantIDs = ids
			}
			if g, w := strings.Join(eventIDs(res.Moved), ","), strings.Join(wantIDs, ","); g != w {
				t.Errorf("moved %s, want %s", g, w)
			}
			e.waitReady(t, e.topo.DLQ, len(tt.wantLeft))
			work := e.takeAll(t, e.topo.Work)
			var workIDs []string
			for _, d := range work {
				workIDs = append(workIDs, d.MessageId)
				checkReplayCopy(t, d, sent[d.MessageId], e.topo.Work, false)
			}
			if g, w := strings.Join(workIDs, ","), strings.Join(tt.wantMoved, ","); g != w {
				t.Errorf("work queue holds %s, want %s", g, w)
			}
			var left []string
			for _, d := range e.takeAll(t, e.topo.DLQ) {
				left = append(left, d.MessageId)
			}
			if g, w := strings.Join(left, ","), strings.Join(tt.wantLeft, ","); g != w {
				t.Errorf("DLQ holds %s, want %s", g, w)
			}
		})
	}
}

// checkReplayCopy asserts that d, delivered from the work queue, is a
// lossless fresh-attempt copy of the parked message sent.
func checkReplayCopy(t *testing.T, d amqp.Delivery, sent amqp.Publishing, work string, redrive bool) {
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
	if d.Exchange != "" || d.RoutingKey != work {
		t.Errorf("%s: delivered from exchange %q key %q, want the default exchange and %s", sent.MessageId, d.Exchange, d.RoutingKey, work)
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
	// default exchange, which the router counts as one more replay.
	r, err := dlq.NewRouter(dlq.RouterConfig{Topology: broker.NewTopology("ns", []time.Duration{time.Second}, 20), Policy: retry.Policy{Delays: []time.Duration{time.Second}, MaxAttempts: 3}},
		quietLogger(), replayNoopPublisher{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Attempt(d).Replays, broker.HeaderInt(sent.Headers, broker.HeaderReplays)+1; got != want {
		t.Errorf("%s: the consumer counts replay %d, want %d", sent.MessageId, got, want)
	}
}

type replayNoopPublisher struct{}

func (replayNoopPublisher) Publish(context.Context, string, string, amqp.Publishing) error {
	return nil
}
