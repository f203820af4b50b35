package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

// TestInvoicePaidInTwoPayments: from 2025-03-31.basil an invoice may be
// paid by several payments, each an InvoicePayment and a payment intent
// with its charge. Whatever order they arrive in, alone or in one batch,
// the invoice's payment intent and charge are one payment's, the latest
// by Stripe's time: never an intent of one and a charge of the other
// (issue 23 item 4).
func TestInvoicePaidInTwoPayments(t *testing.T) {
	t.Parallel()
	const v = "2025-05-28.basil"
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	payment := func(n int, invoice string, created time.Time) [][]byte {
		pi, ch, ip := fmt.Sprintf("pi_pair%d_%s", n, invoice), fmt.Sprintf("ch_pair%d_%s", n, invoice), fmt.Sprintf("inpay_pair%d_%s", n, invoice)
		p := stripefixture.Object(v, "invoice_payment")
		p["id"], p["created"], p["invoice"], p["status"] = ip, created.Unix(), invoice, "paid"
		p["payment"] = map[string]any{"type": "payment_intent", "payment_intent": pi}
		p["currency"], p["amount_paid"], p["amount_requested"] = "usd", 500, 500
		intent := stripefixture.Object(v, "payment_intent")
		intent["id"], intent["created"], intent["status"], intent["latest_charge"] = pi, created.Unix(), "succeeded", ch
		intent["currency"], intent["amount"], intent["amount_received"], intent["customer"] = "usd", 500, 500, nil
		delete(intent, "invoice")
		return [][]byte{
			versionEvent(t, v, billingtest.NewEventID(), "invoice_payment.paid", created, false, "", p),
			versionEvent(t, v, billingtest.NewEventID(), "payment_intent.succeeded", created, false, "", intent),
		}
	}
	for _, tt := range []struct {
		name  string
		order []int // which payment's events go first
		batch bool
	}{
		{"FirstThenSecond", []int{1, 2}, false},
		{"SecondThenFirst", []int{2, 1}, false},
		{"SecondThenFirstInOneBatch", []int{2, 1}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, p := setup(t)
			invoice := "in_pair_" + tt.name
			events := map[int][][]byte{1: payment(1, invoice, t0), 2: payment(2, invoice, t0.Add(time.Minute))}
			var all [][]byte
			for _, n := range tt.order {
				all = append(all, events[n]...)
			}
			if tt.batch {
				if _, err := p.ProcessBatch(context.Background(), all); err != nil {
					t.Fatal(err)
				}
			} else {
				for _, raw := range all {
					process(t, p, raw, ledger.Processed)
				}
			}
			var inv models.Invoice
			if err := s.DB().Where("stripe_id = ?", invoice).Take(&inv).Error; err != nil {
				t.Fatal(err)
			}
			wantPI, wantCh := "pi_pair2_"+invoice, "ch_pair2_"+invoice
			if str(inv.PaymentIntentID) != wantPI || str(inv.ChargeID) != wantCh {
				t.Errorf("invoice pair (%s, %s); want the latest payment's (%s, %s)", str(inv.PaymentIntentID), str(inv.ChargeID), wantPI, wantCh)
			}
		})
	}
}
