package relay_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
	"github.com/stripe-billing/billing/relay"
	"github.com/stripe-billing/billing/relay/relaytest"
)

// env is one test's namespace, database and a queue bound to the feed.
type env struct {
	t     *testing.T
	topo  broker.Topology
	store *models.Store
	queue string
	ch    *amqp.Channel
	out   relaytest.Outbox
}

func setup(t *testing.T, queueArgs amqp.Table) *env {
	t.Helper()
	e := &env{t: t}
	e.topo = testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 20))
	e.store = testenv.Store(t)
	e.ch = testenv.Channel(t)
	e.queue = e.topo.Namespace + ".changes.test"
	if _, err := e.ch.QueueDeclare(e.queue, true, false, false, false, queueArgs); err != nil {
		t.Fatal(err)
	}
	if err := e.ch.QueueBind(e.queue, "#", e.topo.Changes, false, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) backlog() feed.Backlog {
	e.t.Helper()
	b, err := feed.Pending(context.Background(), e.store.DB())
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// counter is a relay.Observer.
type counter struct{ published atomic.Int64 }

func (c *counter) ChangesPublished(n int)             { c.published.Add(int64(n)) }
func (c *counter) ChangeBacklog(int64, time.Duration) {}

// counted waits until c was told of n changes published, and no more:
// told after the stamp, so a drained outbox does not mean it was told.
func (e *env) counted(c *counter, n int64) {
	e.t.Helper()
	testenv.Eventually(e.t, 30*time.Second, func() bool { return c.published.Load() >= n }, "%d changes published", n)
	if got := c.published.Load(); got != n {
		e.t.Fatalf("%d changes published, want %d", got, n)
	}
}

// start runs a relay of e's outbox through amqpURL until the test ends.
func (e *env) start(amqpURL string, obs relay.Observer, cfg relay.Config) (stop func()) {
	e.t.Helper()
	logger := slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	conn := broker.NewConn(broker.ConnConfig{URL: amqpURL, Name: "relay test", Topology: e.topo,
		Backoff: func(int) time.Duration { return 50 * time.Millisecond }, DialTimeout: time.Second}, logger)
	cfg.Exchange = e.topo.Changes
	cfg.Interval = 20 * time.Millisecond
	cfg.LockWait = time.Second
	r, err := relay.New(cfg, logger, e.store, conn, obs)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("relay: %v", err)
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// drained waits until no change is unpublished.
func (e *env) drained() {
	e.t.Helper()
	testenv.Eventually(e.t, 30*time.Second, func() bool { return e.backlog().Depth == 0 }, "the outbox drained")
}

func TestRelay(t *testing.T) {
	t.Parallel()

	t.Run("PublishesInOrder", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.out.Write(t, e.store.DB(), 40, "sub_a", "sub_b", "sub_c")
		obs := &counter{}
		e.start(testenv.AMQPURL(), obs, relay.Config{Batch: 16})
		e.drained()
		e.out.Write(t, e.store.DB(), 5, "sub_a", "sub_d") // found by a later poll
		e.counted(obs, 130)
		e.out.Check(t, testenv.TakeAll(t, e.ch, e.queue))
		if n := obs.published.Load(); n != 130 {
			t.Errorf("published %d, want 130 (each once)", n)
		}
	})

	t.Run("RefusedRepublishedInOrder", func(t *testing.T) {
		t.Parallel()
		// A full queue that refuses publishes: the broker nacks them.
		e := setup(t, amqp.Table{amqp.QueueMaxLenArg: 7, amqp.QueueOverflowArg: amqp.QueueOverflowRejectPublish})
		e.out.Write(t, e.store.DB(), 15, "sub_a", "sub_b", "sub_c")
		e.start(testenv.AMQPURL(), nil, relay.Config{Batch: 10})
		var got []amqp.Delivery
		testenv.Eventually(t, 60*time.Second, func() bool {
			got = append(got, testenv.TakeAll(t, e.ch, e.queue)...)
			return e.backlog().Depth == 0
		}, "the outbox drained into a queue of 7")
		got = append(got, testenv.TakeAll(t, e.ch, e.queue)...)
		e.out.Check(t, got)
	})

	t.Run("BrokerDown", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		proxy := testenv.Proxy(t, t.Name(), testenv.AMQPAddr())
		e.start(testenv.AMQPVia(proxy.Listen), nil, relay.Config{Batch: 8})
		e.out.Write(t, e.store.DB(), 10, "sub_a", "sub_b")
		e.drained()
		proxy.Stop() // the broker is gone for the relay
		e.out.Write(t, e.store.DB(), 20, "sub_a", "sub_b", "sub_c")
		time.Sleep(200 * time.Millisecond) // polls that find the broker away
		if b := e.backlog(); b.Depth != 60 || b.Oldest.IsZero() {
			t.Fatalf("backlog while the broker is down: %+v, want all 60 new changes", b)
		}
		if err := proxy.Start(); err != nil {
			t.Fatal(err)
		}
		e.drained()
		e.out.Check(t, testenv.TakeAll(t, e.ch, e.queue))
	})

	t.Run("Singleton", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		first, second := &counter{}, &counter{}
		stopFirst := e.start(testenv.AMQPURL(), first, relay.Config{})
		e.out.Write(t, e.store.DB(), 5, "sub_a")
		e.counted(first, 5)
		e.start(testenv.AMQPURL(), second, relay.Config{})
		e.out.Write(t, e.store.DB(), 5, "sub_a")
		e.counted(first, 10)
		if n := second.published.Load(); n != 0 {
			t.Fatalf("the second published %d while the first ran, want 0 (it waits)", n)
		}
		stopFirst()
		e.out.Write(t, e.store.DB(), 5, "sub_a")
		e.counted(second, 5) // the second took the lock
		e.out.Check(t, testenv.TakeAll(t, e.ch, e.queue))
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	store := (*models.Store)(nil)
	conn := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL()}, nil)
	tests := []struct {
		name  string
		cfg   relay.Config
		store relay.Store
		conn  relay.Broker
		want  string
	}{
		{"NoExchange", relay.Config{}, store, conn, "relay: an exchange is required"},
		{"NoStore", relay.Config{Exchange: "x.changes"}, nil, conn, "relay: a store and a broker connection are required"},
		{"NoBroker", relay.Config{Exchange: "x.changes"}, store, nil, "relay: a store and a broker connection are required"},
		{"Negative", relay.Config{Exchange: "x.changes", Batch: -1}, store, conn,
			"relay: batch -1, intervals 0s and 0s, lock wait 0s, confirm timeout 0s: want >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := relay.New(tt.cfg, nil, tt.store, tt.conn, nil); err == nil || err.Error() != tt.want {
				t.Errorf("New = %v, want %q", err, tt.want)
			}
		})
	}
}
