package reconcile_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/failure"
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

// fixtureType enqueues the fixture event's type, which the worker does
// not apply, as if it did: the enqueueing is what these tests show.
var fixtureType = []string{mockEventType}

func TestReconcileEnqueuesAMissingEventOnceAndAKnownOneNever(t *testing.T) {
	t.Parallel()
	base := testenv.StripeMock(t)
	// A clock a day after the fixture event, so it lies within the
	// 30 days the Events API reaches back.
	now := time.Unix(mockEventCreated, 0).Add(24 * time.Hour).UTC()
	tests := []struct {
		name   string
		parked *models.DeadEvent // the ledger's row of the event; nil: none
		types  []string          // Config.Types; nil: the default, the handled types
		want   []int             // events enqueued by consecutive passes
	}{
		{"missing: enqueued once, then the checkpoint has moved past it", nil, fixtureType, []int{1, 0}},
		{"known to the ledger: never enqueued", &models.DeadEvent{Payload: []byte(`{"id":"` + mockEventID + `"}`), Signature: "t=1,v1=checked"}, fixtureType, []int{0, 0}},
		// A parked message nothing proved: its row does not make the id known.
		{"dead unverified: enqueued once", &models.DeadEvent{}, fixtureType, []int{1, 0}},
		// plan.created has no decoder: the worker would only record it,
		// after fetching it from Stripe. Counted, never enqueued.
		{"a type the worker does not apply: counted, never enqueued", nil, nil, []int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			store := testenv.Store(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if tt.parked != nil {
				ev := *tt.parked
				ev.ID, ev.Type, ev.Attempts, ev.LastError = mockEventID, mockEventType, 1, "x"
				if err := store.MarkDead(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			var seen outcomes
			rec, err := reconcile.New(reconcile.Config{APIKey: "sk_test_123", APIBase: base, Topology: e.topo, Types: tt.types, Now: func() time.Time { return now }, Observe: seen.observe},
				quietLogger(), store, e.pub)
			if err != nil {
				t.Fatal(err)
			}
			for pass, want := range tt.want {
				res, err := rec.Reconcile(ctx)
				if err != nil {
					t.Fatalf("pass %d: %v", pass+1, err)
				}
				unhandled := 0
				if tt.types == nil && pass == 0 { // the second pass starts past the event
					unhandled = 1
				}
				if res.Listed != 1 || res.Enqueued != want || res.Unhandled != unhandled {
					t.Errorf("pass %d: listed %d, enqueued %d, unhandled %d; want 1, %d, %d", pass+1, res.Listed, res.Enqueued, res.Unhandled, want, unhandled)
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
			if n := seen.n(reconcile.PurposeReconcile, reconcile.OutcomeOK); n != len(tt.want) {
				t.Errorf("%d calls to Stripe counted, want one a pass (%v)", n, seen.got)
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
	// No signature, and no mark of our own that anyone could forge: the
	// worker fetches the event again from Stripe by id.
	for k := range d.Headers {
		if !strings.HasPrefix(k, "x-") { // the broker's own, such as x-delivery-count
			t.Errorf("enqueued with header %s (%v), want none of ours", k, d.Headers[k])
		}
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
	rec, err := reconcile.New(reconcile.Config{APIKey: "sk_test_123", APIBase: base, Topology: e.topo, Types: fixtureType, Margin: time.Hour, Now: func() time.Time { return now }},
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

func TestFetchEvent(t *testing.T) {
	t.Parallel()
	mock := testenv.StripeMock(t)
	tests := []struct {
		name      string
		base      string
		wantClass failure.Class // "" for success
	}{
		{"Stripe's copy", mock, ""},
		{"unknown id", testenv.StripeNotFound(t), failure.Unverified},
		{"Stripe unreachable", "http://127.0.0.1:1", failure.Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: tt.base})
			if err != nil {
				t.Fatal(err)
			}
			body, err := f.FetchEvent(context.Background(), "evt_gone", "")
			if failure.Of(err) != tt.wantClass {
				t.Fatalf("FetchEvent error %v (class %q), want class %q", err, failure.Of(err), tt.wantClass)
			}
			if err != nil {
				return
			}
			var ev struct{ ID, Type string }
			if err := json.Unmarshal(body, &ev); err != nil || ev.ID != "evt_gone" || ev.Type != mockEventType {
				t.Errorf("fetched %s %s (%v), want stripe-mock's %s under the id asked for", ev.ID, ev.Type, err, mockEventType)
			}
		})
	}
	if _, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "", APIBase: mock}); err == nil {
		t.Error("NewFetcher without a key = nil error")
	}
}
