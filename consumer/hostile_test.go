package consumer_test

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/verify"
)

// TestHostileMessagesDoNotStopTheWorker publishes straight to the broker
// what once killed the worker or went on unread: bodies nested millions
// of levels deep, signed and not (a decoder without a depth bound
// overflows the goroutine's stack, a fatal error that would end this test
// process with the worker in it), a signed body far over the size cap and
// a signed body with invalid UTF-8. The worker runs in this process with
// STRIPE_API_KEY set, so that unsigned bodies are read too. Each is
// parked unverified (malformed) without a call to Stripe, none is applied,
// and a genuine event sent after them is applied by the same worker.
func TestHostileMessagesDoNotStopTheWorker(t *testing.T) {
	t.Parallel()
	// The cap is above the deep bodies (6 MB closed), so that the depth
	// bound stops them, not the size cap; the oversized body, twice the
	// cap, stays under RabbitMQ 4's default max_message_size of 16 MiB.
	// 3 million levels overflow the stack of a decoder without the bound.
	const maxBody = 7 << 20
	const levels = 3_000_000
	var calls atomic.Int32
	w := startTrusted(t, counting(t, &calls), 1, maxBody)
	inv, open := "in_"+strings.ToLower(billingtest.NewEventID()[4:]), time.Now().Add(-time.Hour).Truncate(time.Second)
	w.openInvoice(t, inv, open)

	paid := func(id string) []byte { return forgedPaid(id, inv, open.Add(time.Second)) }
	deep := func(id string, closed bool) []byte {
		b := bytes.TrimSuffix(paid(id), []byte("}"))
		b = append(b, `,"note":`...)
		b = append(b, bytes.Repeat([]byte("["), levels)...)
		if closed {
			b = append(b, bytes.Repeat([]byte("]"), levels)...)
		}
		return append(b, '}')
	}
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = billingtest.NewEventID()
	}
	over := bytes.TrimSuffix(paid(ids[3]), []byte("}"))
	over = append(append(append(over, `,"note":"`...), bytes.Repeat([]byte("a"), 2*maxBody)...), `"}`...)
	utf8 := bytes.Replace(paid(ids[4]), []byte(`"status"`), []byte("\"note\":\"\xff\xfe\",\"status\""), 1)
	hostile := []struct {
		name   string
		id     string
		body   []byte
		signed bool
		props  bool // message id and type set, as the api sets them
	}{
		{"signed, 3 million levels deep, closed", ids[0], deep(ids[0], true), true, true},
		{"signed, 3 million levels deep, unclosed", ids[1], deep(ids[1], false), true, true},
		{"unsigned, 3 million levels deep, no properties", ids[2], deep(ids[2], false), false, false},
		{"signed, twice the size cap", ids[3], over, true, true},
		{"signed, invalid UTF-8", ids[4], utf8, true, true},
	}
	if !bytes.Contains(utf8, []byte{0xff}) {
		t.Fatal("the invalid UTF-8 body has no invalid byte: the event's shape changed")
	}
	for _, m := range hostile {
		msg := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: m.body}
		if m.props {
			msg = broker.NewEvent(m.id, "invoice.paid", m.body, "", "billing-api", time.Now())
		}
		if m.signed {
			msg = testenv.Signed(msg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.events.Publish(ctx, w.topo.Events, "invoice.paid", msg)
		cancel()
		if err != nil {
			t.Fatalf("publish %s: %v", m.name, err)
		}
	}

	parked := map[string]amqp.Delivery{} // by message id; "" the one without properties
	for _, d := range w.getDLQ(len(hostile), 60*time.Second) {
		parked[d.MessageId] = d
	}
	for _, m := range hostile {
		id := m.id
		if !m.props {
			id = ""
		}
		d, ok := parked[id]
		if !ok {
			t.Errorf("%s: not parked", m.name)
			continue
		}
		e, _ := d.Headers[broker.HeaderError].(string)
		if c := d.Headers[broker.HeaderErrorClass]; c != "unverified" || !strings.HasPrefix(e, "verify: malformed: ") {
			t.Errorf("%s: parked as %v for %q, want unverified, malformed", m.name, c, e)
		}
		if !bytes.Equal(d.Body, m.body) {
			t.Errorf("%s: parked body changed (%d bytes, sent %d)", m.name, len(d.Body), len(m.body))
		}
		if _, ok := w.ledger(t, m.id); ok {
			t.Errorf("%s: in the ledger", m.name)
		}
	}
	if got := testutil.ToFloat64(w.metrics.Unverified.WithLabelValues(string(verify.Malformed))); got != float64(len(hostile)) {
		t.Errorf("billing_events_unverified_total{reason=malformed} = %v, want %d", got, len(hostile))
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("Stripe asked %d times, want never for a malformed body", n)
	}
	if s := w.invoiceStatus(t, inv); s != "open" {
		t.Fatalf("invoice %s is %q, want open", inv, s)
	}

	// The same worker, still running, applies the genuine event.
	genuine := billingtest.NewEventID()
	w.publishSigned(t, w.topo.Events, "invoice.paid", paid(genuine), testenv.WebhookSecret, time.Now())
	testenv.Eventually(t, 20*time.Second, func() bool { return w.invoiceStatus(t, inv) == "paid" }, "invoice %s paid by %s", inv, genuine)
	if n := w.ready(w.topo.DLQ); n != 0 {
		t.Errorf("%d more parked, want none", n)
	}
}
