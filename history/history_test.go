package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

// invoiceEvent is the invoice's event of type typ in events.
func invoiceEvent(t *testing.T, events [][]byte, typ string) (raw []byte, id string, created time.Time) {
	t.Helper()
	for _, raw := range events {
		var ev struct {
			ID, Type string
			Created  int64
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == typ {
			return raw, ev.ID, time.Unix(ev.Created, 0).UTC()
		}
	}
	t.Fatalf("no %s event", typ)
	return nil, "", time.Time{}
}

// TestOf: the history of an invoice whose lifecycle (Stripe's fixtures)
// the real Processor applied, one event late (stale), plus an event of a
// type without a handler and one parked dead: the row, and every event in
// Stripe's order with its status before and after and its outcome; the
// JSON keys are the documented schema's.
func TestOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.Store(t)
	p := ledger.NewProcessor(s, nil)
	lc, late := billingtest.LateLifecycle(billing.SupportedVersions()[0], 2)
	paidRaw, paidID, paidAt := invoiceEvent(t, lc.Events, "invoice.paid")
	var paid map[string]any
	if err := json.Unmarshal(paidRaw, &paid); err != nil {
		t.Fatal(err)
	}
	invoice := paid["data"].(map[string]any)["object"].(map[string]any)
	overpaidID, deadID := billingtest.NewEventID(), billingtest.NewEventID()
	events := append(slices.Clone(lc.Events), billingtest.Event(overpaidID, "invoice.overpaid", paidAt.Add(time.Minute), invoice))
	half := len(events) / 2
	for _, raw := range events[:half] {
		if _, err := p.Process(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.ProcessBatch(ctx, events[half:]); err != nil {
		t.Fatal(err)
	}
	dead := billingtest.Event(deadID, "invoice.updated", paidAt.Add(2*time.Minute), invoice)
	if err := s.MarkDead(ctx, models.DeadEvent{ID: deadID, Type: "invoice.updated", Payload: dead, Signature: testenv.Sign(dead, testenv.WebhookSecret, time.Now()), Attempts: 8, LastError: "lock wait timeout"}); err != nil {
		t.Fatal(err)
	}

	rep, err := history.Of(ctx, lookup.New(s), lc.IDs.Invoice)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Table != "invoices" || rep.Row["stripe_id"] != lc.IDs.Invoice || rep.Row["status"] != "paid" || len(rep.Columns) != len(rep.Row) {
		t.Errorf("row: table %q, %v", rep.Table, rep.Row)
	}
	// invoice.paid ties with invoice.payment_succeeded, applied before it
	// (same second, same state): it is applied when its id is the larger.
	_, succeededID, _ := invoiceEvent(t, lc.Events, "invoice.payment_succeeded")
	tieOutcome := func(id string) string {
		if rep.Row["last_event_id"] == id {
			return history.Applied
		}
		return history.Stale
	}
	type step struct{ typ, before, after, outcome string }
	want := []step{
		{"invoice.created", "", "draft", history.Applied},
		{"invoice.finalized", "draft", "open", history.Stale},
		{"invoice.payment_failed", "open", "open", history.Applied},
		{"invoice.payment_succeeded", "open", "paid", history.Applied},
		{"invoice.paid", "paid", "paid", tieOutcome(paidID)},
		{"invoice.overpaid", "paid", "paid", history.Ignored},
		{"invoice.updated", "paid", "paid", history.Dead},
	}
	var got []step
	for _, ev := range rep.Events {
		got = append(got, step{ev.Type, deref(ev.StatusBefore), deref(ev.StatusAfter), ev.Outcome})
	}
	if !slices.Equal(got, want) {
		t.Errorf("timeline:\n got %v\nwant %v", got, want)
	}
	for i, ev := range rep.Events {
		if ev.Created == nil || i > 0 && ev.Created.Before(*rep.Events[i-1].Created) {
			t.Errorf("event %d created %v before its predecessor's", i, ev.Created)
		}
		switch ev.ID {
		case late.Finalized, overpaidID, deadID, paidID, succeededID:
		default:
			if ev.Type != "invoice.created" && ev.Type != "invoice.payment_failed" {
				t.Errorf("event %s %s is not the invoice's", ev.ID, ev.Type)
			}
		}
		if (ev.Outcome == history.Dead) != (ev.Error != nil && *ev.Error == "lock wait timeout" && ev.Processed == nil) {
			t.Errorf("event %s: outcome %s, error %v, processed %v", ev.ID, ev.Outcome, ev.Error, ev.Processed)
		}
	}

	// The JSON form: the documented keys, null where unknown.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		ID     string           `json:"id"`
		Table  string           `json:"table"`
		Row    map[string]any   `json:"row"`
		Events []map[string]any `json:"events"`
	}
	var top map[string]any
	if err := json.Unmarshal(b, &top); err != nil || json.Unmarshal(b, &doc) != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"events", "id", "row", "table"}) {
		t.Errorf("report keys %v", keys)
	}
	eventKeys := []string{"created", "error", "id", "outcome", "processed", "received", "status_after", "status_before", "type"}
	for _, ev := range doc.Events {
		if keys := slices.Sorted(maps.Keys(ev)); !slices.Equal(keys, eventKeys) {
			t.Errorf("event keys %v, want %v", keys, eventKeys)
		}
	}
	if first := doc.Events[0]; first["status_before"] != nil || first["status_after"] != "draft" || first["outcome"] != "applied" {
		t.Errorf("first event in JSON: %v", first)
	}
	if doc.Row["status"] != "paid" || doc.Row["amount_paid"] != float64(billingtest.VersionedTotal) || doc.Table != "invoices" {
		t.Errorf("row in JSON: %v", doc.Row)
	}
}

// TestOfLedgerOnly: an object no table holds, whose events the ledger
// alone knows (no handler for their type), has a report without a row.
func TestOfLedgerOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.Store(t)
	id := billingtest.NewEventID()
	raw := billingtest.Event(id, "issuing_card.created", time.Now(), map[string]any{"id": "ic_ledger_only", "object": "issuing.card"})
	if _, err := ledger.NewProcessor(s, nil).Process(ctx, raw); err != nil {
		t.Fatal(err)
	}
	rep, err := history.Of(ctx, lookup.New(s), "ic_ledger_only")
	if err != nil || rep.Table != "" || rep.Row != nil || len(rep.Events) != 1 || rep.Events[0].ID != id || rep.Events[0].Outcome != history.Ignored {
		t.Errorf("Of(ic_ledger_only) = %+v, %v", rep, err)
	}
}

// TestOfUnknownAndBadIDs: an id nothing knows is ErrUnknown; what is not
// an object id is an error that says so, before any query.
func TestOfUnknownAndBadIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testenv.Store(t)
	if _, err := history.Of(ctx, lookup.New(s), "in_nothing"); !errors.Is(err, history.ErrUnknown) {
		t.Errorf("unknown id: %v, want ErrUnknown", err)
	}
	for _, id := range []string{"", "in nothing", "IN_1", "cus_", "x", "cus_1;DROP", "evt_1NvYyf2eZvKYlo2C"} {
		_, err := history.Of(ctx, lookup.New(s), id)
		if err == nil || errors.Is(err, history.ErrUnknown) || history.CheckID(id) == nil {
			t.Errorf("Of(%q): %v, want a form error", id, err)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
