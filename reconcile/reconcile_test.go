package reconcile_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/reconcile"
)

// stripe-mock v0.183.0 lists one fixture event.
const (
	mockEventID      = "evt_1OPouqJN5vQBdWExgxCYZfvK"
	mockEventType    = "plan.created"
	mockEventCreated = 1234567890
)

func TestReconcileEnqueuesAMissingEventOnceAndAKnownOneNever(t *testing.T) {
	t.Parallel()
	base := testenv.StripeMock(t)
	// A clock a day after the fixture event, so it lies within the
	// 30 days the Events API reaches back.
	now := time.Unix(mockEventCreated, 0).Add(24 * time.Hour).UTC()
	tests := []struct {
		name  string
		known bool
		want  []int // events enqueued by consecutive passes
	}{
		{"missing: enqueued once, then the checkpoint has moved past it", false, []int{1, 0}},
		{"known to the ledger: never enqueued", true, []int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			store := testenv.Store(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if tt.known {
				if err := store.MarkDead(ctx, models.DeadEvent{ID: mockEventID, Type: mockEventType, Attempts: 1, LastError: "x"}); err != nil {
					t.Fatal(err)
				}
			}
			rec, err := reconcile.New(reconcile.Config{APIKey: "sk_test_123", APIBase: base, Topology: e.topo, Now: func() time.Time { return now }},
				quietLogger(), store, e.pub)
			if err != nil {
				t.Fatal(err)
			}
			for pass, want := range tt.want {
				res, err := rec.Reconcile(ctx)
				if err != nil {
					t.Fatalf("pass %d: %v", pass+1, err)
				}
				if res.Listed != 1 || res.Enqueued != want {
					t.Errorf("pass %d: listed %d, enqueued %d; want 1, %d", pass+1, res.Listed, res.Enqueued, want)
				}
				cp, err := store.Checkpoint(ctx, reconcile.CheckpointStripeEvents)
				if err != nil || cp != now.Format(time.RFC3339) {
					t.Errorf("pass %d: checkpoint %q, %v; want %s", pass+1, cp, err, now.Format(time.RFC3339))
				}
				got := e.takeAll(t, e.topo.Work)
				if len(got) != want {
					t.Fatalf("pass %d: %d messages in the work queue, want %d", pass+1, len(got), want)
				}
				for _, d := range got {
					checkAPIShape(t, d, e.topo.Events)
				}
			}
		})
	}
}

// checkAPIShape asserts that d looks like what the api publishes for the
// fixture event.
func checkAPIShape(t *testing.T, d amqp.Delivery, exchange string) {
	t.Helper()
	if d.Exchange != exchange || d.RoutingKey != mockEventType || d.MessageId != mockEventID || d.Type != mockEventType ||
		d.ContentType != "application/json" || d.DeliveryMode != amqp.Persistent {
		t.Errorf("enqueued exchange %q key %q id %q type %q content-type %q mode %d", d.Exchange, d.RoutingKey, d.MessageId, d.Type, d.ContentType, d.DeliveryMode)
	}
	var ev map[string]any
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	// Stripe's JSON as sent, fields stripe-go does not model included.
	obj, _ := ev["data"].(map[string]any)["object"].(map[string]any)
	if ev["id"] != mockEventID || ev["object"] != "event" || ev["created"] != float64(mockEventCreated) || obj["id"] != "price_1OPouiJN5vQBdWExAQaqTooZ" {
		t.Errorf("body = %s", d.Body)
	}
	if _, ok := ev["request"]; !ok {
		t.Errorf("body lost the request field: %s", d.Body)
	}
}

func TestReconcileFirstRunStaysWithinTheEventsAPIRetention(t *testing.T) {
	t.Parallel()
	base := testenv.StripeMock(t)
	e := newEnv(t)
	store := testenv.Store(t)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	rec, err := reconcile.New(reconcile.Config{APIKey: "sk_test_123", APIBase: base, Topology: e.topo, Margin: time.Hour, Now: func() time.Time { return now }},
		quietLogger(), store, e.pub)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := rec.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-30*24*time.Hour + time.Hour); !res.Since.Equal(want) {
		t.Errorf("first run since %s, want %s", res.Since, want)
	}
	// The fixture is from 2009: outside the window, not enqueued.
	if res.Enqueued != 0 {
		t.Errorf("enqueued %d events older than the window", res.Enqueued)
	}
	now = now.Add(2 * time.Hour)
	if res, err = rec.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-3 * time.Hour); !res.Since.Equal(want) {
		t.Errorf("second run since %s, want the checkpoint minus the margin, %s", res.Since, want)
	}
}
