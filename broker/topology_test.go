package broker_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
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

func TestTopologyCheck(t *testing.T) {
	t.Parallel()
	topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 5)
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	t.Run("NamesEverythingMissing", func(t *testing.T) {
		err := topo.Check(conn)
		if !errors.Is(err, broker.ErrTopologyMissing) {
			t.Fatalf("Check on an undeclared namespace = %v, want ErrTopologyMissing", err)
		}
		for _, name := range append(topo.Exchanges(), topo.Queues()...) {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error does not name %s: %v", name, err)
			}
		}
		if !strings.Contains(err.Error(), "billing topology") {
			t.Errorf("error does not say to run `billing topology`: %v", err)
		}
		for _, q := range topo.Queues() {
			if _, err := testenv.QueueDepth(q); err == nil {
				t.Errorf("Check created queue %s", q)
			}
		}
	})
	testenv.Declare(t, topo)
	t.Run("PassesOnceDeclared", func(t *testing.T) {
		if err := topo.Check(conn); err != nil {
			t.Fatalf("Check after Declare = %v", err)
		}
	})
	t.Run("NamesADeletedQueue", func(t *testing.T) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDelete(topo.DLQ, false, false, false); err != nil {
			t.Fatal(err)
		}
		ch.Close()
		err = topo.Check(conn)
		if !errors.Is(err, broker.ErrTopologyMissing) || !strings.Contains(err.Error(), "lacks queue "+topo.DLQ+":") {
			t.Fatalf("Check without the DLQ = %v, want it named alone", err)
		}
	})
	t.Run("ConnRunStops", func(t *testing.T) {
		c := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: t.Name(), Topology: topo}, nil)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := c.Run(ctx); !errors.Is(err, broker.ErrTopologyMissing) {
			t.Fatalf("Conn.Run with the DLQ missing = %v, want ErrTopologyMissing", err)
		}
	})
}

// TestDeclareQuorumInitialGroupSize: set, every quorum queue is declared
// with it (x-quorum-initial-group-size); unset, RabbitMQ's default applies.
func TestDeclareQuorumInitialGroupSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 1} {
		topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 5)
		topo.QuorumInitialGroupSize = size
		testenv.Declare(t, topo)
		for _, q := range topo.Queues() {
			var got struct {
				Arguments map[string]any `json:"arguments"`
			}
			if err := testenv.Management(http.MethodGet, "/api/queues/%2F/"+url.PathEscape(q), nil, &got); err != nil {
				t.Fatal(err)
			}
			arg, set := got.Arguments["x-quorum-initial-group-size"]
			if (size == 0 && set) || (size > 0 && arg != float64(size)) {
				t.Errorf("size %d: queue %s has x-quorum-initial-group-size %v (set %v)", size, q, arg, set)
			}
		}
	}
}
