package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/internal/testenv"
)

// batches records the batches a BatchHandler was given.
type batches struct {
	mu  sync.Mutex
	ids [][]string
	att map[string][]int // attempts seen per event id
}

func (b *batches) wrap(next consumer.BatchHandler) consumer.BatchHandler {
	return consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		b.mu.Lock()
		if b.att == nil {
			b.att = map[string][]int{}
		}
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.ID)
			b.att[d.ID] = append(b.att[d.ID], d.Attempt)
		}
		b.ids = append(b.ids, ids)
		b.mu.Unlock()
		return next.HandleBatch(ctx, ds)
	})
}

func (b *batches) get() (ids [][]string, att map[string][]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	att = map[string][]int{}
	for id, as := range b.att {
		att[id] = append([]int(nil), as...)
	}
	return append([][]string(nil), b.ids...), att
}

func batched(size int, wait time.Duration, h consumer.BatchHandler, outcomes *counter) func(*consumer.Config) {
	return func(c *consumer.Config) {
		c.Concurrency = 1
		c.BatchSize = size
		c.BatchWait = wait
		c.Batch = h
		c.Observer = outcomes
	}
}

// TestBatchPipelineShuffledDuplicated is the pipeline test with batches:
// a shuffled stream with duplicates, some of them side by side so that
// one batch holds the same event twice, across 4 workers, ends in the
// same rows as an in-order run, with one ledger row per event.
func TestBatchPipelineShuffledDuplicated(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
	stream := billingtest.Lifecycle(4, start)
	ref := openStore(t, testenv.Database(t))
	refProc := ledger.NewProcessor(ref, nil)
	for _, raw := range stream {
		if _, err := refProc.Process(context.Background(), raw); err != nil {
			t.Fatalf("reference run: %v", err)
		}
	}

	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	store := openStore(t, testenv.Database(t))
	rng := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	var msgs [][]byte
	for _, raw := range stream {
		for range 1 + rng.IntN(3) {
			msgs = append(msgs, raw)
		}
	}
	rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	// Side by side: the same event twice in a row, at the head of the
	// queue, where the first worker's first batch takes them.
	for _, raw := range stream[:3] {
		msgs = append([][]byte{raw, raw}, msgs...)
	}
	for _, raw := range msgs {
		id, typ := eventID(t, raw)
		h.publish(id, typ, raw)
	}
	outcomes := &counter{}
	rec := &batches{}
	for range 4 {
		h.start(process(ledger.NewProcessor(store, nil)), h.router(store), func(c *consumer.Config) {
			batched(8, 50*time.Millisecond, rec.wrap(processBatch(ledger.NewProcessor(store, nil))), outcomes)(c)
			c.Concurrency = 2
		})
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return outcomes.get("acked") >= len(msgs) }, "%d deliveries acked (now %d)", len(msgs), outcomes.get("acked"))
	for _, r := range []string{"retried", "parked", "dropped"} {
		if n := outcomes.get(r); n != 0 {
			t.Errorf("%d deliveries %s, want none", n, r)
		}
	}
	seen, _ := rec.get()
	twice, largest := false, 0
	for _, ids := range seen {
		largest = max(largest, len(ids))
		in := map[string]bool{}
		for _, id := range ids {
			twice = twice || in[id]
			in[id] = true
		}
	}
	t.Logf("%d deliveries in %d batches, largest %d", len(msgs), len(seen), largest)
	if !twice {
		t.Error("no batch held the same event twice: the test did not exercise it")
	}
	for _, q := range []struct{ table, order string }{
		{"customers", "stripe_id"}, {"subscriptions", "stripe_id"}, {"invoices", "stripe_id"},
		{"payments", "stripe_id"}, {"refunds", "stripe_id"}, {"disputes", "stripe_id"}, {"checkout_sessions", "stripe_id"},
		{"payment_status_history", "object_type, object_id, event_id"},
		{"stripe_events", "id"},
	} {
		want := dumpTable(t, ref.DB(), q.table, q.order)
		got := dumpTable(t, store.DB(), q.table, q.order)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs from the in-order run:\n got %v\nwant %v", q.table, got, want)
		}
	}
	var ledger, distinct int64
	store.DB().Raw("SELECT COUNT(*), COUNT(DISTINCT id) FROM stripe_events").Row().Scan(&ledger, &distinct)
	if ledger != int64(len(stream)) || distinct != ledger {
		t.Errorf("ledger has %d rows (%d ids), want one per event: %d", ledger, distinct, len(stream))
	}
	if n := h.ready(h.topo.Work) + h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("%d messages left in the work queue and DLQ", n)
	}
}

// TestBatchPoisonIsParkedAloneWhileItsBatchCommits: a well-formed event
// whose object no handler can decode fails inside a batch; its savepoint
// is rolled back and it is parked, while the rest of its batch commits.
func TestBatchPoisonIsParkedAloneWhileItsBatchCommits(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 3)
	store := openStore(t, testenv.Database(t))
	at := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	for i := range 7 {
		id := fmt.Sprintf("evt_batch_%d", i)
		h.publish(id, "customer.created", billingtest.Event(id, "customer.created", at, billingtest.Customer(fmt.Sprintf("cus_batch_%d", i), "b@example.com")))
		if i == 3 {
			h.publish("evt_poison", "customer.created", billingtest.Event("evt_poison", "customer.created", at,
				map[string]any{"id": 4000000, "object": "customer", "created": at.Unix()}))
		}
	}
	outcomes, rec := &counter{}, &batches{}
	h.start(process(ledger.NewProcessor(store, nil)), h.router(store),
		batched(16, 200*time.Millisecond, rec.wrap(processBatch(ledger.NewProcessor(store, nil))), outcomes))
	got := h.getDLQ(1, 5*time.Second)[0]
	if got.MessageId != "evt_poison" || got.Headers[broker.HeaderErrorClass] != "schema" {
		t.Errorf("parked %q class %v, want evt_poison schema", got.MessageId, got.Headers[broker.HeaderErrorClass])
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 7 && outcomes.get("parked") == 1 }, "7 acked and 1 parked")
	seen, _ := rec.get()
	if len(seen) == 0 || len(seen[0]) != 8 {
		t.Fatalf("batches %v, want the 8 events in one batch", seen)
	}
	statuses := ledgerStatuses(t, store)
	want := map[string]string{"evt_poison": "dead"}
	for i := range 7 {
		want[fmt.Sprintf("evt_batch_%d", i)] = "processed"
	}
	if !reflect.DeepEqual(statuses, want) {
		t.Errorf("ledger %v, want %v", statuses, want)
	}
	var customers int64
	store.DB().Raw("SELECT COUNT(*) FROM customers").Scan(&customers)
	if customers != 7 {
		t.Errorf("%d customers, want 7", customers)
	}
}

// TestBatchTransientFailureRetriesOnlyThatEvent: one event of a batch
// fails transiently; only it goes to a delay tier, the others are acked
// at their first attempt.
func TestBatchTransientFailureRetriesOnlyThatEvent(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 3)
	for i := range 6 {
		id := fmt.Sprintf("evt_t%d", i)
		h.publish(id, "invoice.paid", eventJSON(id, "invoice.paid"))
	}
	flaky := consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		errs := make([]error, len(ds))
		for i, d := range ds {
			if d.ID == "evt_t2" && d.Attempt == 1 {
				errs[i] = errors.New("flaky: try again")
			}
		}
		return errs, nil
	})
	outcomes, rec := &counter{}, &batches{}
	h.start(consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { return errors.New("single path used") }),
		h.router(nil), batched(8, 200*time.Millisecond, rec.wrap(flaky), outcomes))
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 6 }, "every event acked (now %d)", outcomes.get("acked"))
	if n := outcomes.get("retried"); n != 1 {
		t.Errorf("%d retried, want 1", n)
	}
	seen, att := rec.get()
	if len(seen[0]) != 6 {
		t.Errorf("first batch %v, want all 6 events", seen[0])
	}
	for i := range 6 {
		id := fmt.Sprintf("evt_t%d", i)
		want := []int{1}
		if id == "evt_t2" {
			want = []int{1, 2}
		}
		if !reflect.DeepEqual(att[id], want) {
			t.Errorf("%s handled at attempts %v, want %v", id, att[id], want)
		}
	}
	if n := h.ready(h.topo.DLQ) + h.ready(h.topo.TierQueue(0)); n != 0 {
		t.Errorf("%d left in the DLQ and the tier", n)
	}
}

// TestBatchDatabaseOutagePausesTheWholeBatch: with MySQL gone, the worker
// pauses, nothing goes to a tier or the DLQ and no attempt is spent; once
// it is back, every event is applied at its first attempt.
func TestBatchDatabaseOutagePausesTheWholeBatch(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}, 3)
	dsn, proxy := proxiedDatabase(t)
	store := openStore(t, dsn)
	outcomes, rec, probes := &counter{}, &batches{}, &probes{}
	r := h.start(process(ledger.NewProcessor(store, nil)), h.router(store), func(c *consumer.Config) {
		batched(8, 50*time.Millisecond, rec.wrap(processBatch(ledger.NewProcessor(store, nil))), outcomes)(c)
		c.Concurrency = 2
		c.Ping = probes.count(store.Ping)
	})
	at := time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC)
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("evt_bo_%02d", i)
			h.publish(id, "customer.created", billingtest.Event(id, "customer.created", at, billingtest.Customer(fmt.Sprintf("cus_bo_%02d", i), "o@example.com")))
		}
	}
	publish(0, 3)
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 3 }, "first events applied")
	proxy.Stop()
	publish(3, 15)
	testenv.Eventually(t, 5*time.Second, r.c.Paused, "the worker pauses")
	probes.wait(t, 5) // several probe backoffs, each longer than a retry tier
	if n := h.ready(h.topo.DLQ) + h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.TierQueue(1)); n != 0 {
		t.Errorf("%d events in the DLQ or the tiers during the outage, want none", n)
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return outcomes.get("acked") == 15 }, "every event applied after the outage (acked %d)", outcomes.get("acked"))
	if n := outcomes.get("parked") + outcomes.get("retried") + outcomes.get("dropped"); n != 0 {
		t.Errorf("%d parked, retried or dropped: an outage must spend no attempt", n)
	}
	_, att := rec.get()
	for id, as := range att {
		for _, a := range as {
			if a != 1 {
				t.Errorf("%s handled at attempt %d during the outage, want 1", id, a)
			}
		}
	}
	var processed int64
	store.DB().Raw("SELECT COUNT(*) FROM stripe_events WHERE status = 'processed'").Scan(&processed)
	if processed != 15 {
		t.Errorf("%d events processed in the ledger, want 15", processed)
	}
}

// TestBatchShutdown: a batch in flight at the cancel finishes and is
// acked; a batch whose handler is cut off by the shutdown bound commits
// nothing and is acked not at all, so the broker redelivers all of it.
func TestBatchShutdown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		bound     time.Duration
		stuck     bool
		wantReady int
	}{
		{name: "in-flight batch finishes and acks", bound: 2 * time.Second, wantReady: 0},
		{name: "cut-off batch is left for redelivery", bound: 300 * time.Millisecond, stuck: true, wantReady: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
			for i := range 4 {
				id := fmt.Sprintf("evt_s%d", i)
				h.publish(id, "invoice.paid", eventJSON(id, "invoice.paid"))
			}
			started := make(chan int, 1)
			slow := consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
				started <- len(ds)
				wait := time.After(500 * time.Millisecond)
				if tc.stuck {
					wait = nil
				}
				select {
				case <-wait:
					return make([]error, len(ds)), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			})
			outcomes := &counter{}
			r := h.start(consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { return errors.New("single path used") }),
				h.router(nil), func(c *consumer.Config) {
					batched(4, 200*time.Millisecond, slow, outcomes)(c)
					c.ShutdownTimeout = tc.bound
				})
			select {
			case n := <-started:
				if n != 4 {
					t.Fatalf("batch of %d, want 4", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("batch never started")
			}
			r.stop(t, tc.bound+5*time.Second)
			testenv.Eventually(t, 10*time.Second, func() bool { return h.ready(h.topo.Work) == tc.wantReady }, "%d events back in the work queue (now %d)", tc.wantReady, h.ready(h.topo.Work))
			if got := outcomes.get("acked"); got != 4-tc.wantReady {
				t.Errorf("%d acked, want %d", got, 4-tc.wantReady)
			}
			if n := h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.DLQ); n != 0 {
				t.Errorf("tier + DLQ hold %d: a batch cut off by shutdown must not be retried or parked", n)
			}
		})
	}
}
