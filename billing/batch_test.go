package billing_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/models"
)

// TestProcessBatch: one transaction, a savepoint per event. The same
// event twice in a batch applies once; an unparsable event and a poison
// one fail alone (permanent, schema) while the rest commit, and the batch ends in
// the rows the same events give one at a time.
func TestProcessBatch(t *testing.T) {
	t.Parallel()
	stream := billingtest.Lifecycle(2, start)
	poison := billingtest.Event("evt_poison_b", "customer.created", start, map[string]any{"id": 4000000, "object": "customer"})
	batch := [][]byte{stream[0], stream[0], []byte(`{not json`), stream[1], poison}
	batch = append(batch, stream[2:]...)

	s, p := setup(t)
	outcomes, err := p.ProcessBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(outcomes) != len(batch) {
		t.Fatalf("%d outcomes for %d events", len(outcomes), len(batch))
	}
	for i, o := range outcomes {
		switch i {
		case 1:
			if o.Err != nil || o.Result != billing.Duplicate {
				t.Errorf("second copy in the batch: %+v, want duplicate", o)
			}
		case 2:
			if o.Err == nil || failure.Of(o.Err) != failure.Permanent {
				t.Errorf("event %d: %+v, want a permanent error", i, o)
			}
		case 4:
			if o.Err == nil || failure.Of(o.Err) != failure.Schema {
				t.Errorf("event %d: %+v, want a schema error", i, o)
			}
		default:
			if o.Err != nil || o.Result != billing.Processed {
				t.Errorf("event %d: %+v, want processed", i, o)
			}
		}
	}
	var poisonRows int64
	s.DB().Model(&models.StripeEvent{}).Where("id = ?", "evt_poison_b").Count(&poisonRows)
	if poisonRows != 0 {
		t.Errorf("the poison event's ledger row survived its savepoint's rollback")
	}

	ref, refProc := setup(t)
	for _, raw := range stream {
		process(t, refProc, raw, billing.Processed)
	}
	if got, want := snapshot(t, s), snapshot(t, ref); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("batch rows differ from one-at-a-time rows:\n got %v\nwant %v", got, want)
	}
}
