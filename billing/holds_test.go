package billing

import (
	"maps"
	"slices"
	"testing"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/models"
)

// TestHoldReleases folds each way a hold ends (canceled before capture,
// expired, captured in part then refunded in part) in every supported
// version's shapes, in Stripe's order and reversed: the refunds Stripe
// makes of what it never captured (before 2025-03-31.basil) are kept as
// rows, and the charge's amount_released says how much of its
// amount_refunded they are, so that docs/finance.md's refunded leaves
// them out; from basil there is no such refund and nothing is released
// in amount_refunded.
func TestHoldReleases(t *testing.T) {
	t.Parallel()
	for _, version := range SupportedVersions() {
		preBasil := version < "2025-03-31"
		for _, h := range billingtest.Holds {
			t.Run(version+"/"+h.String(), func(t *testing.T) {
				t.Parallel()
				_, ch, release, refund := billingtest.HoldIDs(1, h)
				wantRefunds := map[string]string{} // refund id: reason
				wantReleased, wantRefunded := int64(0), int64(0)
				if preBasil {
					wantReleased, wantRefunded = billingtest.HoldAuthorized, billingtest.HoldAuthorized
					wantRefunds[release] = ""
				}
				switch h {
				case billingtest.HoldExpired:
					if preBasil {
						wantRefunds[release] = "expired_uncaptured_charge"
					}
				case billingtest.HoldPartial:
					wantRefunds[refund] = "requested_by_customer"
					wantRefunded = billingtest.HoldRefund
					if preBasil {
						wantReleased = billingtest.HoldAuthorized - billingtest.HoldCaptured
						wantRefunded += wantReleased
					}
				}
				events := billingtest.HoldLifecycle(version, 1, h)
				for _, order := range []string{"Stripe's", "reversed"} {
					if order == "reversed" {
						events = slices.Clone(events)
						slices.Reverse(events)
					}
					f, _, err := fold(t, Ties{}, events...)
					if err != nil {
						t.Fatal(err)
					}
					c := rowOf[models.Payment](t, f, ch)
					if deref(c.AmountReleased) != wantReleased || deref(c.AmountRefunded) != wantRefunded {
						t.Errorf("%s order: charge amount_refunded %d, amount_released %d; want %d, %d",
							order, deref(c.AmountRefunded), deref(c.AmountReleased), wantRefunded, wantReleased)
					}
					got := map[string]string{}
					for _, w := range f.Writes {
						for _, r := range w.Fresh {
							if r, ok := r.(*models.Refund); ok {
								got[r.StripeID] = deref(r.Reason)
							}
						}
					}
					if !maps.Equal(got, wantRefunds) {
						t.Errorf("%s order: refund rows (id: reason) %v, want %v", order, got, wantRefunds)
					}
				}
			})
		}
	}
}
