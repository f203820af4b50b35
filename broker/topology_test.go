package broker_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
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
		if err := topo.Declare(context.Background(), ch, testenv.ManagementClient(t)); err != nil {
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

// TestDeclareOnQueuesItCannotChange: a queue that exists is not declared
// again. One declared by an older `billing topology` (its settings as
// x-arguments) keeps them and its messages; where an argument keeps a
// setting from taking effect, or the queue is of another type, Declare
// changes nothing and names the queue, the setting and the steps.
func TestDeclareOnQueuesItCannotChange(t *testing.T) {
	t.Parallel()
	// olderWorkQueue declares the work queue as `billing topology` did
	// before policies, holding one message.
	olderWorkQueue := func(t *testing.T, topo broker.Topology, args amqp.Table) *amqp.Channel {
		t.Helper()
		ch := testenv.Channel(t)
		if _, err := ch.QueueDeclare(topo.Work, true, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		if err := ch.Publish("", topo.Work, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	older := func(topo broker.Topology) amqp.Table {
		return amqp.Table{
			"x-queue-type": "quorum", "x-delivery-limit": 20, "x-dead-letter-exchange": topo.Dead,
			"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
		}
	}
	// rebuild asserts that Declare failed naming queue and setting, and set
	// no policy.
	rebuild := func(t *testing.T, topo broker.Topology, err error, queue, setting string) {
		t.Helper()
		var rerr *broker.RebuildError
		if !errors.As(err, &rerr) || len(rerr.Needed) != 1 || rerr.Needed[0].Queue != queue || rerr.Needed[0].Setting != setting {
			t.Fatalf("Declare = %v, want a RebuildError naming %s of %s alone", err, setting, queue)
		}
		if !strings.Contains(err.Error(), "docs/operations.md#changing-a-queue-setting") {
			t.Errorf("the error gives no steps: %v", err)
		}
		err = testenv.Management(http.MethodGet, "/api/policies/%2F/"+url.PathEscape(topo.Work), nil, nil)
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("policy %s after a failed Declare: %v, want none", topo.Work, err)
		}
	}
	messages := func(t *testing.T, ch *amqp.Channel, q string) int {
		t.Helper()
		info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return info.Messages
	}

	t.Run("KeepsAnOlderQueue", func(t *testing.T) {
		t.Parallel()
		topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 20)
		ch := olderWorkQueue(t, topo, older(topo))
		testenv.Declare(t, topo)
		info, _, err := testenv.ManagementClient(t).Queue(t.Context(), topo.Work)
		if err != nil {
			t.Fatal(err)
		}
		if info.Arguments["x-delivery-limit"] != float64(20) {
			t.Errorf("the older work queue's arguments became %v", info.Arguments)
		}
		if n := messages(t, ch, topo.Work); n != 1 {
			t.Errorf("the older work queue holds %d messages, want its 1", n)
		}
	})
	t.Run("NamesASettingItsArgumentHolds", func(t *testing.T) {
		t.Parallel()
		topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 30)
		ch := olderWorkQueue(t, topo, older(topo))
		rebuild(t, topo, testenv.DeclareErr(t, topo), topo.Work, "WORK_DELIVERY_LIMIT")
		if n := messages(t, ch, topo.Work); n != 1 {
			t.Errorf("the work queue holds %d messages, want its 1", n)
		}
	})
	t.Run("NamesTheQueueType", func(t *testing.T) {
		t.Parallel()
		topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 20)
		olderWorkQueue(t, topo, nil)
		err := testenv.DeclareErr(t, topo)
		rebuild(t, topo, err, topo.Work, "x-queue-type")
		if !strings.Contains(err.Error(), "classic") {
			t.Errorf("the error does not say what the queue is: %v", err)
		}
	})
	t.Run("NamesAPolicyThatWins", func(t *testing.T) {
		t.Parallel()
		topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 20)
		// Named in the namespace, so that the test's cleanup deletes it.
		other := topo.Namespace + ".everything"
		policy := map[string]any{"pattern": "^" + topo.Namespace + `\.`, "apply-to": "queues", "priority": 20, "definition": map[string]any{"max-length": 1}}
		if err := testenv.Management(http.MethodPut, "/api/policies/%2F/"+url.PathEscape(other), policy, nil); err != nil {
			t.Fatal(err)
		}
		err := testenv.DeclareErr(t, topo)
		if err == nil || !strings.Contains(err.Error(), `policy "`+other+`" (priority 20) applies to queue `+topo.Work) {
			t.Fatalf("Declare beside a policy of higher priority = %v, want it named", err)
		}
	})
	t.Run("NamesAnExchangeOfAnotherKind", func(t *testing.T) {
		t.Parallel()
		topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 20)
		if err := testenv.Channel(t).ExchangeDeclare(topo.Events, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		err := testenv.DeclareErr(t, topo)
		if err == nil || !strings.Contains(err.Error(), "exchange "+topo.Events+" exists with another type") {
			t.Fatalf("Declare over a fanout %s = %v, want the exchange and its type named", topo.Events, err)
		}
	})
}

// TestNotifyQueuePolicy: on RabbitMQ 4, whose quorum queues drop a message
// returned 20 times, notify's queue (no dead-letter queue behind it) has
// no delivery limit; RabbitMQ 3 has none by default and refuses -1.
func TestNotifyQueuePolicy(t *testing.T) {
	t.Parallel()
	topo := broker.NewTopology("billing", nil, 20)
	find := func(major int) map[string]any {
		for _, p := range topo.Policies(major) {
			if slices.Contains(p.Queues, topo.Notify) {
				return p.Definition
			}
		}
		return nil
	}
	if d := find(4); d["delivery-limit"] != broker.Unlimited {
		t.Errorf("RabbitMQ 4: notify's policy %v, want delivery-limit %d", d, broker.Unlimited)
	}
	if d := find(3); d != nil {
		t.Errorf("RabbitMQ 3: notify's policy %v, want none", d)
	}
}
