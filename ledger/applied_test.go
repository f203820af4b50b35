package ledger_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/models"
)

// TestLedgerNamesObjectAndApplied: each ledger row names its event's
// object and says whether the event changed the object's row, one event
// at a time, in a batch done as sets, and in a batch that falls back to
// one savepoint per event (a poison event spoils the sets) alike
// (billingtest.LateLifecycle, with a duplicate, a preview without an id
// and an event without a handler, neither applied nor stale: NULL). The
// event each row names as its last is applied.
func TestLedgerNamesObjectAndApplied(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"OneAtATime", "Batch", "BatchFallback"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			lc, late := billingtest.LateLifecycle(billing.SupportedVersions()[0], 7)
			stream := lc.Events
			previewID, unknownID := billingtest.NewEventID(), billingtest.NewEventID()
			stream = append(stream, stream[0],
				billingtest.Event(previewID, "invoice.upcoming", start, map[string]any{"object": "invoice", "status": "draft"}),
				billingtest.Event(unknownID, "issuing_card.created", start, map[string]any{"id": "ic_1", "object": "issuing.card"}))
			s, p, fb := batchSetup(t)
			poisonID := ""
			switch mode {
			case "OneAtATime":
				for _, raw := range stream {
					if _, err := p.Process(context.Background(), raw); err != nil {
						t.Fatal(err)
					}
				}
			case "BatchFallback":
				// A currency too long for its column fails the sets'
				// statement, and the batch runs again event by event.
				poisonID = billingtest.NewEventID()
				poison := billingtest.Event(poisonID, "customer.updated", start.Add(time.Hour),
					map[string]any{"id": "cus_poison", "object": "customer", "currency": "usdx"})
				stream = append(stream[:3:3], append([][]byte{poison}, stream[3:]...)...)
				fallthrough
			case "Batch":
				outcomes, err := p.ProcessBatch(context.Background(), stream)
				if err != nil {
					t.Fatal(err)
				}
				for i, o := range outcomes {
					if (o.Err != nil) != (i == 3 && poisonID != "") {
						t.Fatalf("event %d: %v", i, o.Err)
					}
				}
				if want := map[bool]int64{false: 0, true: 1}[poisonID != ""]; fb.n.Load() != want {
					t.Fatalf("%d batches applied event by event, want %d", fb.n.Load(), want)
				}
				stream = slices.DeleteFunc(stream, func(raw []byte) bool { return poisonID != "" && strings.Contains(string(raw), poisonID) })
			}

			var all []models.StripeEvent
			if err := s.DB().Find(&all).Error; err != nil {
				t.Fatal(err)
			}
			rows := map[string]models.StripeEvent{}
			for _, row := range all {
				rows[row.ID] = row
			}
			if _, ok := rows[poisonID]; ok {
				t.Errorf("the poison event %s has a ledger row", poisonID)
			}
			applied := func(id string) string {
				switch a := rows[id].Applied; {
				case a == nil:
					return "NULL"
				case *a:
					return "applied"
				}
				return "stale"
			}
			for _, raw := range stream {
				var ev struct {
					ID, Type string
					Data     struct{ Object map[string]any }
				}
				if err := json.Unmarshal(raw, &ev); err != nil {
					t.Fatal(err)
				}
				row := rows[ev.ID]
				wantID, _ := ev.Data.Object["id"].(string)
				if str(row.ObjectType) != ev.Data.Object["object"] || str(row.ObjectID) != wantID {
					t.Errorf("%s %s names object %q %q, want %q %q", ev.Type, ev.ID, str(row.ObjectType), str(row.ObjectID), ev.Data.Object["object"], wantID)
				}
				want := ""
				switch ev.ID {
				case late.Finalized:
					want = "stale"
				case late.Deleted:
					want = "applied"
				case previewID, unknownID:
					want = "NULL"
				}
				if want == "" && applied(ev.ID) == "NULL" {
					t.Errorf("%s %s: applied NULL, want applied or stale", ev.Type, ev.ID)
				}
				if want != "" && applied(ev.ID) != want {
					t.Errorf("%s %s: %s, want %s", ev.Type, ev.ID, applied(ev.ID), want)
				}
			}
			var last []string
			for _, table := range []string{"customers", "subscriptions", "invoices", "payments", "refunds", "disputes"} {
				var ids []string
				if err := s.DB().Table(table).Where("last_event_id IS NOT NULL").Pluck("last_event_id", &ids).Error; err != nil {
					t.Fatal(err)
				}
				last = append(last, ids...)
			}
			if len(last) < 6 {
				t.Fatalf("only %d rows name their last event", len(last))
			}
			for _, id := range last {
				if applied(id) != "applied" {
					t.Errorf("event %s (%s) is a row's last, yet %s", id, rows[id].Type, applied(id))
				}
			}
		})
	}
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
