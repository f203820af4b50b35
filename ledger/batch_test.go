package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

// fallbacks is a log handler counting the batches a Processor applied
// event by event instead of as sets, and keeping why.
type fallbacks struct {
	n       atomic.Int64
	mu      sync.Mutex
	reasons []string
}

func (f *fallbacks) Enabled(context.Context, slog.Level) bool { return true }
func (f *fallbacks) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "ledger: batch applied event by event" {
		f.n.Add(1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" {
				f.mu.Lock()
				f.reasons = append(f.reasons, a.Value.String())
				f.mu.Unlock()
			}
			return true
		})
	}
	return nil
}
func (f *fallbacks) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f *fallbacks) WithGroup(string) slog.Handler      { return f }

// batchSetup is setup with a Processor whose fallbacks are counted.
func batchSetup(t *testing.T) (*models.Store, *ledger.Processor, *fallbacks) {
	t.Helper()
	s := testenv.Store(t)
	fb := &fallbacks{}
	return s, ledger.NewProcessor(s, slog.New(fb)), fb
}

// processBatches applies events in batches of size and fails the test on
// any error.
func processBatches(t *testing.T, p *ledger.Processor, events [][]byte, size int) []ledger.Outcome {
	t.Helper()
	var all []ledger.Outcome
	for i := 0; i < len(events); i += size {
		outcomes, err := p.ProcessBatch(context.Background(), events[i:min(i+size, len(events))])
		if err != nil {
			t.Fatalf("ProcessBatch: %v", err)
		}
		for j, o := range outcomes {
			if o.Err != nil {
				t.Fatalf("ProcessBatch(%.200s): %v", events[i+j], o.Err)
			}
		}
		all = append(all, outcomes...)
	}
	return all
}

// TestProcessBatch: one transaction, the batch's work as sets. The same
// event twice in a batch applies once; an unparsable event and a poison
// one fail alone (permanent, schema) while the rest commit, without
// leaving the sets, and the batch ends in the rows the same events give
// one at a time.
func TestProcessBatch(t *testing.T) {
	t.Parallel()
	stream := billingtest.Lifecycle(2, start)
	poison := billingtest.Event("evt_poison_b", "customer.created", start, map[string]any{"id": 4000000, "object": "customer"})
	batch := [][]byte{stream[0], stream[0], []byte(`{not json`), stream[1], poison}
	batch = append(batch, stream[2:]...)

	s, p, fb := batchSetup(t)
	outcomes, err := p.ProcessBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(outcomes) != len(batch) {
		t.Fatalf("%d outcomes for %d events", len(outcomes), len(batch))
	}
	for i, o := range outcomes {
		switch i {
		case 1:
			if o.Err != nil || o.Result != ledger.Duplicate {
				t.Errorf("second copy in the batch: %+v, want duplicate", o)
			}
		case 2:
			if o.Err == nil || failure.Of(o.Err) != failure.Permanent {
				t.Errorf("event %d: %+v, want a permanent error", i, o)
			}
		case 4:
			if o.Err == nil || failure.Of(o.Err) != failure.Schema {
				t.Errorf("event %d: %+v, want a schema error", i, o)
			}
		default:
			if o.Err != nil || o.Result != ledger.Processed {
				t.Errorf("event %d: %+v, want processed", i, o)
			}
		}
	}
	if n := fb.n.Load(); n != 0 {
		t.Errorf("%d batches applied event by event, want the sets", n)
	}
	var poisonRows int64
	s.DB().Model(&models.StripeEvent{}).Where("id = ?", "evt_poison_b").Count(&poisonRows)
	if poisonRows != 0 {
		t.Errorf("the poison event has a ledger row")
	}

	ref, refProc := setup(t)
	for _, raw := range stream {
		process(t, refProc, raw, ledger.Processed)
	}
	if got, want := snapshot(t, s), snapshot(t, ref); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("batch rows differ from one-at-a-time rows:\n got %v\nwant %v", got, want)
	}

	t.Run("Redelivered", func(t *testing.T) {
		again, err := p.ProcessBatch(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range again {
			if i != 2 && i != 4 && (o.Err != nil || o.Result != ledger.Duplicate) {
				t.Errorf("event %d again: %+v, want duplicate", i, o)
			}
		}
		if got, want := snapshot(t, s), snapshot(t, ref); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("a redelivered batch changed the rows")
		}
	})
}

// TestProcessBatchRedeliveredOnOneWorker: a batch of valid events,
// redelivered whole to the same worker (its ack was lost), is all
// duplicates. Every event is readable, so nothing reads the ledger first:
// the claim's count alone must tell that the rows exist, and the batch
// must then commit nothing (rows, history and the ledger's stamps as
// they were).
func TestProcessBatchRedeliveredOnOneWorker(t *testing.T) {
	t.Parallel()
	stream := billingtest.Lifecycle(3, start)
	s, p, _ := batchSetup(t)
	for i, o := range processBatches(t, p, stream, len(stream)) {
		if o.Result != ledger.Processed {
			t.Fatalf("event %d: %+v, want processed", i, o)
		}
	}
	before := snapshot(t, s)
	var stamps []time.Time
	if err := s.DB().Model(&models.StripeEvent{}).Order("id").Pluck("processed_at", &stamps).Error; err != nil {
		t.Fatal(err)
	}

	for i, o := range processBatches(t, p, stream, len(stream)) {
		if o.Result != ledger.Duplicate {
			t.Errorf("event %d redelivered: %+v, want duplicate", i, o)
		}
	}
	if got := snapshot(t, s); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("the redelivered batch changed the rows:\n got %v\nwant %v", got, before)
	}
	var after []time.Time
	if err := s.DB().Model(&models.StripeEvent{}).Order("id").Pluck("processed_at", &after).Error; err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(after, stamps, time.Time.Equal) {
		t.Errorf("the redelivered batch stamped the ledger again")
	}
}

// TestProcessBatchPoisonStatement: an event the database refuses (a
// currency too long for its column) fails a statement of the sets; the
// batch is applied again event by event and the poison fails alone.
func TestProcessBatchPoisonStatement(t *testing.T) {
	t.Parallel()
	stream := billingtest.Lifecycle(2, start)
	poison := billingtest.Event(billingtest.NewEventID(), "customer.updated", start.Add(time.Hour),
		billingtest.Customer(billingtest.LifecycleIDs(start, 0).Customer, "poison@example.com"))
	poison = []byte(strings.Replace(string(poison), `"currency":"usd"`, `"currency":"usdx"`, 1))
	if !strings.Contains(string(poison), `"usdx"`) {
		t.Fatalf("the poison event carries no currency to spoil: %s", poison)
	}
	batch := append(slices.Clone(stream[:9]), poison)
	batch = append(batch, stream[9:]...)

	s, p, fb := batchSetup(t)
	outcomes, err := p.ProcessBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		switch {
		case i == 9 && o.Err == nil:
			t.Errorf("the poison event: %+v, want an error", o)
		case i != 9 && (o.Err != nil || o.Result != ledger.Processed):
			t.Errorf("event %d: %+v, want processed", i, o)
		}
	}
	if n := fb.n.Load(); n != 1 {
		t.Errorf("%d batches applied event by event, want 1", n)
	}
	ref, refProc := setup(t)
	for _, raw := range stream {
		process(t, refProc, raw, ledger.Processed)
	}
	if got, want := snapshot(t, s), snapshot(t, ref); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows differ from the stream without the poison:\n got %v\nwant %v", got, want)
	}
}

// TestProcessBatchConcurrentWorkers: two workers (two Processors, two
// goroutines each) apply overlapping batches of the same events at once,
// each goroutine all of them in its own order. Each event is processed
// exactly once and a duplicate everywhere else, and the rows are those of
// the ordered stream.
func TestProcessBatchConcurrentWorkers(t *testing.T) {
	t.Parallel()
	events := billingtest.Lifecycle(6, start)
	ref, refProc := setup(t)
	for _, raw := range events {
		process(t, refProc, raw, ledger.Processed)
	}
	want := snapshot(t, ref)

	s := testenv.Store(t)
	fb := &fallbacks{}
	workers := []*ledger.Processor{ledger.NewProcessor(s, slog.New(fb)), ledger.NewProcessor(s, slog.New(fb))}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	var (
		mu        sync.Mutex
		processed = map[string]int{}
		results   = map[ledger.Result]int{}
		batches   int
		rerun     int // batches run again after a deadlock outlasted InTx's reruns
		wg        sync.WaitGroup
	)
	for g := range 2 * len(workers) {
		p := workers[g%len(workers)]
		order := slices.Clone(events)
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		wg.Go(func() {
			for i := 0; i < len(order); i += 16 {
				batch := order[i:min(i+16, len(order))]
				// Four goroutines racing on the same few objects can
				// deadlock past InTx's reruns. Nothing was committed, and
				// the consumer handles the events again (one at a time);
				// this runs the batch again.
				outcomes, err := p.ProcessBatch(context.Background(), batch)
				for again := 0; err != nil && failure.RerunsTransaction(failure.Class(models.ErrorClass(err))) && again < 5; again++ {
					mu.Lock()
					rerun++
					mu.Unlock()
					outcomes, err = p.ProcessBatch(context.Background(), batch)
				}
				if err != nil {
					t.Errorf("ProcessBatch: %v", err)
					return
				}
				mu.Lock()
				batches++
				for j, o := range outcomes {
					if o.Err != nil {
						t.Errorf("event %.80s: %v", batch[j], o.Err)
					}
					results[o.Result]++
					if o.Result == ledger.Processed {
						ev, _ := billing.Parse(batch[j])
						processed[ev.ID]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if results[ledger.Processed] != len(events) || results[ledger.Duplicate] != 3*len(events) {
		t.Errorf("results %v, want %d processed and %d duplicates", results, len(events), 3*len(events))
	}
	for id, n := range processed {
		if n != 1 {
			t.Errorf("event %s processed %d times", id, n)
		}
	}
	t.Logf("%d of %d batches applied event by event: %q; %d run again after a deadlock", fb.n.Load(), batches, fb.reasons, rerun)
	if fb.n.Load() >= int64(batches) {
		t.Errorf("every batch was applied event by event: the sets were never tried with duplicates")
	}
	got := snapshot(t, s)
	for table := range want {
		if !slices.Equal(got[table], want[table]) {
			t.Errorf("%s differs from the ordered run:\ngot  %q\nwant %q", table, got[table], want[table])
		}
	}
}

// TestProcessBatchUpdatesInPlace: a batch writes an object's row that
// exists as an update of that row, keyed by its primary key, not as an
// insert that meets the unique stripe_id and falls back to an update
// (which spends an auto-increment id on every write and takes a next-key
// lock in the unique index): after whole lifecycles in batches, each
// object table has spent one id per row.
func TestProcessBatchUpdatesInPlace(t *testing.T) {
	t.Parallel()
	s, p, fb := batchSetup(t)
	processBatches(t, p, billingtest.Lifecycle(8, start), 16)
	if n := fb.n.Load(); n != 0 {
		t.Fatalf("%d batches applied event by event, want the sets", n)
	}
	for _, table := range []string{"customers", "subscriptions", "invoices", "payments", "refunds", "disputes", "checkout_sessions"} {
		var rows, maxID, next int64
		if err := s.DB().Raw("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM "+table).Row().Scan(&rows, &maxID); err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Raw("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", table).Row().Scan(&next); err != nil {
			t.Fatal(err)
		}
		if rows == 0 || maxID != rows || next != rows+1 {
			t.Errorf("%s: %d rows, ids up to %d, next id %d: want one id spent per row", table, rows, maxID, next)
		}
	}
}

// TestProcessBatchItemsLockTheirSubscriptions: the DELETE of the items a
// complete list no longer names locks only the items of its own
// subscriptions. Scanning the table, it waited for the items another
// transaction holds under another subscription's lock, and batches
// writing the items of different subscriptions deadlocked. Here another
// transaction holds the items of one subscription of 20 while a batch
// replaces the items of 16 others (enough for the optimizer to prefer a
// scan): with a one-second lock wait, a wait would fail the batch.
func TestProcessBatchItemsLockTheirSubscriptions(t *testing.T) {
	t.Parallel()
	s, err := models.Open(context.Background(), testenv.Database(t)+"&innodb_lock_wait_timeout=1", models.PoolConfig{MaxOpenConns: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	fb := &fallbacks{}
	p := ledger.NewProcessor(s, slog.New(fb))
	var created, updated [][]byte
	for _, raw := range billingtest.Lifecycle(20, start) {
		ev, err := billing.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case "customer.created", "customer.subscription.created":
			created = append(created, raw)
		case "customer.subscription.updated":
			if ev.ObjectID != billingtest.LifecycleIDs(start, 19).Subscription {
				updated = append(updated, raw)
			}
		}
	}
	processBatches(t, p, created, 16)

	db, err := s.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	holder, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	var held int
	if err := holder.QueryRow("SELECT COUNT(*) FROM (SELECT id FROM subscription_items WHERE subscription_id = ? FOR UPDATE) held",
		billingtest.LifecycleIDs(start, 19).Subscription).Scan(&held); err != nil || held == 0 {
		t.Fatalf("lock the other subscription's items: %d items, %v", held, err)
	}
	outcomes, err := p.ProcessBatch(context.Background(), updated[:16])
	if err != nil {
		t.Fatalf("ProcessBatch: %v", err)
	}
	for i, o := range outcomes {
		if o.Err != nil || o.Result != ledger.Processed {
			t.Errorf("event %d: %+v, want processed", i, o)
		}
	}
	if n := fb.n.Load(); n != 0 {
		t.Errorf("%d batches applied event by event (%v), want the sets", n, fb.reasons)
	}
}

// TestUnreadableRedeliveryOfADoneEvent: a copy of a done event whose
// object no longer decodes (a parked copy edited, say) is a duplicate,
// alone and in a batch, as the ledger says before anything decodes it;
// a new event that does not decode fails alone.
func TestUnreadableRedeliveryOfADoneEvent(t *testing.T) {
	t.Parallel()
	_, p := setup(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	done := billingtest.NewEventID()
	process(t, p, billingtest.Event(done, "customer.created", t0, billingtest.Customer("cus_u1", "u1@example.com")), ledger.Processed)
	broken := func(id string) []byte {
		return []byte(`{"id":"` + id + `","object":"event","type":"customer.created","created":` +
			strconv.FormatInt(t0.Unix(), 10) + `,"data":{"object":{}}}`)
	}
	if res, err := p.Process(context.Background(), broken(done)); err != nil || res != ledger.Duplicate {
		t.Errorf("alone: %q, %v; want duplicate", res, err)
	}
	fresh := billingtest.NewEventID()
	outcomes, err := p.ProcessBatch(context.Background(), [][]byte{
		broken(done),
		billingtest.Event(billingtest.NewEventID(), "customer.created", t0, billingtest.Customer("cus_u2", "u2@example.com")),
		broken(fresh),
	})
	if err != nil {
		t.Fatal(err)
	}
	if outcomes[0].Result != ledger.Duplicate || outcomes[0].Err != nil {
		t.Errorf("in a batch: %+v; want duplicate", outcomes[0])
	}
	if outcomes[1].Result != ledger.Processed || outcomes[1].Err != nil {
		t.Errorf("its neighbour: %+v; want processed", outcomes[1])
	}
	if outcomes[2].Err == nil || failure.Of(outcomes[2].Err) != failure.Schema {
		t.Errorf("a new unreadable event: %+v; want a schema failure", outcomes[2])
	}
}
