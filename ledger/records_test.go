package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

// TestRecordsForSupportAndFinance checks, in every supported API version,
// what TestVersionLifecycles' record comparison cannot: the open invoice's
// next payment attempt, the status history of credit notes and checkout
// sessions, look-ups by metadata and client_reference_id, and that no card
// detail beyond the summary reaches the records.
func TestRecordsForSupportAndFinance(t *testing.T) {
	t.Parallel()
	for _, version := range billing.SupportedVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			l := billingtest.VersionLifecycle(version, 2)
			s, p := setup(t)
			db := s.DB()
			for _, raw := range l.Events {
				process(t, p, raw, ledger.Processed)
				if !bytes.Contains(raw, []byte(`"type":"invoice.payment_failed"`)) {
					continue
				}
				var inv models.Invoice
				if err := db.Where("stripe_id = ?", l.IDs.Invoice).Take(&inv).Error; err != nil {
					t.Fatal(err)
				}
				if inv.NextPaymentAttempt == nil || !inv.NextPaymentAttempt.Equal(l.NextPaymentAttempt) {
					t.Errorf("open invoice next_payment_attempt = %v, want %v", inv.NextPaymentAttempt, l.NextPaymentAttempt)
				}
			}

			var history []string
			err := db.Model(&models.StatusChange{}).Where("object_type IN ?", []string{"credit_note", "checkout.session"}).
				Order("occurred_at, object_id").Pluck("CONCAT(object_id, ':', status)", &history).Error
			if err != nil {
				t.Fatal(err)
			}
			cn, cs := l.IDs.CreditNotes, l.IDs
			want := []string{cs.Checkout + ":complete", cn[0] + ":issued", cn[1] + ":issued", cn[0] + ":issued", cn[1] + ":void",
				cs.ExpiredCheckout + ":expired"}
			if !slices.Equal(history, want) {
				t.Errorf("history of credit notes and checkout sessions:\n got  %v\n want %v", history, want)
			}

			var customers, sessions []string
			if err := db.Raw("SELECT stripe_id FROM customers WHERE JSON_VALUE(metadata, '$.user_id') = ?", l.IDs.User).Scan(&customers).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Raw("SELECT stripe_id FROM checkout_sessions WHERE client_reference_id = ? AND JSON_EXTRACT(metadata, '$.set_on') = 'checkout.session' ORDER BY stripe_id",
				l.IDs.User).Scan(&sessions).Error; err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(customers, []string{l.IDs.Customer}) || !slices.Equal(sessions, []string{l.IDs.Checkout, l.IDs.ExpiredCheckout}) {
				t.Errorf("by metadata: customers %v, checkout sessions %v; want %s and %s, %s", customers, sessions,
					l.IDs.Customer, l.IDs.Checkout, l.IDs.ExpiredCheckout)
			}

			// The charge payloads carry Stripe's card fixture, fingerprint
			// included; no row may keep it.
			var card struct {
				PaymentMethodDetails struct {
					Card struct {
						Fingerprint string `json:"fingerprint"`
					} `json:"card"`
				} `json:"payment_method_details"`
			}
			if err := json.Unmarshal(stripefixture.Raw(version, "charge"), &card); err != nil {
				t.Fatal(err)
			}
			fingerprint := card.PaymentMethodDetails.Card.Fingerprint
			if fingerprint == "" {
				t.Fatal("the charge fixture has no card fingerprint to look for")
			}
			for table, rows := range snapshot(t, s) {
				if table == (models.StripeEvent{}).TableName() {
					continue // the ledger keeps the payload as Stripe sent it
				}
				if i := slices.IndexFunc(rows, func(r string) bool { return strings.Contains(r, fingerprint) }); i >= 0 {
					t.Errorf("%s keeps the card fingerprint: %s", table, rows[i])
				}
			}
		})
	}
}

// TestDisputePrevented: from 2025-09-30.clover a dispute can be
// prevented, a final status: a needs_response event of the same second
// delivered after it does not reopen the dispute.
func TestDisputePrevented(t *testing.T) {
	t.Parallel()
	const version = "2025-09-30.clover"
	if !stripefixture.SpecDefines(version, "dispute", "status") {
		t.Fatalf("%s defines no dispute status", version)
	}
	s, p := setup(t)
	dispute := func(status string) []byte {
		o := stripefixture.Object(version, "dispute")
		o["id"], o["status"], o["created"] = "dp_prevented", status, start.Unix()
		b, err := json.Marshal(map[string]any{"id": billingtest.NewEventID(), "object": "event", "type": "charge.dispute.updated",
			"api_version": version, "created": start.Unix(), "livemode": false, "data": map[string]any{"object": o}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	process(t, p, dispute("prevented"), ledger.Processed)
	process(t, p, dispute("needs_response"), ledger.Processed)
	var d models.Dispute
	if err := s.DB().Where("stripe_id = ?", "dp_prevented").Take(&d).Error; err != nil {
		t.Fatal(err)
	}
	if d.Status == nil || *d.Status != "prevented" {
		t.Errorf("dispute status %v, want prevented", d.Status)
	}
}

// TestCheckoutAsyncPayment: a completed checkout whose payment is still
// pending (a bank debit) gets its payment status from the later
// async_payment event, whatever the delivery order, in every supported
// API version.
func TestCheckoutAsyncPayment(t *testing.T) {
	t.Parallel()
	for _, version := range billing.SupportedVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			s, p := setup(t)
			event := func(typ, paymentStatus string, created time.Time) []byte {
				o := stripefixture.Object(version, "checkout.session")
				o["id"], o["created"], o["mode"], o["status"], o["payment_status"] = "cs_async", start.Unix(), "payment", "complete", paymentStatus
				o["client_reference_id"], o["payment_intent"], o["metadata"] = "user_async", "pi_async", map[string]any{"order": "o_1"}
				b, err := json.Marshal(map[string]any{"id": billingtest.NewEventID(), "object": "event", "type": typ,
					"api_version": version, "created": created.Unix(), "livemode": false, "data": map[string]any{"object": o}})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			process(t, p, event("checkout.session.async_payment_succeeded", "paid", start.Add(time.Minute)), ledger.Processed)
			process(t, p, event("checkout.session.completed", "unpaid", start), ledger.Processed)
			var cs models.CheckoutSession
			if err := s.DB().Where("stripe_id = ?", "cs_async").Take(&cs).Error; err != nil {
				t.Fatal(err)
			}
			if cs.PaymentStatus == nil || *cs.PaymentStatus != "paid" || cs.Status == nil || *cs.Status != "complete" ||
				cs.PaymentIntentID == nil || *cs.PaymentIntentID != "pi_async" || cs.Metadata == nil || *cs.Metadata != `{"order":"o_1"}` {
				t.Errorf("checkout session = %+v", cs)
			}
			var pi models.Payment // a stub until its own events arrive
			if err := s.DB().Where("stripe_id = ? AND object = ?", "pi_async", models.ObjectPaymentIntent).Take(&pi).Error; err != nil {
				t.Errorf("payment intent stub: %v", err)
			}
		})
	}
}

// TestReprocessFillsNewRecords: a database of a release that ignored
// credit note events and kept no checkout session gets both from the
// ledger with the reprocess docs/finance.md gives.
func TestReprocessFillsNewRecords(t *testing.T) {
	t.Parallel()
	l := billingtest.VersionLifecycle(billing.SupportedVersions()[0], 4)
	types := []string{"credit_note.created", "credit_note.updated", "credit_note.voided", "checkout.session.completed",
		"checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed", "checkout.session.expired"}
	s := testenv.Store(t)
	old := ledger.NewProcessor(s, nil, ledger.WithoutHandlers("credit_note.created", "credit_note.updated",
		"credit_note.voided", "checkout.session.expired"))
	for _, raw := range l.Events {
		if _, err := old.ProcessSigned(context.Background(), raw, testenv.Sign(raw, testenv.WebhookSecret, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DB().Exec("DELETE FROM checkout_sessions").Error; err != nil {
		t.Fatal(err)
	}
	rep, _ := reprocess(t, ledger.NewProcessor(s, nil),
		models.EventFilter{Types: types, Statuses: []string{models.EventIgnored, models.EventProcessed}}, false)
	if rep.Applied != 6 || rep.Failed != 0 {
		t.Errorf("reprocess report %+v, want the 6 checkout and credit note events applied", rep)
	}
	got, err := billingtest.ReadRecords(s.DB())
	if err != nil {
		t.Fatal(err)
	}
	diffTables(t, got.Tables(), l.Want.Tables())
}
