package broker_test

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
)

func TestDeclareIsIdempotent(t *testing.T) {
	t.Parallel()
	topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{50 * time.Millisecond, time.Second}, 5)
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 2 {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := topo.Declare(ch); err != nil {
			t.Fatalf("declare #%d: %v", i+1, err)
		}
		ch.Close()
	}
	for _, q := range topo.Queues() {
		if _, err := testenv.QueueDepth(q); err != nil {
			t.Errorf("queue %s: %v", q, err)
		}
	}
	if got, want := topo.TierQueue(0), topo.Namespace+".retry.50ms"; got != want {
		t.Errorf("tier queue = %q, want %q", got, want)
	}
}
