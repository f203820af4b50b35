package consumer_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/go-sql-driver/mysql"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// counter is an Observer that counts outcomes.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Observe(o consumer.Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[string(o.Result)]++
}

func (c *counter) get(result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[result]
}

func openStore(t *testing.T, dsn string) *models.Store {
	t.Helper()
	s, err := models.Open(context.Background(), dsn, models.PoolConfig{MaxOpenConns: 8, MaxIdleConns: 4, ConnMaxLifetime: time.Minute},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ledgerStatuses maps each event id of the ledger to its status.
func ledgerStatuses(t *testing.T, store *models.Store) map[string]string {
	t.Helper()
	var rows []models.StripeEvent
	if err := store.DB().Select("id", "status").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	statuses := make(map[string]string, len(rows))
	for _, r := range rows {
		statuses[r.ID] = r.Status
	}
	return statuses
}

func eventID(t *testing.T, raw []byte) (id, typ string) {
	t.Helper()
	var ev struct{ ID, Type string }
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID, ev.Type
}

func TestPipelineShuffledDuplicatedConcurrent(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	stream := billingtest.Lifecycle(4, start)
	unknown := billingtest.Event("evt_unknown_1", "balance.available", start, map[string]any{"object": "balance", "available": []any{}})

	// The reference: every event once, in Stripe's order, one at a time.
	ref := openStore(t, testenv.Database(t))
	refProc := ledger.NewProcessor(ref, nil)
	for _, raw := range append(stream, unknown) {
		if _, err := refProc.Process(context.Background(), raw); err != nil {
			t.Fatalf("reference run: %v", err)
		}
	}

	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	store := openStore(t, testenv.Database(t))
	outcomes := &counter{}
	for range 4 {
		h.start(process(ledger.NewProcessor(store, nil)), h.router(store), func(c *consumer.Config) {
			c.Concurrency = 2
			c.Observer = outcomes
		})
	}
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	var msgs [][]byte
	for _, raw := range append(stream, unknown) {
		for range 1 + rng.IntN(3) {
			msgs = append(msgs, raw)
		}
	}
	rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	for _, raw := range msgs {
		id, typ := eventID(t, raw)
		h.publish(id, typ, raw)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return outcomes.get("acked") >= len(msgs) }, "%d deliveries acked (now %d)", len(msgs), outcomes.get("acked"))
	if n := outcomes.get("acked"); n != len(msgs) {
		t.Errorf("%d deliveries acked, want %d", n, len(msgs))
	}
	for _, r := range []string{"retried", "parked", "dropped"} {
		if n := outcomes.get(r); n != 0 {
			t.Errorf("%d deliveries %s, want none", n, r)
		}
	}
	t.Logf("%d events, %d deliveries", len(stream)+1, len(msgs))

	for _, q := range []struct{ table, order string }{
		{"customers", "stripe_id"}, {"subscriptions", "stripe_id"}, {"invoices", "stripe_id"},
		{"payments", "stripe_id"}, {"refunds", "stripe_id"}, {"disputes", "stripe_id"}, {"checkout_sessions", "stripe_id"},
		{"payment_status_history", "object_type, object_id, event_id"},
		{"stripe_events", "id"},
	} {
		want := dumpTable(t, ref.DB(), q.table, q.order)
		got := dumpTable(t, store.DB(), q.table, q.order)
		if len(want) == 0 {
			t.Errorf("%s: the reference run wrote nothing", q.table)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs from the in-order run:\n got %v\nwant %v", q.table, got, want)
		}
	}
	var ignored string
	if err := store.DB().Raw("SELECT status FROM stripe_events WHERE id = 'evt_unknown_1'").Scan(&ignored).Error; err != nil || ignored != "ignored" {
		t.Errorf("unknown event type: ledger status %q (%v), want ignored", ignored, err)
	}
	var ledger, distinct int64
	store.DB().Raw("SELECT COUNT(*), COUNT(DISTINCT id) FROM stripe_events").Row().Scan(&ledger, &distinct)
	if ledger != int64(len(stream)+1) || distinct != ledger {
		t.Errorf("ledger has %d rows (%d ids), want one per event: %d", ledger, distinct, len(stream)+1)
	}
	if n := h.ready(h.topo.Work) + h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("%d messages left in the work queue and DLQ", n)
	}
}

// dumpTable returns a table's rows in order without the columns that
// record when or in which order we wrote them (surrogate ids, our own
// timestamps, the ledger's applied flag), so that two runs can be compared.
func dumpTable(t *testing.T, db *gorm.DB, table, order string) []string {
	t.Helper()
	rows, err := db.Raw("SELECT * FROM " + table + " ORDER BY " + order).Rows()
	if err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{"id": table != "stripe_events", "seq": true, "created_at": true, "updated_at": true,
		"recorded_at": true, "received_at": true, "processed_at": true,
		"applied":    table == "stripe_events", // applied or stale depends on the order of delivery
		"change_seq": true,                     // so do the changes the feed saw (a stale event makes none)
		"signature":  true}                     // holds the time it was signed
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for i, c := range cols {
			if !skip[c] {
				parts = append(parts, fmt.Sprintf("%s=%q", c, vals[i]))
			}
		}
		out = append(out, fmt.Sprint(parts))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// proxiedDatabase returns a fresh database's DSN through an in-process
// toxiproxy the test owns: Stop cuts every connection and refuses new
// ones, Start lets them through again. The real server is never touched.
func proxiedDatabase(t *testing.T) (dsn string, proxy *toxiproxy.Proxy) {
	t.Helper()
	cfg, err := mysql.ParseDSN(testenv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy = testenv.Proxy(t, t.Name(), cfg.Addr)
	if _, _, err := net.SplitHostPort(proxy.Listen); err != nil {
		t.Fatalf("proxy address %q: %v", proxy.Listen, err)
	}
	cfg.Addr = proxy.Listen
	cfg.Timeout = time.Second
	return cfg.FormatDSN(), proxy
}

func TestDatabaseOutageParksNothing(t *testing.T) {
	t.Parallel()
	delays := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	h := setup(t, delays, 3) // the whole schedule: about 150ms
	dsn, proxy := proxiedDatabase(t)
	store := openStore(t, dsn)
	proc := ledger.NewProcessor(store, nil)
	var calls, retried atomic.Int64
	handler := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		calls.Add(1)
		if d.Attempt != 1 {
			retried.Add(1)
		}
		_, err := proc.Process(ctx, d.Body)
		return err
	})
	outcomes, probes := &counter{}, &probes{}
	const concurrency = 4
	r := h.start(handler, h.router(store), func(c *consumer.Config) {
		c.Concurrency = concurrency
		c.Ping = probes.count(store.Ping)
		c.Observer = outcomes
	})
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("evt_outage_%02d", i)
			h.publish(id, "customer.created", billingtest.Event(id, "customer.created", start.Add(time.Duration(i)*time.Second),
				billingtest.Customer(fmt.Sprintf("cus_outage_%02d", i), "o@example.com")))
		}
	}
	publish(0, 3)
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 3 }, "first events applied")

	proxy.Stop() // MySQL is gone for the worker
	publish(3, 15)
	testenv.Eventually(t, 5*time.Second, r.c.Paused, "the worker pauses")
	before := calls.Load()
	probes.wait(t, 5) // several probe backoffs, each longer than a retry tier
	if n := calls.Load() - before; n > concurrency {
		t.Errorf("handler called %d times during the outage, want at most %d: the worker must stop pulling", n, concurrency)
	}
	if !r.c.Paused() {
		t.Error("worker resumed while the database was down")
	}
	if n := h.ready(h.topo.DLQ) + h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.TierQueue(1)); n != 0 {
		t.Errorf("%d events in the DLQ or the tiers during the outage, want none", n)
	}

	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return outcomes.get("acked") == 15 }, "every event applied after the outage (acked %d)", outcomes.get("acked"))
	var processed int64
	store.DB().Raw("SELECT COUNT(*) FROM stripe_events WHERE status = 'processed'").Scan(&processed)
	if processed != 15 {
		t.Errorf("%d events processed in the ledger, want 15", processed)
	}
	if n := outcomes.get("parked") + outcomes.get("retried"); n != 0 || retried.Load() != 0 {
		t.Errorf("%d parked or retried, %d deliveries past attempt 1: an outage must spend no attempt", n, retried.Load())
	}
	if n := h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("DLQ holds %d events, want none", n)
	}
}

// TestEventWithoutAnObjectIsParked: a signed event whose data.object is
// no object is parked at once by the verifier (verify.CheckEvent, the
// api's check too), before the processor; the others flow.
func TestEventWithoutAnObjectIsParked(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 3)
	store := openStore(t, testenv.Database(t))
	outcomes := &counter{}
	h.start(process(ledger.NewProcessor(store, nil)), h.router(store), func(c *consumer.Config) { c.Observer = outcomes })
	begin := time.Now()
	noObject := []byte(`{"id":"evt_NoObject","object":"event","type":"customer.created","created":1700000000,"data":{"object":"cus_x"}}`)
	h.publish("evt_NoObject", "customer.created", noObject)
	for i := range 3 {
		id := fmt.Sprintf("evt_after_%d", i)
		h.publish(id, "customer.created", billingtest.Event(id, "customer.created", begin, billingtest.Customer("cus_after_"+fmt.Sprint(i), "x@example.com")))
	}
	got := h.getDLQ(1, time.Second)[0]
	t.Logf("parked %s after %s", got.MessageId, time.Since(begin).Round(time.Millisecond))
	reason := broker.HeaderString(got.Headers, broker.HeaderError)
	if got.Headers[broker.HeaderErrorClass] != "unverified" || got.MessageId != "evt_NoObject" || !strings.Contains(reason, "data.object is not an object") {
		t.Errorf("parked %q class %v for %q, want evt_NoObject unverified, data.object is not an object", got.MessageId, got.Headers[broker.HeaderErrorClass], reason)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 3 && outcomes.get("parked") == 1 }, "the other events applied")
	var n int64
	store.DB().Raw("SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_NoObject'").Scan(&n)
	if n != 0 {
		t.Errorf("the ledger has %d rows for the unverified event, want none", n)
	}
}
