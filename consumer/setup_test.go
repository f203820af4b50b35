package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/retry"
)

// harness is one test's own namespace on the real broker: the topology,
// a publishing connection for retries and parking, a consuming one, and a
// plain channel for the test to publish and inspect with.
type harness struct {
	t       *testing.T
	topo    broker.Topology
	policy  retry.Policy
	logger  *slog.Logger
	consume *broker.Conn
	pub     *broker.Publisher
	events  *broker.Publisher // the test's own, as the api would publish
	ch      *amqp.Channel
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("CONSUMER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func setup(t *testing.T, delays []time.Duration, maxAttempts int) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		topo:   testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), delays, 20)),
		policy: retry.Policy{Delays: delays, MaxAttempts: maxAttempts},
		logger: testLogger(t),
	}
	h.consume = h.runConn("consumer")
	h.pub = broker.NewPublisher(h.runConn("publisher"), 4, 5*time.Second)
	h.events = broker.NewPublisher(h.runConn("test"), 2, 5*time.Second)
	h.ch = testenv.Channel(t)
	return h
}

// runConn runs a supervised connection until the test ends.
func (h *harness) runConn(role string) *broker.Conn {
	h.t.Helper()
	conn := broker.NewConn(broker.ConnConfig{
		URL: testenv.AMQPURL(), Name: h.t.Name() + " " + role, Topology: h.topo,
		Backoff: func(int) time.Duration { return 50 * time.Millisecond },
	}, h.logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := conn.Await(wctx); err != nil {
		h.t.Fatalf("broker %s connection: %v", role, err)
	}
	return conn
}

func (h *harness) router(ledger dlq.Ledger) *dlq.Router {
	h.t.Helper()
	r, err := dlq.NewRouter(dlq.RouterConfig{Topology: h.topo, Policy: h.policy, Host: "test-host"}, h.logger, h.pub, ledger)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// running is a consumer started by start.
type running struct {
	c      *consumer.Consumer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned err
	err    error
}

// stop cancels the consumer and waits for Run to return.
func (r *running) stop(t *testing.T, within time.Duration) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run = %v", r.err)
		}
	case <-time.After(within):
		t.Fatalf("Run did not return within %s of the cancel", within)
	}
}

// start runs a consumer of the work queue with handler h until the test
// ends (or stop).
func (h *harness) start(handler consumer.Handler, f consumer.Failures, tweak func(*consumer.Config)) *running {
	h.t.Helper()
	cfg := consumer.Config{
		Queue:           h.topo.Work,
		Concurrency:     4,
		ShutdownTimeout: 5 * time.Second,
		OutageMin:       50 * time.Millisecond,
		OutageMax:       200 * time.Millisecond,
		RepublishMin:    50 * time.Millisecond,
		RepublishMax:    200 * time.Millisecond,
		HandlerTimeout:  10 * time.Second,
		Verifier:        testenv.Verifier(h.t, nil),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := consumer.New(cfg, h.logger, h.consume, handler, f)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = c.Run(ctx); close(r.done) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			h.t.Error("consumer did not stop")
		}
	})
	return r
}

// publish sends an event as the api does: persistent JSON with the event
// id and type as message id and type, routing key = type, Stripe's
// signature in its header.
func (h *harness) publish(id, typ string, body []byte) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.events.Publish(ctx, h.topo.Events, typ, testenv.Signed(amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent,
		MessageId: id, Type: typ, Timestamp: time.Now().UTC().Truncate(time.Second), AppId: "billing-api",
		Body: body,
	}))
	if err != nil {
		h.t.Fatalf("publish %s: %v", id, err)
	}
}

// ready is the number of ready messages in a queue, straight from the
// broker (the management API lags by seconds).
func (h *harness) ready(queue string) int {
	h.t.Helper()
	q, err := h.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		h.t.Fatalf("inspect %s: %v", queue, err)
	}
	return q.Messages
}

// getDLQ waits for n parked messages and returns them (acked).
func (h *harness) getDLQ(n int, within time.Duration) []amqp.Delivery {
	h.t.Helper()
	var out []amqp.Delivery
	testenv.Eventually(h.t, within, func() bool {
		for {
			d, ok, err := h.ch.Get(h.topo.DLQ, false)
			if err != nil {
				h.t.Fatalf("get DLQ: %v", err)
			}
			if !ok {
				return len(out) >= n
			}
			_ = d.Ack(false)
			out = append(out, d)
		}
	}, "%d messages in the DLQ", n)
	return out
}

// calls records handler invocations.
type calls struct {
	mu   sync.Mutex
	byID map[string][]call
}

type call struct {
	at      time.Time
	attempt int
	err     error
}

func (c *calls) add(id string, cl call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = map[string][]call{}
	}
	c.byID[id] = append(c.byID[id], cl)
}

func (c *calls) get(id string) []call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]call(nil), c.byID[id]...)
}

func (c *calls) succeeded(id string) bool {
	cs := c.get(id)
	return len(cs) > 0 && cs[len(cs)-1].err == nil
}

func eventJSON(id, typ string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","type":%q,"created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}}}`, id, typ)
}

// process and processBatch are the worker's handlers on the real
// Processor (ledger.Handlers).
func process(p *ledger.Processor) consumer.Handler {
	h, _ := ledger.Handlers(p)
	return h
}

func processBatch(p *ledger.Processor) consumer.BatchHandler {
	_, b := ledger.Handlers(p)
	return b
}

// probes counts a consumer's outage probes (Config.Ping), so that a test
// of an outage waits for the worker to have probed, and stayed paused,
// several times rather than for a time.
type probes struct{ n atomic.Int64 }

func (p *probes) count(ping func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		p.n.Add(1)
		return ping(ctx)
	}
}

// wait waits for n more probes than have been made so far.
func (p *probes) wait(t *testing.T, n int64) {
	t.Helper()
	want := p.n.Load() + n
	testenv.Eventually(t, 30*time.Second, func() bool { return p.n.Load() >= want }, "%d outage probes", n)
}

// quiet stops r and then checks that no message is left that could still
// reach the handler: none ready in the work queue (a delivery the
// consumer held is back there once it stopped) or in a delay tier.
func (h *harness) quiet(r *running) {
	h.t.Helper()
	r.stop(h.t, 10*time.Second)
	h.idle(h.topo.Work)
	for i := range h.topo.Delays {
		if n := h.ready(h.topo.TierQueue(i)); n != 0 {
			h.t.Errorf("%d messages in tier %s after the outcomes were all seen, want none", n, h.topo.TierName(i))
		}
	}
	if n := h.ready(h.topo.Work); n != 0 {
		h.t.Errorf("%d messages in the work queue after the outcomes were all seen, want none", n)
	}
}

// idle waits until queue has no consumer: the broker has then handled
// the consumers' channel closes, and with them the return of what they
// held unacked, so that its ready count is final.
func (h *harness) idle(queue string) {
	h.t.Helper()
	testenv.Eventually(h.t, 10*time.Second, func() bool {
		q, err := h.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			h.t.Fatalf("inspect %s: %v", queue, err)
		}
		return q.Consumers == 0
	}, "no consumer on %s", queue)
}
