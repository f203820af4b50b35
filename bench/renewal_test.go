package bench_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/reconcile"
)

// renewalTypes are the events Stripe sends, in one second, for an
// invoice paid on its renewal day, each carrying the same paid invoice.
var renewalTypes = []string{"invoice.paid", "invoice.payment_succeeded", "invoice.updated"}

// renewalGroup is how many invoices' events of one type are queued one
// after another: an invoice's three events land in different batches, so
// that each tie meets the row another transaction wrote, not only the
// batch's own fold.
const renewalGroup = 50

// renewalBodies are the events of invoices invoices paid on their renewal
// day: each invoice's three events (renewalTypes) created in one second,
// agreeing on every field, queued by groups (renewalGroup). Ids start
// with four hashed characters, as the processing rows' do.
func renewalBodies(invoices int, run string, created time.Time) ([][]byte, map[string][]byte) {
	objects := map[string][]byte{}
	var ids []string
	for i := range invoices {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s/%d", run, i)
		ids = append(ids, fmt.Sprintf("%04x%s_%06d", h.Sum32()&0xffff, run, i))
	}
	bodies := make([][]byte, 0, 3*invoices)
	for start := 0; start < invoices; start += renewalGroup {
		group := ids[start:min(start+renewalGroup, invoices)]
		for _, typ := range renewalTypes {
			for _, key := range group {
				inv := billingtest.Invoice("in_"+key, "cus_"+key, "sub_"+key, "paid", 4200, 4200)
				inv["payment_intent"], inv["charge"], inv["attempt_count"] = "pi_"+key, "ch_"+key, 1
				bodies = append(bodies, billingtest.Event(billingtest.NewEventID(), typ, created, inv))
				if objects["in_"+key] == nil {
					raw, _ := json.Marshal(inv) // maps of JSON values
					objects["in_"+key] = raw
				}
			}
		}
	}
	return bodies, objects
}

// renewalStripe is a fake Stripe in this process serving the invoices
// objects holds and counting the calls: each is a tie the worker did not
// settle from the payloads.
func renewalStripe(tb testing.TB, objects map[string][]byte) (*reconcile.Fetcher, *atomic.Int64) {
	tb.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		raw := objects[path.Base(r.URL.Path)]
		if raw == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	}))
	tb.Cleanup(srv.Close)
	// Limits no call waits for: a call is what the row counts, not a
	// queue behind Stripe's rate.
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_bench", APIBase: srv.URL,
		Limits: reconcile.Limits{Rate: 1e6, Concurrency: 64}})
	if err != nil {
		tb.Fatal(err)
	}
	return fetcher, &calls
}

// renewalDay processes a renewal day of invoices invoices (renewalBodies)
// as the worker's batches do, batchSize events a transaction and
// concurrency batches at once, in queue order, straight into a
// ledger.Processor whose ties are fetched from a fake Stripe: the run's
// figures and the calls Stripe got. No broker: 90,000 messages through
// quorum queues leave RabbitMQ writing its logs long enough to stall the
// rows measured after it; the processing rows measure the broker's part.
func renewalDay(tb testing.TB, invoices, batchSize, concurrency int, run string) (bench.Stats, int64, error) {
	tb.Helper()
	bodies, objects := renewalBodies(invoices, run, time.Now().Add(-time.Hour).Truncate(time.Second))
	fetcher, calls := renewalStripe(tb, objects)
	store := openStore(tb, testenv.Database(tb), settings(tb))
	defer store.Close()
	proc := ledger.NewProcessor(store, quietLogger(), ledger.WithObjectFetcher(fetcher))
	batches := (len(bodies) + batchSize - 1) / batchSize
	var next atomic.Int64
	errs := make(chan error, concurrency)
	settle(tb)
	since, start := time.Now().UTC(), time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < batches; i = int(next.Add(1)) - 1 {
				outcomes, err := proc.ProcessBatch(context.Background(), bodies[i*batchSize:min((i+1)*batchSize, len(bodies))])
				for _, o := range outcomes {
					err = cmp.Or(err, o.Err)
				}
				if err != nil {
					errs <- fmt.Errorf("bench: renewal day, batch %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := bench.Stats{N: len(bodies), Elapsed: time.Since(start)}
	close(errs)
	if err := <-errs; err != nil {
		return s, calls.Load(), err
	}
	done, err := doneEvents(store, since)
	if err == nil && done != int64(len(bodies)) {
		err = fmt.Errorf("bench: renewal day: %d ledger rows done, want %d", done, len(bodies))
	}
	return s, calls.Load(), err
}

// renewalRow measures renewal days, rounds of them (the median kept):
// the table's row of Stripe calls per 1,000 invoices and the rate.
func renewalRow(t *testing.T, invoices, batchSize, concurrency, rounds int) bench.Row {
	t.Helper()
	var runs []bench.Stats
	var calls int64
	for round := range rounds {
		// A subtest each: its database is dropped when it ends, not with
		// the table's.
		var s bench.Stats
		var n int64
		var err error
		t.Run(fmt.Sprintf("renewal day %d", round), func(t *testing.T) {
			s, n, err = renewalDay(t, invoices, batchSize, concurrency, fmt.Sprintf("r%d", round))
		})
		if err != nil || t.Failed() {
			t.Fatalf("renewal day %d: %v", round, err)
		}
		runs, calls = append(runs, s), calls+n
	}
	perThousand := float64(calls) / float64(rounds) * 1000 / float64(invoices)
	p := bench.Median(runs)
	return bench.Row{Part: "ties",
		What: fmt.Sprintf("renewal day: %d invoices each paid with invoice.paid, invoice.payment_succeeded and invoice.updated in one second, payloads agreeing (%d events straight to the ledger, c=%d, batch %d, a fake Stripe)",
			invoices, 3*invoices, concurrency, batchSize),
		Figure: fmt.Sprintf("%.1f Stripe calls per 1,000 invoices, %s", perThousand, bench.PerSecond(p.Rate(), "event")),
		Target: "0 calls", Verdict: bench.AtMost(perThousand, 0, "%.1f calls")}
}

// TestBenchRenewalDay measures the renewal-day row of the table alone
// (BILLING_BENCH=1; knobs BENCH_ROUNDS and BENCH_RENEWAL_INVOICES).
func TestBenchRenewalDay(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the renewal-day row of the benchmark table")
	}
	cfg := settings(t)
	r := renewalRow(t, testenv.EnvInt(t, "BENCH_RENEWAL_INVOICES", 10_000), cfg.WorkerBatchSize, cfg.WorkerConcurrency,
		testenv.EnvInt(t, "BENCH_ROUNDS", 3))
	t.Logf("%s | %s | %s | %s | %s", r.Part, r.What, r.Figure, r.Target, r.Verdict)
}
