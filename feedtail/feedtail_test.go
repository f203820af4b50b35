package feedtail_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/feedtail"
	"github.com/stripe-billing/billing/internal/testenv"
)

func TestTail(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	pub, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.ExchangeDeclare(changes.Exchange(ns), amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	tail, err := feedtail.Open(conn, ns, "subscription.#")
	if err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tail.Run(ctx, w) }()
	t.Cleanup(func() {
		cancel()
		_ = r.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	sub := func(id string, seq uint64, before, after string) changes.Change {
		return changes.Change{Version: 1, ID: id, Key: "subscription.status." + after, Kind: changes.Status, ObjectType: "subscription",
			ObjectID: "sub_\x1b[2J", Sequence: seq, Source: changes.SourceEvent, EventCreated: at,
			Before: map[string]any{"status": before}, After: map[string]any{"status": after}}
	}
	publish := func(key, id string, body []byte) {
		t.Helper()
		if err := pub.PublishWithContext(ctx, changes.Exchange(ns), key, false, false, amqp.Publishing{MessageId: id, Body: body, Timestamp: at}); err != nil {
			t.Fatal(err)
		}
	}
	publishChange := func(c changes.Change) {
		t.Helper()
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		publish(c.Key, c.ID, b)
	}
	created := changes.Change{Version: 1, ID: "c1", Key: "subscription.created", Kind: changes.Created, ObjectType: "subscription",
		ObjectID: "sub_2", Sequence: 1, Source: changes.SourceBackfill, EventCreated: at,
		After: map[string]any{"status": "active", "quantity": 2.0, "metadata": map[string]any{"k": "v\nw"}}}
	publishChange(sub("a", 1, "incomplete", "active"))
	publishChange(sub("a", 1, "incomplete", "active"))
	publishChange(changes.Change{Version: 1, ID: "i", Key: "invoice.status.paid", ObjectType: "invoice", ObjectID: "in_1", Sequence: 1})
	publishChange(sub("c", 4, "active", "past_due"))
	publishChange(sub("b", 2, "active", "canceled"))
	publishChange(created)
	publish("subscription.status.x", "m\x1b]0;pwned\x07", []byte("{\"version\":9,\"id\":\"\x1b]0;pwned\x07\"}"))
	publish("subscription.status.x", "", []byte(`{"version":9,"id":"\u001b]0;pwned\u0007"}`))

	want := []string{
		`2026-12-07T10:00:00Z subscription.status.active subscription "sub_\x1b[2J" #1 status: incomplete → active`,
		`2026-12-07T10:00:00Z subscription.status.active subscription "sub_\x1b[2J" #1 status: incomplete → active [duplicate]`,
		`2026-12-07T10:00:00Z subscription.status.past_due subscription "sub_\x1b[2J" #4 status: active → past_due [gap: 2 missing before it]`,
		`2026-12-07T10:00:00Z subscription.status.canceled subscription "sub_\x1b[2J" #2 status: active → canceled [late: a newer change came first]`,
		`2026-12-07T10:00:00Z subscription.created subscription sub_2 #1 metadata: {"k":"v\nw"} quantity: 2 status: active (backfill)`,
		`2026-12-07T10:00:00Z subscription.status.x unreadable message "m\x1b]0;pwned\a": changes: decode: not a JSON object: invalid character '\x1b' in string literal`,
		`2026-12-07T10:00:00Z subscription.status.x unreadable message -: changes: unknown schema version 9 (this package reads 1)`,
	}
	lines := bufio.NewScanner(r)
	for i, w := range want {
		if !lines.Scan() {
			t.Fatalf("line %d: %v", i+1, lines.Err())
		}
		if got := lines.Text(); got != w {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, got, w)
		}
	}
}
