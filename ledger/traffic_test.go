package ledger_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

// TestTrafficLands: in every supported API version each event of a
// TrafficLifecycle (payment methods, products, prices, due and overdue
// invoices, a paused subscription, schedules) changes its own row when
// delivered in Stripe's order, the records are the lifecycle's, a second
// delivery of every event in reverse order changes nothing, and no row
// holds the cards' fingerprint (the ledger's payload, Stripe's event as
// signed, aside). Shuffled and batched deliveries are
// TestVersionLifecycles'.
func TestTrafficLands(t *testing.T) {
	t.Parallel()
	for _, version := range billing.SupportedVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			seed := 1 + rand.IntN(1000)
			t.Logf("seed %d", seed)
			l := billingtest.VersionTraffic(version, seed)
			s, p := setup(t)
			types := map[string]bool{}
			for _, raw := range l.Events {
				process(t, p, raw, ledger.Processed)
				var e struct{ Type string }
				if err := json.Unmarshal(raw, &e); err != nil {
					t.Fatal(err)
				}
				types[e.Type] = true
			}
			for _, typ := range []string{"payment_method.attached", "payment_method.detached", "payment_method.updated",
				"payment_method.automatically_updated", "product.created", "product.updated", "product.deleted", "price.created",
				"price.updated", "price.deleted", "invoice.will_be_due", "invoice.overdue", "customer.subscription.paused",
				"customer.subscription.resumed", "subscription_schedule.created", "subscription_schedule.updated",
				"subscription_schedule.expiring", "subscription_schedule.released", "subscription_schedule.canceled"} {
				if !types[typ] {
					t.Errorf("the lifecycle sends no %s", typ)
				}
				if !billing.Handles(typ) {
					t.Errorf("%s is not handled", typ)
				}
			}
			var stale []models.StripeEvent
			if err := s.DB().Where("applied IS NULL OR NOT applied OR status <> ?", models.EventProcessed).Find(&stale).Error; err != nil {
				t.Fatal(err)
			}
			for _, e := range stale {
				t.Errorf("event %s (%s): status %s, applied %v; want processed, applied to its row", e.ID, e.Type, e.Status, e.Applied)
			}
			check := func(when string) {
				t.Helper()
				records, err := billingtest.ReadRecords(s.DB())
				if err != nil {
					t.Fatal(err)
				}
				diffTables(t, records.Tables(), l.Want.Tables())
				for table, rows := range snapshot(t, s) {
					for _, row := range rows {
						if strings.Contains(row, l.Traffic.Fingerprint) {
							t.Errorf("%s: a row of %s holds the card fingerprint: %s", when, table, row)
						}
					}
				}
			}
			check("in order")
			for i := len(l.Events) - 1; i >= 0; i-- {
				process(t, p, l.Events[i], ledger.Duplicate)
			}
			check("redelivered")
		})
	}
}
