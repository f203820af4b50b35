package consumer_test

import (
	"context"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/reconcile"
)

// TestUnsignedFloodBoundsStripeCalls is issue 21's flood: 10,000 unsigned
// messages published at once (what the UI's support login could do),
// with STRIPE_API_KEY set and a Stripe that answers 404 or 500. Stripe is
// called no faster than the fetcher's rate (plus its burst) however the
// calls are windowed, the rest of the flood is limited without a call,
// and signed events published among the flood are all applied, each
// before the flood has drained. The rate is lowered so that the flood
// outlasts many windows in a few seconds.
func TestUnsignedFloodBoundsStripeCalls(t *testing.T) {
	t.Parallel()
	const (
		flood  = 10_000
		signed = 20
		rate   = 50 // calls a second
		burst  = 4  // reconcile.Limits.Concurrency
	)
	var mu sync.Mutex
	var arrivals []time.Time
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		code := http.StatusNotFound
		if crc32.ChecksumIEEE([]byte(path.Base(r.URL.Path)))%2 == 1 {
			code = http.StatusInternalServerError
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"error":{"message":"no such event"}}`))
	}))
	defer stripe.Close()
	m := metrics.New(metrics.NewRegistry())
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{
		APIKey: "sk_test_123", APIBase: stripe.URL, Observe: m.StripeCall,
		Limits: reconcile.Limits{Rate: rate, Concurrency: burst},
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w := startVerifying(t, fetcher, m, consumer.DefaultBatchSize, true, 0)

	// The flood, in chunks on a plain channel (no confirms: at once), a
	// signed invoice.finalized before each chunk (so that every signed
	// event has flood messages behind it); the forged messages claim
	// those invoices are paid.
	open := time.Now().Add(-time.Hour).Truncate(time.Second)
	invoices := make([]string, signed)
	published := make([]time.Time, signed)
	ctx := context.Background()
	for k := range signed {
		invoices[k] = "in_flood_" + billingtest.NewEventID()[4:]
		body := billingtest.Event(billingtest.NewEventID(), "invoice.finalized", open, billingtest.Invoice(invoices[k], "cus_1", "", "open", 2000, 0))
		w.publishSigned(t, w.topo.Events, "invoice.finalized", body, testenv.WebhookSecret, time.Now())
		published[k] = time.Now()
		for range flood / signed {
			id := billingtest.NewEventID()
			msg := broker.NewEvent(id, "invoice.paid", forgedPaid(id, invoices[k], open.Add(time.Second)), "", "forger", time.Now())
			if err := w.ch.PublishWithContext(ctx, w.topo.Events, "invoice.paid", false, false, msg); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Watch the signed events apply and the flood drain into the DLQ.
	applied := make([]time.Time, signed)
	var drained time.Time
	testenv.Eventually(t, 5*time.Minute, func() bool {
		var open []string
		if err := w.store.DB().Table("invoices").Where("stripe_id IN ? AND status = ?", invoices, "open").Pluck("stripe_id", &open).Error; err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for k, inv := range invoices {
			if applied[k].IsZero() && slices.Contains(open, inv) {
				applied[k] = now
			}
		}
		if drained.IsZero() && w.ready(w.topo.DLQ) >= flood {
			drained = now
		}
		return !drained.IsZero() && !slices.ContainsFunc(applied, time.Time.IsZero)
	}, "the flood parked and the %d signed events applied", signed)
	elapsed := time.Since(start)

	// Stripe's calls: within rate × elapsed + burst in all, and in any
	// one-second window within rate + burst, with half a second's
	// allowance for a call that reached the fake Stripe late (the
	// limiter grants turns; the network and a busy machine delay them).
	mu.Lock()
	calls := slices.Clone(arrivals)
	mu.Unlock()
	if bound := burst + int(rate*elapsed.Seconds()); len(calls) > bound {
		t.Errorf("%d calls to Stripe in %s, want at most %d", len(calls), elapsed, bound)
	}
	peak := 0
	for i := range calls {
		n, _ := slices.BinarySearchFunc(calls, calls[i].Add(time.Second), func(a, b time.Time) int { return a.Compare(b) })
		peak = max(peak, n-i)
	}
	if bound := rate + burst + rate/2; peak > bound {
		t.Errorf("%d calls to Stripe within one second, want at most %d", peak, bound)
	}
	limited := testutil.ToFloat64(m.StripeCalls.WithLabelValues(reconcile.PurposeVerify, reconcile.OutcomeLimited))
	if len(calls) == 0 || limited == 0 {
		t.Errorf("%d calls, %v limited: the test shows no limit at work", len(calls), limited)
	}

	// The signed events: applied, each before the flood drained; no
	// forged invoice.paid applied.
	var latencies []time.Duration
	for k := range signed {
		if !applied[k].Before(drained) {
			t.Errorf("signed event %d applied at %s, after the flood drained at %s", k, applied[k].Sub(start), drained.Sub(start))
		}
		latencies = append(latencies, applied[k].Sub(published[k]))
	}
	slices.Sort(latencies)
	var paid int64
	w.store.DB().Table("invoices").Where("stripe_id IN ? AND status = ?", invoices, "paid").Count(&paid)
	if paid != 0 {
		t.Errorf("%d invoices paid by forged messages", paid)
	}
	t.Logf("%d unsigned messages drained in %s with %d calls to Stripe (at most %d in one second; limit %d/s, burst %d), %v limited; "+
		"%d signed events applied %s to %s after publishing (median %s), the last %s before the flood drained",
		flood, drained.Sub(start).Round(time.Millisecond), len(calls), peak, rate, burst, limited,
		signed, latencies[0].Round(time.Millisecond), latencies[signed-1].Round(time.Millisecond), latencies[signed/2].Round(time.Millisecond),
		drained.Sub(slices.MaxFunc(applied, time.Time.Compare)).Round(time.Millisecond))
}
