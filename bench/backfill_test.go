package bench_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/backfill/backfilltest"
	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
	"github.com/stripe-billing/billing/reconcile"
)

// backfillConfig is one measured backfill: Customers customers with
// three paid invoices each and their charges in the fake Stripe, listed
// at Rate requests a second, each answer Latency late, while a worker
// applies LiveRate live events a second into a database of its own on
// the same MySQL; then an audit of AuditSample rows of each kind.
type backfillConfig struct {
	Customers, Rate, LiveRate, AuditSample int
	Latency                                time.Duration
	// Slices and Concurrency, when set, split each kind into created
	// ranges up to the newest object (backfill.Config.Slices) and allow
	// that many requests in flight (STRIPE_API_CONCURRENCY).
	Slices, Concurrency int
}

// backfillResult is what backfillRun measured.
type backfillResult struct {
	Objects, Requests int
	Elapsed           time.Duration
	// Rows and WorkerRows are the rows the backfill and the worker added
	// to their databases over the backfill's run; Live the live events
	// published over it, Applied those applied by its end.
	Rows, WorkerRows int64
	Live, Applied    int64
	// Audited objects were compared in AuditTime.
	Audited   int
	AuditTime time.Duration
}

// backfillRun imports cfg's objects from the fake Stripe as `billing
// backfill` does (one Fetcher at the rate, STRIPE_API_CONCURRENCY kinds at
// once, a pool of 4 connections) beside a worker applying live events,
// checks every object is in, and audits a sample with none differing.
func backfillRun(t *testing.T, cfg backfillConfig) backfillResult {
	t.Helper()
	settings := settings(t)
	fake := backfilltest.New()
	fake.Populate(cfg.Customers, 3*cfg.Customers)
	fake.PopulateCharges()
	fake.Latency = cfg.Latency
	srv := httptest.NewServer(fake)
	defer srv.Close()
	if cfg.Concurrency > 0 {
		settings.StripeAPIConcurrency = cfg.Concurrency
	}
	limits := reconcile.Limits{Rate: float64(cfg.Rate), Concurrency: settings.StripeAPIConcurrency}
	fetcher := func() *reconcile.Fetcher {
		f, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: backfilltest.Key, APIBase: srv.URL, Limits: limits})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	own := settings
	own.DBMaxOpenConns, own.DBMaxIdleConns = 4, 4 // as cmd/billing's backfill
	store := openStore(t, testenv.Database(t), own)
	defer store.Close()
	workerStore := openStore(t, testenv.Database(t), settings)
	defer workerStore.Close()

	// The worker, and live events published at LiveRate until the
	// backfill ends.
	r := newRabbit(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	count := &counter{target: -1, done: make(chan struct{})}
	worker, err := newWorker(t, ctx, &wg, r, workerStore, settings.WorkerBatchSize, count, false)
	if err != nil {
		t.Fatal(err)
	}
	rowsBefore, workerBefore := tableRows(t, store), tableRows(t, workerStore)
	settle(t)
	wg.Go(func() { _ = worker.Run(ctx) })
	stop := make(chan struct{})
	var published atomic.Int64
	publishing := make(chan error, 1)
	go func() { publishing <- publishLive(r, cfg.LiveRate, stop, &published) }()

	bcfg := backfill.Config{Concurrency: settings.StripeAPIConcurrency, Slices: cfg.Slices}
	if cfg.Slices > 1 { // the fake's objects are a minute apart from its account's creation
		bcfg.CreatedUntil = backfilltest.T0.Add(time.Duration(3*cfg.Customers+1) * time.Minute)
	}
	b, err := backfill.New(bcfg, quietLogger(), fetcher(),
		ledger.NewProcessor(store, quietLogger()), store)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	reports, err := b.Run(context.Background(), nil)
	res := backfillResult{Elapsed: time.Since(start), Requests: len(fake.Times()), Applied: count.acked.Load()}
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-publishing; err != nil {
		t.Fatal(err)
	}
	res.Rows, res.WorkerRows = tableRows(t, store)-rowsBefore, tableRows(t, workerStore)-workerBefore
	res.Live = published.Load()
	for _, rep := range reports {
		res.Objects += rep.Fetched
		if !rep.Finished || rep.Failed > 0 {
			t.Fatalf("backfill of %s: %+v; want finished, nothing failed", rep.Kind, rep)
		}
	}
	if want := 7 * cfg.Customers; res.Objects != want {
		t.Fatalf("%d objects imported; want %d", res.Objects, want)
	}
	for deadline := time.Now().Add(time.Minute); count.acked.Load() < res.Live; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker applied %d of %d live events a minute after the backfill", count.acked.Load(), res.Live)
		}
	}
	if n := count.other.Load(); n > 0 {
		t.Fatalf("%d live events not acked at once", n)
	}

	if cfg.AuditSample > 0 {
		start = time.Now()
		audited, err := audit.Run(context.Background(), audit.Config{Sample: cfg.AuditSample, Concurrency: settings.StripeAPIConcurrency}, lookup.New(store), fetcher(), nil, time.Now)
		res.AuditTime = time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range audited {
			res.Audited += a.Checked
			if len(a.Drifted) > 0 || len(a.Failed) > 0 {
				t.Fatalf("audit of %s: drift %+v, failed %v; want none", a.Kind, a.Drifted, a.Failed)
			}
		}
	}
	return res
}

// publishLive publishes customer lifecycles' events at rate a second,
// a tenth of a second's worth at a time, until stop is closed; published
// counts them.
func publishLive(r *rabbit, rate int, stop <-chan struct{}, published *atomic.Int64) error {
	if rate <= 0 {
		return nil
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	per := max(rate/10, 1)
	var queued [][]byte
	for n := 0; ; n++ {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		if len(queued) < per {
			// Distinct ids for each chunk: they derive from its end.
			queued = append(queued, lifecycleBodies(19*100, time.Now().Add(-time.Hour-time.Duration(n)*time.Second))...)
		}
		if err := prefill(r, queued[:per]); err != nil {
			return err
		}
		queued = queued[per:]
		published.Add(int64(per))
	}
}

// tableRows counts the rows of every table of store's database.
func tableRows(t *testing.T, store *models.Store) int64 {
	t.Helper()
	var tables []string
	if err := store.DB().Raw("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'").
		Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, name := range tables {
		var n int64
		if err := store.DB().Raw("SELECT COUNT(*) FROM `" + name + "`").Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// backfillRows measures the backfill beside the worker, the audit of a
// sample, and the same backfill with each of Stripe's answers late: the
// table's backfill rows. Knobs: BENCH_BACKFILL_CUSTOMERS (10,000: 70,000
// objects), BENCH_BACKFILL_RATE (100 requests a second, Stripe's live
// read limit), BENCH_BACKFILL_LIVE_RATE (100 events a second),
// BENCH_AUDIT_SAMPLE (1,000), BENCH_STRIPE_LATENCY (300ms) and
// BENCH_LATE_CUSTOMERS (1,000) for the late run, BENCH_SLICES (16) and
// BENCH_SLICED_CUSTOMERS (5,000) for the late run in slices.
func backfillRows(t *testing.T) []bench.Row {
	t.Helper()
	cfg := backfillConfig{
		Customers:   testenv.EnvInt(t, "BENCH_BACKFILL_CUSTOMERS", 10_000),
		Rate:        testenv.EnvInt(t, "BENCH_BACKFILL_RATE", 100),
		LiveRate:    testenv.EnvInt(t, "BENCH_BACKFILL_LIVE_RATE", 100),
		AuditSample: testenv.EnvInt(t, "BENCH_AUDIT_SAMPLE", 1000),
	}
	kinds := settings(t).StripeAPIConcurrency
	res := backfillRun(t, cfg)
	allowed := float64(cfg.Rate * backfill.DefaultPageSize)
	got := float64(res.Objects) / res.Elapsed.Seconds()
	secs := res.Elapsed.Seconds()
	rows := []bench.Row{
		{Part: "backfill", What: fmt.Sprintf("%d customers, 3 invoices each and their charges (pages of 100) from the fake Stripe at %d req/s, %d kinds at once, a worker applying %d live events/s beside it",
			cfg.Customers, cfg.Rate, kinds, cfg.LiveRate),
			Figure: fmt.Sprintf("%s (%d objects, %d requests in %.1f s)", bench.PerSecond(got, "object"), res.Objects, res.Requests, secs),
			Limit:  fmt.Sprintf("%s the rate allows (%d req/s × 100)", bench.PerSecond(allowed, "object"), cfg.Rate),
			Ratio:  fmt.Sprintf("%.2f×", got/allowed), Target: "≥ 0.90×", Verdict: bench.AtLeast(got/allowed, 0.9, "%.2f×")},
		{Part: "backfill", What: "MySQL rows written over that run (every table: objects, history, cursors; the worker's ledger, rows, history, outbox)",
			Figure: fmt.Sprintf("%s by the backfill, %s by the worker (%d live events, %d applied by the backfill's end)",
				bench.PerSecond(float64(res.Rows)/secs, "row"), bench.PerSecond(float64(res.WorkerRows)/secs, "row"), res.Live, res.Applied)},
		{Part: "audit", What: fmt.Sprintf("billing audit --sample %d after it, %d objects fetched at once at %d req/s", cfg.AuditSample, kinds, cfg.Rate),
			Figure: fmt.Sprintf("%.1f s (%d objects, none differing)", res.AuditTime.Seconds(), res.Audited),
			Limit:  fmt.Sprintf("%.1f s the rate allows", float64(res.Audited)/float64(cfg.Rate)),
			Ratio:  fmt.Sprintf("%.2f×", float64(res.Audited)/float64(cfg.Rate)/res.AuditTime.Seconds())},
	}
	latency := envDuration(t, "BENCH_STRIPE_LATENCY", 300*time.Millisecond)
	late := backfillRun(t, backfillConfig{Customers: testenv.EnvInt(t, "BENCH_LATE_CUSTOMERS", 1000), Rate: cfg.Rate, LiveRate: cfg.LiveRate, Latency: latency})
	lateGot := float64(late.Objects) / late.Elapsed.Seconds()
	// A kind's pages follow one another: at most one request a latency
	// for each kind, and the Fetcher's concurrency for all of them.
	inFlight := float64(kinds) / latency.Seconds() * backfill.DefaultPageSize
	rows = append(rows, bench.Row{Part: "backfill", What: fmt.Sprintf("same, %d customers, each answer %s late (Stripe's round trip)", late.Objects/7, latency),
		Figure: fmt.Sprintf("%s (%d requests in %.1f s)", bench.PerSecond(lateGot, "object"), late.Requests, late.Elapsed.Seconds()),
		Limit: fmt.Sprintf("%s the rate allows; %s %d requests in flight do", bench.PerSecond(allowed, "object"),
			bench.PerSecond(min(allowed, inFlight), "object"), kinds),
		Ratio: fmt.Sprintf("%.2f× / %.2f×", lateGot/allowed, lateGot/min(allowed, inFlight))})
	slices := testenv.EnvInt(t, "BENCH_SLICES", 16)
	sliced := backfillRun(t, backfillConfig{Customers: testenv.EnvInt(t, "BENCH_SLICED_CUSTOMERS", 5000), Rate: cfg.Rate, LiveRate: cfg.LiveRate,
		Latency: latency, Slices: slices, Concurrency: slices})
	slicedGot := float64(sliced.Objects) / sliced.Elapsed.Seconds()
	slicedBound := min(allowed, float64(slices)/latency.Seconds()*backfill.DefaultPageSize)
	rows = append(rows, bench.Row{Part: "backfill", What: fmt.Sprintf("same, %d customers, %s late, --slices %d, STRIPE_API_CONCURRENCY %d", sliced.Objects/7, latency, slices, slices),
		Figure: fmt.Sprintf("%s (%d requests in %.1f s)", bench.PerSecond(slicedGot, "object"), sliced.Requests, sliced.Elapsed.Seconds()),
		Limit:  fmt.Sprintf("%s the rate and %d requests in flight allow", bench.PerSecond(slicedBound, "object"), slices),
		Ratio:  fmt.Sprintf("%.2f×", slicedGot/slicedBound)})
	return rows
}

// TestBenchBackfill measures the backfill rows of the table alone
// (BILLING_BENCH=1; the knobs of backfillRows).
func TestBenchBackfill(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the backfill rows of the benchmark table")
	}
	for _, r := range backfillRows(t) {
		t.Logf("%s | %s | %s | %s | %s | %s", r.Part, r.What, r.Figure, r.Limit, r.Ratio, r.Verdict)
	}
}
