package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/simulate/stripeevent"
)

// startConn runs a supervised connection to url on a fresh namespace and,
// when wait is set, returns once it is connected.
func startConn(t *testing.T, url string, wait bool) (broker.Topology, *broker.Conn) {
	t.Helper()
	ns := testenv.Namespace(t)
	topo := testenv.Declare(t, broker.NewTopology(ns, []time.Duration{time.Second}, 5))
	conn := broker.NewConn(broker.ConnConfig{
		URL:         url,
		Name:        "publisher-test " + ns,
		Topology:    topo,
		Backoff:     func(int) time.Duration { return 50 * time.Millisecond },
		DialTimeout: time.Second,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if wait {
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer wcancel()
		if _, err := conn.Await(wctx); err != nil {
			t.Fatalf("broker connection not up: %v", err)
		}
	}
	return topo, conn
}

// inspect opens the test's own channel, for declaring and reading queues.
func inspect(t *testing.T) *amqp.Channel {
	t.Helper()
	return testenv.Channel(t)
}

func message(id string) amqp.Publishing {
	return amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Body: []byte(`{"id":"` + id + `"}`)}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		exchange func(broker.Topology) string
		wantErr  error    // nil: success; errAny: any error
		wantWork []string // message ids in the work queue afterwards
	}{
		{"routed", func(tp broker.Topology) string { return tp.Events }, nil, []string{"evt_first", "evt_second"}},
		{"exchange without bindings is unroutable", func(tp broker.Topology) string { return tp.Namespace + ".lonely" }, broker.ErrUnroutable, []string{"evt_second"}},
		{"missing exchange", func(tp broker.Topology) string { return tp.Namespace + ".missing" }, errAny, []string{"evt_second"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			topo, conn := startConn(t, testenv.AMQPURL(), true)
			ch := inspect(t)
			if err := ch.ExchangeDeclare(topo.Namespace+".lonely", amqp.ExchangeTopic, false, true, false, false, nil); err != nil {
				t.Fatal(err)
			}
			// One channel: the second publish must reuse or replace it.
			pub := broker.NewPublisher(conn, 1, 2*time.Second)
			ctx := context.Background()

			err := pub.Publish(ctx, tt.exchange(topo), "invoice.paid", message("evt_first"))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Publish = %v, want nil", err)
			case tt.wantErr == errAny && err == nil:
				t.Fatal("Publish = nil, want an error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("Publish = %v, want %v", err, tt.wantErr)
			}
			// Whatever happened to the first publish, the pool still works.
			if err := pub.Publish(ctx, topo.Events, "invoice.paid", message("evt_second")); err != nil {
				t.Fatalf("next Publish = %v, want nil", err)
			}
			var got []string
			for {
				d, ok, err := ch.Get(topo.Work, true)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				got = append(got, d.MessageId)
			}
			if !slices.Equal(got, tt.wantWork) {
				t.Errorf("work queue = %v, want %v", got, tt.wantWork)
			}
			if !pub.Ready() {
				t.Error("Ready() = false on a live connection")
			}
		})
	}
}

var errAny = errors.New("any error")

func TestPublishWithoutConnection(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: the connection never comes up.
	topo, conn := startConn(t, "amqp://guest:guest@127.0.0.1:1/", false)
	pub := broker.NewPublisher(conn, 2, 5*time.Second)
	// An answer at once, not after waiting for a confirm that cannot
	// come: that wait would end in ErrConfirmTimeout, not ErrUnavailable.
	err := pub.Publish(context.Background(), topo.Events, "invoice.paid", message("evt_1"))
	if !errors.Is(err, broker.ErrUnavailable) || errors.Is(err, broker.ErrConfirmTimeout) {
		t.Fatalf("Publish = %v, want ErrUnavailable", err)
	}
	if pub.Ready() {
		t.Error("Ready() = true without a connection")
	}
}

// TestPublishConcurrentOnOneChannel publishes many messages at once on a
// pool of one channel (so several await their confirm together), one of
// them to an exchange without bindings: that one alone must come back
// ErrUnroutable, the others must be confirmed and in the work queue. A
// few are the same message published twice, which must not be confused.
func TestPublishConcurrentOnOneChannel(t *testing.T) {
	t.Parallel()
	topo, conn := startConn(t, testenv.AMQPURL(), true)
	ch := inspect(t)
	lonely := topo.Namespace + ".lonely"
	if err := ch.ExchangeDeclare(lonely, amqp.ExchangeTopic, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(conn, 1, 5*time.Second)
	const n = 40
	const unroutable = n / 2
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			exchange := topo.Events
			if i == unroutable {
				exchange = lonely
			}
			id := fmt.Sprintf("evt_%d", i%(n-4)) // 0..3 twice
			msg := message(id)
			msg.Body = []byte(fmt.Sprintf(`{"id":%q,"n":%d}`, id, i))
			errs[i] = pub.Publish(context.Background(), exchange, "invoice.paid", msg)
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == unroutable && !errors.Is(err, broker.ErrUnroutable):
			t.Errorf("publish %d (unroutable) = %v, want ErrUnroutable", i, err)
		case i != unroutable && err != nil:
			t.Errorf("publish %d = %v, want nil", i, err)
		}
	}
	var got []int
	for {
		d, ok, err := ch.Get(topo.Work, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		var body struct{ N int }
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatal(err)
		}
		got = append(got, body.N)
	}
	slices.Sort(got)
	var want []int
	for i := range n {
		if i != unroutable {
			want = append(want, i)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("work queue holds messages %v, want %v", got, want)
	}
}

// TestPublishNacked makes RabbitMQ itself nack a publish on a live
// channel: a queue at its length limit with x-overflow reject-publish,
// bound beside the work queue, refuses the message, and a message routed to
// several queues is nacked when any of them refuses it. The publish must
// fail with ErrNacked (the api's "no 2xx without a positive confirm"), and
// the pool must go on publishing once there is room.
func TestPublishNacked(t *testing.T) {
	t.Parallel()
	topo, conn := startConn(t, testenv.AMQPURL(), true)
	ch := inspect(t)
	full := topo.Namespace + ".full"
	if _, err := ch.QueueDeclare(full, false, true, false, false, amqp.Table{
		"x-max-length": int32(1),
		"x-overflow":   "reject-publish",
	}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(full, "#", topo.Events, false, nil); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(conn, 1, 2*time.Second)
	ctx := context.Background()
	first, refused := stripeevent.NewEventID(), stripeevent.NewEventID()
	if err := pub.Publish(ctx, topo.Events, "invoice.paid", message(first)); err != nil {
		t.Fatalf("Publish into room = %v, want nil", err)
	}
	if err := pub.Publish(ctx, topo.Events, "invoice.paid", message(refused)); !errors.Is(err, broker.ErrNacked) {
		t.Fatalf("Publish into a full reject-publish queue = %v, want ErrNacked", err)
	}
	if _, err := ch.QueuePurge(full, false); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, topo.Events, "invoice.paid", message(first)); err != nil {
		t.Fatalf("Publish after the nack = %v, want nil: the pool must recover", err)
	}
	if !pub.Ready() {
		t.Error("Ready() = false after a nack on a live connection")
	}
}

// TestPublishSaysWhyTheBrokerClosedTheChannel: a publish the user may not
// make, or to a missing exchange, fails with the broker's own reason, not
// only "channel closed": an access refusal names the permission.
func TestPublishSaysWhyTheBrokerClosedTheChannel(t *testing.T) {
	t.Parallel()
	topo, guest := startConn(t, testenv.AMQPURL(), true)
	// The api's permission: write on the events exchange only.
	url := testenv.RabbitUser(t, topo.Permissions()[broker.RoleAPI])
	conn := broker.NewConn(broker.ConnConfig{URL: url, Name: "publisher-test refused", Topology: topo, DialTimeout: time.Second},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if _, err := conn.Await(wctx); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(conn, 1, 2*time.Second)
	err := pub.Publish(ctx, "", topo.Work, message("evt_refused"))
	if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "the broker refused access, the user lacks write permission on the exchange") ||
		!strings.Contains(err.Error(), "ACCESS_REFUSED") || !strings.Contains(err.Error(), "exchange 'amq.default'") {
		t.Errorf("publish to the default exchange as the api = %v, want the broker's access refusal naming the permission", err)
	}
	err = broker.NewPublisher(guest, 1, 2*time.Second).Publish(ctx, topo.Namespace+".missing", "x", message("evt_nowhere"))
	if !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Errorf("publish to a missing exchange = %v, want the broker's 404", err)
	}
	if err := pub.Publish(ctx, topo.Events, "invoice.paid", message("evt_allowed")); err != nil {
		t.Errorf("the publish the user may make = %v", err)
	}
}
