package reconcile_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a namespace of its own on the test broker: its topology declared,
// a confirm publisher, and a plain channel to read queues with.
type env struct {
	topo broker.Topology
	pub  *broker.Publisher
	ch   *amqp.Channel
}

func newEnv(t *testing.T) env {
	t.Helper()
	topo := testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), []time.Duration{50 * time.Millisecond}, 20))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	conn := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: topo.Namespace + "-publish", Topology: topo}, quietLogger())
	wg.Go(func() { _ = conn.Run(ctx) })
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	if _, err := conn.Await(actx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return env{topo: topo, pub: broker.NewPublisher(conn, 2, 5*time.Second), ch: testenv.Channel(t)}
}

// takeAll takes every message ready in queue.
func (e env) takeAll(t *testing.T, queue string) []amqp.Delivery {
	return testenv.TakeAll(t, e.ch, queue)
}
