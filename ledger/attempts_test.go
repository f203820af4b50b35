package ledger_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
	"github.com/stripe-billing/billing/reconcile"
)

// TestFailedAttemptsOnEveryVersion: an invoice whose first attempt fails
// and that is then voided, or paid, in every supported API version,
// delivered in Stripe's order and backwards, one event at a time and in
// one batch. With STRIPE_API_KEY (a fake Stripe listing the invoice's
// payments) every version links the invoice to its payment intent and
// that intent's latest charge, and the intent and both charges to the
// invoice: before 2025-03-31.basil from the events, with no call; from
// it, from the invoice's payments, one call per invoice.payment_failed,
// in the event's version. Without a key, from basil a voided invoice has
// no link, and its history says its attempts are unknown; a paid one is
// linked by invoice_payment.paid.
func TestFailedAttemptsOnEveryVersion(t *testing.T) {
	t.Parallel()
	fake := billingtest.NewPaymentsStripe(t)
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	keyed, plain := testenv.Store(t), testenv.Store(t)
	procs := map[bool]*ledger.Processor{
		true:  ledger.NewProcessor(keyed, nil, ledger.WithObjectFetcher(fetcher)),
		false: ledger.NewProcessor(plain, nil),
	}
	stores := map[bool]*models.Store{true: keyed, false: plain}
	seed := 100
	for _, version := range billing.SupportedVersions() {
		basil := version >= billing.InvoicePaymentsSince
		for _, paid := range []bool{false, true} {
			for _, key := range []bool{true, false} {
				for _, way := range []string{"ordered", "backwards", "ordered/batch", "backwards/batch"} {
					seed++
					f := billingtest.FailedAttempt(version, seed, paid)
					name := fmt.Sprintf("%s/%s/key=%v/%s", version, map[bool]string{false: "voided", true: "paid"}[paid], key, way)
					t.Run(name, func(t *testing.T) {
						fake.Set(f.IDs.Invoice, f.Payments)
						events := slices.Clone(f.Events)
						if way == "backwards" || way == "backwards/batch" {
							slices.Reverse(events)
						}
						p, s := procs[key], stores[key]
						if way == "ordered/batch" || way == "backwards/batch" {
							processBatches(t, p, events, len(events))
						} else {
							for _, raw := range events {
								process(t, p, raw, ledger.Processed)
							}
						}
						linked := key || !basil || paid
						checkAttemptLinks(t, s, f, linked)
						calls := fake.Called(f.IDs.Invoice)
						switch {
						case !key || !basil:
							if len(calls) != 0 {
								t.Errorf("%d calls to Stripe, want none", len(calls))
							}
						case len(calls) != 1 || calls[0] != version:
							t.Errorf("calls to Stripe in versions %v, want one, in %s", calls, version)
						}
						rep, err := history.Of(context.Background(), lookup.New(s), f.IDs.Invoice)
						if err != nil {
							t.Fatal(err)
						}
						if want := []string(nil); !linked {
							if want = []string{history.Unlinked}; !slices.Equal(rep.Notes, want) {
								t.Errorf("history notes %q, want %q", rep.Notes, want)
							}
						} else if len(rep.Notes) != 0 {
							t.Errorf("history notes %q, want none", rep.Notes)
						}
					})
				}
			}
		}
	}
}

// checkAttemptLinks checks the links of f's records: all of them when
// linked, else none.
func checkAttemptLinks(t *testing.T, s *models.Store, f billingtest.FailedInvoice, linked bool) {
	t.Helper()
	id := f.IDs
	var inv models.Invoice
	if err := s.DB().Where("stripe_id = ?", id.Invoice).Take(&inv).Error; err != nil {
		t.Fatal(err)
	}
	wantStatus, latest := "void", id.FailedCharge
	if f.Paid {
		wantStatus, latest = "paid", id.Charge
	}
	if got := str(inv.Status); got != wantStatus {
		t.Errorf("invoice status %q, want %q", got, wantStatus)
	}
	want := func(v string) string {
		if linked {
			return v
		}
		return ""
	}
	if str(inv.PaymentIntentID) != want(id.PaymentIntent) || str(inv.ChargeID) != want(latest) {
		t.Errorf("invoice payment intent %q, charge %q; want %q, %q", str(inv.PaymentIntentID), str(inv.ChargeID), want(id.PaymentIntent), want(latest))
	}
	payments := []string{id.PaymentIntent, id.FailedCharge}
	if f.Paid {
		payments = append(payments, id.Charge)
	}
	for _, pid := range payments {
		var pay models.Payment
		if err := s.DB().Where("stripe_id = ?", pid).Take(&pay).Error; err != nil {
			t.Fatalf("%s: %v", pid, err)
		}
		if str(pay.InvoiceID) != want(id.Invoice) {
			t.Errorf("%s invoice %q, want %q", pid, str(pay.InvoiceID), want(id.Invoice))
		}
	}
	if len(f.Payments) == 0 || !linked {
		return
	}
	var ip models.InvoicePayment
	if err := s.DB().Where("stripe_id = ?", id.InvoicePayment).Take(&ip).Error; err != nil {
		t.Fatalf("invoice payment: %v", err)
	}
	if want := f.Payments[0]["status"]; str(ip.Status) != want || str(ip.PaymentIntentID) != id.PaymentIntent {
		t.Errorf("invoice payment %s of %s, want %s of %s", str(ip.Status), str(ip.PaymentIntentID), want, id.PaymentIntent)
	}
}

// TestInvoicePaymentsFetchFails: Stripe down when an invoice.payment_failed
// of 2025-03-31.basil needs its invoice's payments: that event fails,
// transient, with nothing of it written, while the rest of its batch
// commits; once Stripe is back it is applied, with the links.
func TestInvoicePaymentsFetchFails(t *testing.T) {
	t.Parallel()
	fake := billingtest.NewPaymentsStripe(t)
	var down atomic.Bool
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// A failure is not remembered: the retry below asks again at once.
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: srv.URL,
		Limits: reconcile.Limits{NegativeTTL: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.Store(t)
	p := ledger.NewProcessor(s, nil, ledger.WithObjectFetcher(fetcher))
	f := billingtest.FailedAttempt("2025-05-28.basil", 7, false)
	fake.Set(f.IDs.Invoice, f.Payments)
	var failed []byte
	var failedID string
	for _, raw := range f.Events {
		if ev, _ := billing.Parse(raw); ev.Type == "invoice.payment_failed" {
			failed, failedID = raw, ev.ID
		}
	}
	outcomes, err := p.ProcessBatch(context.Background(), f.Events)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		ev, _ := billing.Parse(f.Events[i])
		switch {
		case ev.ID == failedID && (o.Err == nil || failure.Of(o.Err) != failure.Transient):
			t.Errorf("%s during a Stripe outage: %+v (class %v), want a transient error", ev.Type, o, failure.Of(o.Err))
		case ev.ID != failedID && o.Err != nil:
			t.Errorf("%s: %v, want it applied", ev.Type, o.Err)
		}
	}
	var n int64
	s.DB().Model(&models.StripeEvent{}).Where("id = ?", failedID).Count(&n)
	if n != 0 {
		t.Errorf("the failed event has %d ledger rows, want none", n)
	}
	down.Store(false)
	process(t, p, failed, ledger.Processed)
	checkAttemptLinks(t, s, f, true)
}
