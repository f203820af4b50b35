package backfill_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/backfill/backfilltest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models/lookup"
	"github.com/stripe-billing/billing/reconcile"
)

// TestBackfillAtScale imports customers, three invoices each and their
// charges from the fake Stripe under the Fetcher's rate limit, killed in
// the middle and run again: every object is imported once, an audit of
// a sample finds no field that differs from the fake's objects, and no
// second holds more requests than the limit allows. BENCH_BACKFILL_
// CUSTOMERS sets the size (default 1,000; the figure is 10,000)
// and BENCH_BACKFILL_RATE the requests a second (default 50); the test
// logs the objects imported a second against what the rate allows.
func TestBackfillAtScale(t *testing.T) {
	t.Parallel()
	customers, rate := testenv.EnvInt(t, "BENCH_BACKFILL_CUSTOMERS", 1000), testenv.EnvInt(t, "BENCH_BACKFILL_RATE", 50)
	const burst = 4
	e := setup(t)
	lister, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: backfilltest.Key, APIBase: e.base,
		Limits: reconcile.Limits{Rate: float64(rate), Concurrency: burst}})
	if err != nil {
		t.Fatal(err)
	}
	e.lister = lister
	e.fake.Populate(customers, 3*customers)
	e.fake.PopulateCharges()
	objects := 7 * customers
	pages := 7*customers/backfill.DefaultPageSize + 9 // and the nine empty kinds' one page each

	// Killed once a third of the pages are in.
	ctx, cancel := context.WithCancel(context.Background())
	e.fake.OnPage(func(n int) {
		if n == pages/3 {
			cancel()
		}
	})
	start := time.Now()
	if _, err := e.backfill(t, backfill.Config{}).Run(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed: %v; want the run stopped", err)
	}
	cancel()
	e.fake.OnPage(nil)
	reports, err := e.backfill(t, backfill.Config{}).Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	e.checkImported(t)
	var charges int64
	if err := e.store.DB().Table("payments").Where("object = 'charge'").Count(&charges).Error; err != nil || charges != int64(3*customers) {
		t.Errorf("%d charge rows, %v; want %d", charges, err, 3*customers)
	}
	total, most := e.fake.ServedPages()
	// At the kill, each kind under way may lose the page it was writing
	// and the one fetched ahead.
	if inFlight := 2 * backfill.DefaultConcurrency; total > pages+inFlight || most > 2 {
		t.Errorf("%d whole pages served, one %d times; want at most the %d and the %d not written at the kill", total, most, pages, inFlight)
	}
	written := 0 // by the run after the kill
	for _, r := range reports {
		written += r.Written
	}

	// The limit: in any second from a request on, at most the rate and
	// the burst.
	times := e.fake.Times()
	for i, t0 := range times {
		n := 0
		for _, t1 := range times[i:] {
			if t1.Sub(t0) < time.Second {
				n++
			}
		}
		if n > rate+burst {
			t.Fatalf("%d requests in the second from request %d; want at most %d", n, i, rate+burst)
		}
	}

	// Every field of a sample as the fake serves it.
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: backfilltest.Key, APIBase: e.base, Limits: reconcile.Limits{Rate: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	audited, err := audit.Run(context.Background(), audit.Config{Kinds: []string{"customers", "invoices", "charges"}, Sample: 100}, lookup.New(e.store), fetcher, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range audited {
		if r.Checked != 100 || len(r.Drifted) != 0 || len(r.Failed) != 0 {
			t.Errorf("audit of %s: %d checked, drift %+v, failed %v; want 100, none", r.Kind, r.Checked, r.Drifted, r.Failed)
		}
	}
	allowed := float64(rate * backfill.DefaultPageSize)
	perSecond := float64(objects) / elapsed.Seconds()
	t.Logf("%d objects (%d pages, %d served, %d requests) in %s: %.0f objects/s, %.0f%% of the %.0f/s the rate allows (%d req/s × %d); %d objects written after the kill",
		objects, pages, total, len(times), elapsed.Round(time.Millisecond), perSecond, 100*perSecond/allowed, allowed, rate, backfill.DefaultPageSize, written)
}
