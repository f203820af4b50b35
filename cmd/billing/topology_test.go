package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestParkedEventsStayPutUnderScans: every `billing dlq list` and `billing
// status` takes the parked events and returns them with requeue, which
// RabbitMQ counts as a delivery. With a delivery limit on the DLQ (RabbitMQ
// 4 gives quorum queues 20 by default) the broker would dead-letter them
// to the replay exchange after about 20 scans: a replay nobody asked for.
// After 50 of each, the events are all still parked, counted more than 20
// times, and nothing reached the work queue.
func TestParkedEventsStayPutUnderScans(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	var parked []string
	for range 3 {
		id := billingtest.NewEventID()
		parked = append(parked, id)
		q.park(t, id, "invoice.paid", failure.Permanent, time.Now())
	}
	q.waitReady(t, q.topo.DLQ, len(parked))
	// A replay would reach the work queue; this consumer would see it.
	replays, err := testenv.Channel(t).Consume(q.topo.Work, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	getenv := dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": testenv.Database(t)})
	ctx := context.Background()
	for i := range 50 {
		var stdout, stderr bytes.Buffer
		if err := run(ctx, []string{"dlq", "list"}, getenv, &stdout, &stderr); err != nil {
			t.Fatalf("dlq list #%d: %v\n%s", i+1, err, stderr.String())
		}
		for _, id := range parked {
			if !strings.Contains(stdout.String(), id) {
				t.Fatalf("dlq list #%d does not show %s:\n%s", i+1, id, stdout.String())
			}
		}
		stdout.Reset()
		// Exit 1: the DLQ grew in the last minutes, a warning.
		if err := run(ctx, []string{"status", "--management-url", "off"}, getenv, &stdout, &stderr); exitCode(err) > 1 {
			t.Fatalf("status #%d: %v\n%s%s", i+1, err, stdout.String(), stderr.String())
		}
	}
	select {
	case d := <-replays:
		t.Fatalf("event %s reached the work queue (x-death %v)", d.MessageId, d.Headers["x-death"])
	default:
	}
	for {
		d, ok, err := q.ch.Get(q.topo.DLQ, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		// Each scan counted: more than any default limit, and still parked.
		if n := broker.HeaderInt(d.Headers, "x-delivery-count"); n <= 20 {
			t.Errorf("%s: x-delivery-count %v after 100 scans, want more than 20", d.MessageId, d.Headers["x-delivery-count"])
		}
		i := slices.Index(parked, d.MessageId)
		if i < 0 {
			t.Errorf("DLQ holds %s, not one of the parked events", d.MessageId)
			continue
		}
		parked = slices.Delete(parked, i, i+1)
	}
	if len(parked) > 0 {
		t.Errorf("events %v left the DLQ", parked)
	}
	if n := q.ready(t, q.topo.Work); n != 0 {
		t.Errorf("work queue holds %d messages, want 0", n)
	}
}

// TestTopologyChangesSettingsInPlace: WORK_DELIVERY_LIMIT and
// DLQ_MAX_LENGTH are policies, so `billing topology` changes them on queues
// that hold messages, losing none, and the new values take effect.
func TestTopologyChangesSettingsInPlace(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	topology := func(vars map[string]string) {
		t.Helper()
		if _, err := runCmd(t, dlqCmdEnv(ns, vars), "topology", "--management-url", testenv.ManagementURL()); err != nil {
			t.Fatalf("topology %v: %v", vars, err)
		}
	}
	topology(nil)
	for range 5 {
		publish(t, q.ch, q.topo.Events, billingtest.NewEventID(), true)
	}
	var parked []string
	for range 2 {
		id := billingtest.NewEventID()
		parked = append(parked, id)
		q.park(t, id, "invoice.paid", failure.Permanent, time.Now())
	}
	q.waitReady(t, q.topo.Work, 5)
	q.waitReady(t, q.topo.DLQ, 2)

	topology(map[string]string{"WORK_DELIVERY_LIMIT": "3", "DLQ_MAX_LENGTH": "3"})
	if w, d := q.ready(t, q.topo.Work), q.ready(t, q.topo.DLQ); w != 5 || d != 2 {
		t.Fatalf("after the change: work %d, DLQ %d messages, want 5 and 2", w, d)
	}

	// The work queue's new limit: a message returned more than 3 times is
	// parked (under the former 20 it would take 21 returns).
	var returns int
	for q.ready(t, q.topo.DLQ) == 2 {
		if returns++; returns > 5 {
			t.Fatalf("a message returned %d times is still in the work queue: the limit of 3 did not apply", returns-1)
		}
		d, ok, err := q.ch.Get(q.topo.Work, false)
		if err != nil || !ok {
			t.Fatalf("get from the work queue: %v, %v", ok, err)
		}
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
		// Dead-lettering is asynchronous: wait until the message is back
		// in the work queue or parked before taking it again.
		testenv.Eventually(t, 5*time.Second, func() bool {
			return q.ready(t, q.topo.Work) == 5 || q.ready(t, q.topo.DLQ) == 3
		}, "the returned message back in the work queue or in the DLQ")
	}
	q.waitReady(t, q.topo.DLQ, 3)
	q.waitReady(t, q.topo.Work, 4)

	// The DLQ's new length limit: full, it refuses what is parked (the
	// worker would retry it) and drops none of what it holds. A quorum
	// queue takes one message past its limit before it refuses.
	var accepted []string
	var refused string
	for range 3 {
		id := billingtest.NewEventID()
		if !publish(t, q.ch, q.topo.Dead, id, false) {
			refused = id
			break
		}
		accepted = append(accepted, id)
	}
	if refused == "" || len(accepted) > 1 {
		t.Fatalf("the DLQ limited to 3, holding 3, took %d more and refused %q", len(accepted), refused)
	}
	topology(map[string]string{"WORK_DELIVERY_LIMIT": "3", "DLQ_MAX_LENGTH": "10"})
	if !publish(t, q.ch, q.topo.Dead, refused, false) {
		t.Errorf("parking in the DLQ after raising its limit to 10 was refused")
	}
	ids := q.ids(t, q.topo.DLQ)
	want := append(append(parked, accepted...), refused)
	if len(ids) != len(want)+1 {
		t.Errorf("DLQ holds %v, want %v and the event the work queue's limit parked", ids, want)
	}
	for _, id := range want {
		if !slices.Contains(ids, id) {
			t.Errorf("DLQ lost %s: holds %v", id, ids)
		}
	}
}

// publish sends a persistent message with event id id to exchange and
// returns whether the broker confirmed it; wantAck fails the test on a
// nack.
func publish(t *testing.T, ch *amqp.Channel, exchange, id string, wantAck bool) bool {
	t.Helper()
	dc, err := ch.PublishWithDeferredConfirm(exchange, "invoice.paid", true, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, MessageId: id, Body: []byte(`{"id":"` + id + `"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wantAck && !ok {
		t.Fatalf("publish %s to %s: nacked", id, exchange)
	}
	return ok
}
