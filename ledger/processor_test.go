package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm/schema"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*models.Store, *ledger.Processor) {
	t.Helper()
	s := testenv.Store(t)
	return s, ledger.NewProcessor(s, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// process applies raw as the worker does once it verified it: with the
// signature that signs it, which the ledger keeps.
func process(t *testing.T, p *ledger.Processor, raw []byte, want ledger.Result) {
	t.Helper()
	got, err := p.ProcessSigned(context.Background(), raw, testenv.Sign(raw, testenv.WebhookSecret, time.Now()))
	if err != nil || got != want {
		t.Fatalf("Process(%.120s) = %q, %v; want %q", raw, got, err, want)
	}
}

// snapshot reads every table through its model in a stable order, as JSON
// rows by table name, leaving out what depends on wall time or insertion
// order (surrogate ids, created_at and the like; a signature holds its
// time), the ledger's applied
// included: which of an object's events changed its row depends on the
// order they came in.
func snapshot(t *testing.T, s *models.Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(table string, rows []string) { out[table] = rows }
	add(dump[models.Customer](t, s, "stripe_id"))
	add(dump[models.Subscription](t, s, "stripe_id"))
	add(dump[models.SubscriptionItem](t, s, "stripe_id"))
	add(dump[models.InvoicePayment](t, s, "stripe_id"))
	add(dump[models.Invoice](t, s, "stripe_id"))
	add(dump[models.Payment](t, s, "stripe_id"))
	add(dump[models.Refund](t, s, "stripe_id"))
	add(dump[models.Dispute](t, s, "stripe_id"))
	add(dump[models.CheckoutSession](t, s, "stripe_id"))
	add(dump[models.CreditNote](t, s, "stripe_id"))
	add(dump[models.PaymentMethod](t, s, "stripe_id"))
	add(dump[models.Product](t, s, "stripe_id"))
	add(dump[models.Price](t, s, "stripe_id"))
	add(dump[models.SubscriptionSchedule](t, s, "stripe_id"))
	add(dump[models.StatusChange](t, s, "event_id, object_type, object_id"))
	add(dump[models.StripeEvent](t, s, "id"))
	return out
}

// dump returns M's table name and its rows in order, as JSON.
func dump[M schema.Tabler](t *testing.T, s *models.Store, order string, omit ...string) (table string, rows []string) {
	t.Helper()
	var all []M
	// change_seq counts an object's changes, which the delivery order
	// decides (a stale event changes nothing): the outbox's tests hold it.
	omit = append(omit, "id", "seq", "change_seq", "created_at", "updated_at", "recorded_at", "received_at", "processed_at", "payload", "signature", "applied")
	err := s.DB().Omit(omit...).Order(order).Find(&all).Error
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, string(b))
	}
	var m M
	return m.TableName(), rows
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	const n = 3
	events := billingtest.Lifecycle(n, start)
	for _, raw := range events {
		process(t, p, raw, ledger.Processed)
	}
	db := s.DB()
	for i := range n {
		id := billingtest.LifecycleIDs(start, i)
		amount := billingtest.LifecycleAmount(i)
		t.Run(id.Customer, func(t *testing.T) {
			var c models.Customer
			if err := db.Where("stripe_id = ?", id.Customer).Take(&c).Error; err != nil {
				t.Fatal(err)
			}
			if *c.Email != "billing+"+id.Customer+"@example.com" || c.Deleted {
				t.Errorf("customer = email %q deleted %v", *c.Email, c.Deleted)
			}
			var sub models.Subscription
			if err := db.Where("stripe_id = ?", id.Subscription).Take(&sub).Error; err != nil {
				t.Fatal(err)
			}
			if *sub.Status != "canceled" || sub.CanceledAt == nil || *sub.CustomerID != id.Customer {
				t.Errorf("subscription = %+v", sub)
			}
			var items []models.SubscriptionItem
			if err := db.Where("subscription_id = ?", id.Subscription).Find(&items).Error; err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 || *items[0].PriceID != "price_monthly" || *items[0].Quantity != 1 || !items[0].CurrentPeriodStart.Equal(*sub.CurrentPeriodStart) {
				t.Errorf("subscription items = %+v", items)
			}
			var inv models.Invoice
			if err := db.Where("stripe_id = ?", id.Invoice).Take(&inv).Error; err != nil {
				t.Fatal(err)
			}
			if *inv.Status != "paid" || *inv.AmountDue != amount || *inv.AmountPaid != amount || *inv.AmountRemaining != 0 ||
				*inv.Currency != "usd" || *inv.SubscriptionID != id.Subscription || *inv.ChargeID != id.Charge || *inv.AttemptCount != 2 {
				t.Errorf("invoice = %+v", inv)
			}
			var pays []models.Payment
			if err := db.Where("customer_id = ?", id.Customer).Order("stripe_id").Find(&pays).Error; err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, pay := range pays {
				got[pay.StripeID] = fmt.Sprintf("%s %s amount=%d refunded=%v captured=%v failure=%v", pay.Object, *pay.Status, *pay.Amount, value(pay.AmountRefunded), *pay.Captured, pay.FailureCode != nil)
			}
			want := map[string]string{
				id.Charge:        fmt.Sprintf("charge succeeded amount=%d refunded=%d captured=true failure=false", amount, billingtest.LifecycleRefund),
				id.FailedCharge:  fmt.Sprintf("charge failed amount=%d refunded=0 captured=false failure=true", amount),
				id.PaymentIntent: fmt.Sprintf("payment_intent succeeded amount=%d refunded=<nil> captured=true failure=false", amount),
			}
			if !maps.Equal(got, want) {
				t.Errorf("payments = %v\nwant %v", got, want)
			}
			var ref models.Refund
			if err := db.Where("stripe_id = ?", id.Refund).Take(&ref).Error; err != nil {
				t.Fatal(err)
			}
			if *ref.Status != "succeeded" || *ref.Amount != billingtest.LifecycleRefund || *ref.ChargeID != id.Charge {
				t.Errorf("refund = %+v", ref)
			}
			var dp models.Dispute
			if err := db.Where("stripe_id = ?", id.Dispute).Take(&dp).Error; err != nil {
				t.Fatal(err)
			}
			if *dp.Status != "lost" || *dp.Amount != amount-billingtest.LifecycleRefund || *dp.Reason != "fraudulent" {
				t.Errorf("dispute = %+v", dp)
			}
			var history []string
			err := db.Model(&models.StatusChange{}).Where("object_id IN ?", []string{id.Invoice, id.Subscription}).
				Order("occurred_at, object_type, status").Pluck("CONCAT(object_type, ':', status)", &history).Error
			if err != nil {
				t.Fatal(err)
			}
			// By time, then by name: event ids say nothing of order.
			wantHistory := []string{"invoice:draft", "subscription:incomplete", "invoice:open", "invoice:open",
				"invoice:paid", "invoice:paid", "subscription:active", "subscription:canceled"}
			if !slices.Equal(history, wantHistory) {
				t.Errorf("history = %v\nwant %v", history, wantHistory)
			}
		})
	}
	snap := snapshot(t, s)
	wantCounts := map[string]int{"stripe_events": len(events), "customers": n, "subscriptions": n, "invoices": n,
		"payments": 3 * n, "refunds": n, "disputes": n, "checkout_sessions": n, "payment_status_history": 17 * n}
	for table, want := range wantCounts {
		if got := len(snap[table]); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
}

// TestShuffledConcurrentConverges: any delivery order, with duplicates and
// concurrency, ends in the same rows and history as the ordered stream.
func TestShuffledConcurrentConverges(t *testing.T) {
	t.Parallel()
	const n = 4
	events := billingtest.Lifecycle(n, start)

	ordered, op := setup(t)
	for _, raw := range events {
		process(t, op, raw, ledger.Processed)
	}
	want := snapshot(t, ordered)

	for run := range 3 {
		seed := uint64(time.Now().UnixNano()) + uint64(run)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, seed))
			var deliveries [][]byte
			for _, raw := range events {
				for range 1 + rng.IntN(3) {
					deliveries = append(deliveries, raw)
				}
			}
			rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

			s, p := setup(t)
			work := make(chan []byte)
			var mu sync.Mutex
			results := map[ledger.Result]int{}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for raw := range work {
						r, err := p.Process(context.Background(), raw)
						if err != nil {
							t.Errorf("Process: %v", err)
						}
						mu.Lock()
						results[r]++
						mu.Unlock()
					}
				})
			}
			for _, raw := range deliveries {
				work <- raw
			}
			close(work)
			wg.Wait()

			if results[ledger.Processed] != len(events) || results[ledger.Duplicate] != len(deliveries)-len(events) {
				t.Errorf("results = %v, want %d processed and %d duplicates", results, len(events), len(deliveries)-len(events))
			}
			got := snapshot(t, s)
			for table := range want {
				if !slices.Equal(got[table], want[table]) {
					t.Errorf("%s differs from the ordered run:\ngot  %q\nwant %q", table, got[table], want[table])
				}
			}
		})
	}
}

func status(t *testing.T, s *models.Store, model schema.Tabler, id string) string {
	t.Helper()
	var st string
	if err := s.DB().Model(model).Where("stripe_id = ?", id).Pluck("status", &st).Error; err != nil {
		t.Fatal(err)
	}
	return st
}

func TestOrder(t *testing.T) {
	t.Parallel()
	t0 := start
	t1 := start.Add(time.Second)
	sub := func(status string) map[string]any { return billingtest.Subscription("sub_1", "cus_1", status, t0) }
	inv := func(status string) map[string]any {
		return billingtest.Invoice("in_1", "cus_1", "sub_1", status, 1000, 0)
	}
	type delivery struct {
		typ string
		at  time.Time
		obj map[string]any
	}
	tests := []struct {
		name       string
		events     []delivery
		model      schema.Tabler
		id         string
		wantStatus string
		wantHist   int
	}{
		{"tie on created: paid beats open whatever the order", []delivery{
			{"invoice.paid", t0, inv("paid")},
			{"invoice.updated", t0, inv("open")},
		}, models.Invoice{}, "in_1", "paid", 2},
		{"late update after deletion leaves subscription canceled", []delivery{
			{"customer.subscription.created", t0, sub("active")},
			{"customer.subscription.deleted", t0, sub("canceled")},
			{"customer.subscription.updated", t1, sub("active")},
		}, models.Subscription{}, "sub_1", "canceled", 3},
		{"paid invoice never reopens", []delivery{
			{"invoice.paid", t0, inv("paid")},
			{"invoice.updated", t1, inv("open")},
		}, models.Invoice{}, "in_1", "paid", 2},
		{"older event is stale", []delivery{
			{"customer.subscription.updated", t1, sub("past_due")},
			{"customer.subscription.updated", t0, sub("active")},
		}, models.Subscription{}, "sub_1", "past_due", 2},
		{"succeeded intent never goes back to processing", []delivery{
			{"payment_intent.succeeded", t0, billingtest.PaymentIntent("pi_1", "cus_1", "", "succeeded", 100)},
			{"payment_intent.processing", t1, billingtest.PaymentIntent("pi_1", "cus_1", "", "processing", 100)},
		}, models.Payment{}, "pi_1", "succeeded", 2},
		{"lost dispute never reopens", []delivery{
			{"charge.dispute.closed", t0, billingtest.Dispute("dp_1", "ch_1", "", "lost", 100)},
			{"charge.dispute.updated", t1, billingtest.Dispute("dp_1", "ch_1", "", "under_review", 100)},
		}, models.Dispute{}, "dp_1", "lost", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, p := setup(t)
			for _, d := range tt.events {
				process(t, p, billingtest.Event(billingtest.NewEventID(), d.typ, d.at, d.obj), ledger.Processed)
			}
			if got := status(t, s, tt.model, tt.id); got != tt.wantStatus {
				t.Errorf("status = %q, want %q", got, tt.wantStatus)
			}
			var hist int64
			s.DB().Model(&models.StatusChange{}).Where("object_id = ?", tt.id).Count(&hist)
			if int(hist) != tt.wantHist {
				t.Errorf("history rows = %d, want %d (stale events are recorded too)", hist, tt.wantHist)
			}
		})
	}
}

func TestUnknownAndDuplicate(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	unknown := billingtest.Event("evt_unknown", "issuing_card.created", start, map[string]any{"id": "ic_1", "object": "issuing.card"})
	process(t, p, unknown, ledger.Ignored)
	before := snapshot(t, s)
	if len(before["stripe_events"]) != 1 || !strings.Contains(before["stripe_events"][0], `"Status":"ignored"`) {
		t.Fatalf("ledger = %v, want one ignored row", before["stripe_events"])
	}
	for table, rows := range before {
		if table != "stripe_events" && len(rows) != 0 {
			t.Errorf("%s has rows for an unknown event: %v", table, rows)
		}
	}
	process(t, p, unknown, ledger.Duplicate)

	paid := billingtest.Event("evt_paid", "invoice.paid", start, billingtest.Invoice("in_1", "cus_1", "", "paid", 700, 700))
	process(t, p, paid, ledger.Processed)
	before = snapshot(t, s)
	process(t, p, paid, ledger.Duplicate)
	if after := snapshot(t, s); !maps.Equal(flatten(after), flatten(before)) {
		t.Errorf("duplicate changed rows:\nbefore %v\nafter  %v", before, after)
	}
	if !slices.Contains(p.Handled(), "invoice.paid") || slices.Contains(p.Handled(), "issuing_card.created") {
		t.Errorf("Handled() = %v", p.Handled())
	}
}

// value is *p, or nil.
func value[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func flatten(m map[string][]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = strings.Join(v, "\n")
	}
	return out
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	tests := []struct {
		name string
		raw  string
		want failure.Class
		msg  string // in the error: the field at fault
	}{
		{"not json", `{"id": "evt_1", `, failure.Permanent, "parse event"},
		{"no id", `{"object":"event","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"in_1","object":"invoice"}}}`, failure.Permanent, "no id"},
		{"no type", `{"id":"evt_1","object":"event","created":1700000000,"data":{"object":{"id":"in_1","object":"invoice"}}}`, failure.Permanent, "no type"},
		{"data.object a string", `{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000,"data":{"object":"in_1"}}`, failure.Permanent, "parse event"},
		{"no data", `{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000}`, failure.Permanent, "no data.object"},
		{"object without id", `{"id":"evt_1","object":"event","api_version":"2025-05-28.basil","type":"invoice.paid","created":1700000000,"data":{"object":{"object":"invoice","status":"paid"}}}`,
			failure.Schema, "API version 2025-05-28.basil): invoice.id is missing"},
		{"object of the wrong kind", `{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}}}`,
			failure.Schema, `invoice.object is "customer", want "invoice"`},
		{"amount not a number", `{"id":"evt_1","object":"event","api_version":"2023-10-16","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"in_1","object":"invoice","status":"paid","amount_due":"lots"}}}`,
			failure.Schema, "API version 2023-10-16): invoice.amount_due is a JSON string, want a number"},
		{"id not a string", `{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,"data":{"object":{"id":4,"object":"customer"}}}`,
			failure.Schema, "customer.id is a JSON number, want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Process(context.Background(), []byte(tt.raw))
			if err == nil || failure.Of(err) != tt.want || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v (class %v), want a %s error saying %q", err, failure.Of(err), tt.want, tt.msg)
			}
		})
	}
	for table, rows := range snapshot(t, s) {
		if len(rows) != 0 {
			t.Errorf("%s has rows after malformed events: %v", table, rows)
		}
	}
}

func TestIDsAreCaseSensitiveAndAmountsExact(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	const big = int64(9007199254740993) // 2^53 + 1: lost by float64
	process(t, p, billingtest.Event("evt_x", "customer.created", start, billingtest.Customer("cus_AbC", "upper@example.com")), ledger.Processed)
	process(t, p, billingtest.Event("evt_X", "customer.created", start, billingtest.Customer("cus_abc", "lower@example.com")), ledger.Processed)
	process(t, p, billingtest.Event("evt_big", "invoice.created", start, billingtest.Invoice("in_big", "cus_AbC", "", "draft", big, 0)), ledger.Processed)

	var emails []string
	s.DB().Model(&models.Customer{}).Order("email").Pluck("email", &emails)
	if !slices.Equal(emails, []string{"lower@example.com", "upper@example.com"}) {
		t.Errorf("customers = %v, want two", emails)
	}
	var ledger int64
	s.DB().Model(&models.StripeEvent{}).Count(&ledger)
	if ledger != 3 {
		t.Errorf("ledger rows = %d, want 3 (evt_x and evt_X differ)", ledger)
	}
	var inv models.Invoice
	if err := s.DB().Where("stripe_id = ?", "in_big").Take(&inv).Error; err != nil {
		t.Fatal(err)
	}
	if *inv.AmountDue != big || *inv.AmountRemaining != big {
		t.Errorf("amount_due = %d, amount_remaining = %d, want %d", *inv.AmountDue, *inv.AmountRemaining, big)
	}
}

func TestTolerantShapes(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	// A newer API version: the subscription under parent, the customer expanded.
	o := billingtest.Invoice("in_new", "", "", "open", 1234, 0)
	o["customer"] = map[string]any{"id": "cus_exp", "object": "customer"}
	delete(o, "subscription")
	o["parent"] = map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"subscription": "sub_new"}}
	process(t, p, billingtest.Event("evt_new", "invoice.finalized", start, o), ledger.Processed)

	var inv models.Invoice
	if err := s.DB().Where("stripe_id = ?", "in_new").Take(&inv).Error; err != nil {
		t.Fatal(err)
	}
	if inv.CustomerID == nil || *inv.CustomerID != "cus_exp" || inv.SubscriptionID == nil || *inv.SubscriptionID != "sub_new" {
		t.Errorf("invoice refs = customer %v subscription %v", inv.CustomerID, inv.SubscriptionID)
	}
	// The customer did not exist yet: a stub row stands in for it.
	var c models.Customer
	if err := s.DB().Where("stripe_id = ?", "cus_exp").Take(&c).Error; err != nil {
		t.Fatalf("stub customer: %v", err)
	}
	// Checkout creates what is missing and links it.
	process(t, p, billingtest.Event("evt_cs", "checkout.session.completed", start, billingtest.CheckoutSession("cs_1", "cus_cs", "sub_cs", "")), ledger.Processed)
	var sub models.Subscription
	if err := s.DB().Where("stripe_id = ?", "sub_cs").Take(&sub).Error; err != nil || sub.CustomerID == nil || *sub.CustomerID != "cus_cs" {
		t.Errorf("checkout subscription = %+v, %v", sub, err)
	}
}

func TestMarkDeadThenProcess(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	ctx := context.Background()
	raw := billingtest.Event("evt_parked", "charge.succeeded", start, billingtest.Charge("ch_1", "cus_1", "pi_1", "", "succeeded", 4200))
	if err := s.MarkDead(ctx, models.DeadEvent{ID: "evt_parked", Type: "charge.succeeded", Payload: raw, Attempts: 8, LastError: "db down"}); err != nil {
		t.Fatal(err)
	}
	process(t, p, raw, ledger.Processed)
	process(t, p, raw, ledger.Duplicate)
	var ev models.StripeEvent
	if err := s.DB().Where("id = ?", "evt_parked").Take(&ev).Error; err != nil {
		t.Fatal(err)
	}
	if ev.Status != models.EventProcessed || ev.ProcessedAt == nil || ev.Attempts != 9 {
		t.Errorf("ledger = status %q attempts %d processed_at %v", ev.Status, ev.Attempts, ev.ProcessedAt)
	}
	var hist int64
	s.DB().Model(&models.StatusChange{}).Where("object_id = ?", "ch_1").Count(&hist)
	if hist != 1 {
		t.Errorf("history rows = %d, want 1", hist)
	}
	// Parked again by a confused retry: the processed row stays processed.
	if err := s.MarkDead(ctx, models.DeadEvent{ID: "evt_parked", Type: "charge.succeeded", Payload: raw, Attempts: 9, LastError: "late"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Where("id = ?", "evt_parked").Take(&ev).Error; err != nil || ev.Status != models.EventProcessed {
		t.Errorf("after MarkDead: status %q, %v", ev.Status, err)
	}
	process(t, p, raw, ledger.Duplicate)
}
