package maintenance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/reconcile"
)

// stripe-mock v0.183.0 lists one fixture event, created at 1234567890.
const (
	mockEventID   = "evt_1OPouqJN5vQBdWExgxCYZfvK"
	mockEventType = "plan.created" // no decoder: enqueued only because the test names it
)

func TestReconcile(t *testing.T) {
	t.Parallel()

	// The event Stripe lists and the ledger never saw reaches the work
	// queue once; the next pass starts past it.
	t.Run("EnqueuesAMissingEventOnce", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		store := testenv.Store(t)
		now := time.Unix(1234567890, 0).Add(24 * time.Hour) // within the Events API's 30 days
		r, err := maintenance.NewReconcile(reconcile.Config{APIKey: "sk_test_123", APIBase: testenv.StripeMock(t), Topology: e.Topo, Types: []string{mockEventType}, Now: func() time.Time { return now }},
			quietLogger(), store, e.Pub)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for pass, want := range []int{1, 0} {
			res, err := r.Pass(ctx)
			if err != nil || res.Listed != 1 || res.Enqueued != want {
				t.Fatalf("pass %d: listed %d, enqueued %d, %v; want 1, %d", pass+1, res.Listed, res.Enqueued, err, want)
			}
			got := e.TakeAll(t, e.Topo.Work)
			if len(got) != want || (want == 1 && got[0].MessageId != mockEventID) {
				t.Fatalf("pass %d: %d messages in the work queue, want %d (%s)", pass+1, len(got), want, mockEventID)
			}
		}
	})

	t.Run("NeedsAKey", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		_, err := maintenance.NewReconcile(reconcile.Config{Topology: e.Topo}, nil, testenv.Store(t), e.Pub)
		if err == nil || !strings.Contains(err.Error(), "no Stripe API key") {
			t.Errorf("NewReconcile without a key = %v, want refused", err)
		}
	})
}
