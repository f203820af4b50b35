package notify_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
	"github.com/stripe-billing/billing/notify"
	"github.com/stripe-billing/billing/notify/notifytest"
	"github.com/stripe-billing/billing/reconcile"
)

// TestNotifyEveryVersion applies customer lifecycles of each supported API
// version (Stripe's fixtures) through the ledger one event at a time, and
// hands each change to notify as soon as its event is applied, as a
// consumer without lag would. A failed first attempt at an invoice emails
// the customer with the invoice's link and amount in every version: from
// 2025-03-31.basil nothing on the charge names the invoice, and the email
// waits for the worker to link them on invoice.payment_failed (Stripe's
// list of the invoice's payments, a fake here). The whole lifecycle
// (failed attempt, payment, refunds, a dispute) emails the customer once
// and support once, for the dispute.
func TestNotifyEveryVersion(t *testing.T) {
	t.Parallel()
	fake := billingtest.NewPaymentsStripe(t)
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	for i, version := range billing.SupportedVersions() {
		t.Run(version+"/FailedAttempt", func(t *testing.T) {
			t.Parallel()
			// A seed per version: ids depend on the seed only, and the fake
			// Stripe lists payments by invoice id.
			seed := 100 + i
			l, f := billingtest.VersionLifecycle(version, seed), billingtest.FailedAttempt(version, seed, false)
			fake.Set(f.IDs.Invoice, f.Payments)
			got := runLifecycle(t, ledger.WithObjectFetcher(fetcher), append([][]byte{l.Events[0]}, f.Events...)) // customer.created first
			if len(got) != 1 {
				t.Fatalf("%d mails, want the failed attempt's: %+v", len(got), got)
			}
			if m := got[0]; m.To != f.IDs.Customer+"@example.com" || !strings.Contains(m.Data, "https://invoice.stripe.com/i/"+f.IDs.Invoice) ||
				!strings.Contains(m.Data, "invoice INV-"+f.IDs.Invoice) || !strings.Contains(m.Data, "Your payment of 34.20 "+strings.ToUpper(l.Currency)+" failed") {
				t.Errorf("the failed attempt's mail to %s:\n%s", m.To, m.Data)
			}
		})
		t.Run(version+"/Lifecycle", func(t *testing.T) {
			t.Parallel()
			l := billingtest.VersionLifecycle(version, 1)
			got := runLifecycle(t, nil, l.Events)
			if len(got) != 2 {
				t.Fatalf("%d mails, want the failed charge's and the dispute's: %+v", len(got), got)
			}
			// Without STRIPE_API_KEY, from basil the charge waits for its
			// invoice until the invoice is paid (or LinkWait): the dispute's
			// mail may come first, and the customer's address be the later.
			if got[0].To == support {
				got[0], got[1] = got[1], got[0]
			}
			if m := got[0]; !strings.HasSuffix(m.To, l.IDs.Customer+"@example.com") || !strings.Contains(m.Data, "Your card was declined.") {
				t.Errorf("the failed charge's mail to %s:\n%s", m.To, m.Data)
			}
			if m := got[1]; m.To != support || !strings.Contains(m.Data, "Dispute "+l.IDs.Dispute+" opened") {
				t.Errorf("the dispute's mail to %s:\n%s", m.To, m.Data)
			}
		})
	}
}

// runLifecycle applies events one at a time and hands each change written
// to a Notifier at once, each on its own (a change may wait for a link
// while the next events apply); it returns the mails sent, in order.
func runLifecycle(t *testing.T, opt ledger.Option, events [][]byte) []notifytest.Mail {
	t.Helper()
	store := testenv.Store(t)
	mail := notifytest.Start(t)
	n, err := notify.New(notify.Config{SMTPAddr: mail.Addr(), From: "billing@example.com", Support: support},
		nil, store, nil, metrics.NewNotify(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	var opts []ledger.Option
	if opt != nil {
		opts = append(opts, opt)
	}
	p := ledger.NewProcessor(store, nil, opts...)
	var wg sync.WaitGroup
	var handled uint64
	for _, ev := range events {
		if _, err := p.Process(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		handled = handOver(t, store, n, handled, &wg)
	}
	wg.Wait()
	if handled == 0 {
		t.Fatal("the events wrote no change")
	}
	var got []notifytest.Mail
	for len(mail.Got) > 0 {
		got = append(got, <-mail.Got)
	}
	return got
}

// handOver hands the outbox's changes after seq to n, each in a goroutine
// of wg, and returns the last seq.
func handOver(t *testing.T, store *models.Store, n *notify.Notifier, seq uint64, wg *sync.WaitGroup) uint64 {
	t.Helper()
	var rows []feed.Outbox
	if err := store.DB().Where("seq > ?", seq).Order("seq").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Handle(context.Background(), []byte(r.Body)); err != nil {
				t.Error(err)
			}
		}()
		seq = r.Seq
	}
	return seq
}
