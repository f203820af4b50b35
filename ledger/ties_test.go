package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/reconcile"
)

// runs is how many times each tie is delivered, with new random event
// ids each time, the two delivery orders in turn, one at a time and in
// one batch.
const runs = 50

// deliverTie processes events (created in one second, in Stripe's order)
// forward on even runs and backward on odd ones, one at a time in runs 0
// and 1 of every 4 and in one batch in runs 2 and 3 (folded in memory, or
// event by event when the tie needs Stripe's object).
func deliverTie(t *testing.T, p *ledger.Processor, run int, events [][]byte) {
	t.Helper()
	order := slices.Clone(events)
	if run%2 == 1 {
		slices.Reverse(order)
	}
	if run%4 < 2 {
		for _, raw := range order {
			process(t, p, raw, ledger.Processed)
		}
		return
	}
	outcomes, err := p.ProcessBatch(context.Background(), order)
	if err != nil {
		t.Fatalf("run %d: ProcessBatch: %v", run, err)
	}
	for i, o := range outcomes {
		if o.Err != nil || o.Result != ledger.Processed {
			t.Fatalf("run %d: event %d of the batch: %+v, want processed", run, i, o)
		}
	}
}

// TestSameSecondTiesSettleOnGrowingFields: within one second the fields
// that only grow order the events, whatever their ids and delivery order,
// and never go down.
func TestSameSecondTiesSettleOnGrowingFields(t *testing.T) {
	t.Parallel()
	charge := func(id string, refunded int64) map[string]any {
		o := billingtest.Charge(id, "cus_1", "pi_1", "", "succeeded", 2000)
		o["amount_refunded"], o["refunded"] = refunded, refunded == 2000
		return o
	}
	invoice := func(id string, paid int64, attempts int) map[string]any {
		o := billingtest.Invoice(id, "cus_1", "sub_1", "open", 2000, paid)
		o["attempt_count"] = attempts
		return o
	}
	intent := func(id string, received int64) map[string]any {
		o := billingtest.PaymentIntent(id, "cus_1", "", "requires_capture", 2000)
		o["amount_received"] = received
		return o
	}
	type step struct {
		typ string
		obj func(id string) map[string]any
	}
	tests := []struct {
		name  string
		model any
		steps []step // in Stripe's order, all in one second
		check func(row map[string]any) string
	}{
		{"partial refunds: 500 then 1000", &models.Payment{}, []step{
			{"charge.refunded", func(id string) map[string]any { return charge(id, 500) }},
			{"charge.refunded", func(id string) map[string]any { return charge(id, 1000) }},
		}, func(r map[string]any) string { return fmt.Sprintf("refunded=%v", deref(r["amount_refunded"])) }},
		{"three partial refunds", &models.Payment{}, []step{
			{"charge.refunded", func(id string) map[string]any { return charge(id, 500) }},
			{"charge.refunded", func(id string) map[string]any { return charge(id, 1000) }},
			{"charge.refunded", func(id string) map[string]any { return charge(id, 2000) }},
		}, func(r map[string]any) string { return fmt.Sprintf("refunded=%v", deref(r["amount_refunded"])) }},
		{"invoice payment attempts", &models.Invoice{}, []step{
			{"invoice.payment_failed", func(id string) map[string]any { return invoice(id, 0, 1) }},
			{"invoice.payment_failed", func(id string) map[string]any { return invoice(id, 0, 2) }},
		}, func(r map[string]any) string { return fmt.Sprintf("attempts=%v", deref(r["attempt_count"])) }},
		{"invoice partial payments", &models.Invoice{}, []step{
			{"invoice.updated", func(id string) map[string]any { return invoice(id, 500, 1) }},
			{"invoice.updated", func(id string) map[string]any { return invoice(id, 1200, 1) }},
		}, func(r map[string]any) string {
			return fmt.Sprintf("paid=%v remaining=%v", deref(r["amount_paid"]), deref(r["amount_remaining"]))
		}},
		{"payment intent received", &models.Payment{}, []step{
			{"payment_intent.amount_capturable_updated", func(id string) map[string]any { return intent(id, 0) }},
			{"payment_intent.partially_funded", func(id string) map[string]any { return intent(id, 700) }},
		}, func(r map[string]any) string { return fmt.Sprintf("received=%v", deref(r["amount_received"])) }},
	}
	want := map[string]string{
		"partial refunds: 500 then 1000": "refunded=1000",
		"three partial refunds":          "refunded=2000",
		"invoice payment attempts":       "attempts=2",
		"invoice partial payments":       "paid=1200 remaining=800",
		"payment intent received":        "received=700",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, p := setup(t)
			for run := range runs {
				id := fmt.Sprintf("obj_%03d", run)
				var events [][]byte
				for _, st := range tt.steps {
					events = append(events, billingtest.Event(billingtest.NewEventID(), st.typ, start, st.obj(id)))
				}
				deliverTie(t, p, run, events)
				row := map[string]any{}
				if err := s.DB().Model(tt.model).Where("stripe_id = ?", id).Take(&row).Error; err != nil {
					t.Fatal(err)
				}
				if got := tt.check(row); got != want[tt.name] {
					t.Errorf("run %d (%s order): %s, want %s", run, []string{"Stripe's", "reverse"}[run%2], got, want[tt.name])
				}
			}
		})
	}
}

// TestRefundedAmountFollowsANewerEvent: a newer charge event carries
// Stripe's figure, lower included (a refund failed meanwhile), and the
// rest of its changes.
func TestRefundedAmountFollowsANewerEvent(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	o := billingtest.Charge("ch_down", "cus_1", "pi_1", "", "succeeded", 2000)
	o["amount_refunded"] = 1000
	process(t, p, billingtest.Event(billingtest.NewEventID(), "charge.refunded", start, o), ledger.Processed)
	o["amount_refunded"], o["failure_message"] = 500, "later"
	process(t, p, billingtest.Event(billingtest.NewEventID(), "charge.updated", start.Add(time.Second), o), ledger.Processed)
	var pay models.Payment
	if err := s.DB().Where("stripe_id = ?", "ch_down").Take(&pay).Error; err != nil {
		t.Fatal(err)
	}
	if pay.AmountRefunded == nil || *pay.AmountRefunded != 500 || pay.FailureMessage == nil || *pay.FailureMessage != "later" {
		t.Errorf("charge = refunded %v, failure message %v; want the later event's 500 and message", deref(pay.AmountRefunded), deref(pay.FailureMessage))
	}
}

// TestFailedRefundBringsTheChargeBack: a refund that fails after
// succeeding lowers its charge's amount_refunded at Stripe, and no charge
// event says so: the worker asks Stripe for the charge once, before the
// transaction, and keeps Stripe's figure, whatever the delivery order;
// the charge's older events, late, do not raise it again.
func TestFailedRefundBringsTheChargeBack(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	s, p := fakeStripeProcessor(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if path.Dir(r.URL.Path) != "/v1/charges" {
			t.Errorf("fake Stripe asked for %s", r.URL.Path)
		}
		o := billingtest.Charge(path.Base(r.URL.Path), "cus_1", "pi_1", "", "succeeded", 2000)
		o["amount_refunded"], o["refunded"] = 300, false // a second refund of 300 stands
		_ = json.NewEncoder(w).Encode(o)
	})
	for run := range 8 {
		charge, refund := fmt.Sprintf("ch_fail_%d", run), fmt.Sprintf("re_fail_%d", run)
		o := billingtest.Charge(charge, "cus_1", "pi_1", "", "succeeded", 2000)
		succeeded := billingtest.Event(billingtest.NewEventID(), "charge.succeeded", start, o)
		o["amount_refunded"] = 800
		refunded := billingtest.Event(billingtest.NewEventID(), "charge.refunded", start.Add(time.Second), o)
		re := billingtest.Refund(refund, charge, "pi_1", "succeeded", 500)
		created := billingtest.Event(billingtest.NewEventID(), "refund.created", start.Add(time.Second), re)
		re["status"], re["failure_reason"] = "failed", "expired_or_canceled_card"
		failed := billingtest.Event(billingtest.NewEventID(), "refund.failed", start.Add(time.Hour), re)
		before := calls.Load()
		deliverTie(t, p, run, [][]byte{succeeded, refunded, created, failed})
		if n := calls.Load() - before; n != 1 {
			t.Errorf("run %d: %d calls to Stripe, want 1", run, n)
		}
		var pay models.Payment
		if err := s.DB().Where("stripe_id = ?", charge).Take(&pay).Error; err != nil {
			t.Fatal(err)
		}
		if pay.AmountRefunded == nil || *pay.AmountRefunded != 300 || pay.Refunded == nil || *pay.Refunded {
			t.Errorf("run %d (%s order): charge refunded %v (fully %v), want Stripe's 300, not fully", run,
				[]string{"Stripe's", "reverse"}[run%2], deref(pay.AmountRefunded), deref(pay.Refunded))
		}
		if got := status(t, s, &models.Refund{}, refund); got != "failed" {
			t.Errorf("run %d: refund %s, want failed", run, got)
		}
	}
}

// subscriptionTie is two customer.subscription.updated of one
// subscription in one second that nothing in their payloads orders.
func subscriptionTie(id string) (events [][]byte, ids []string) {
	for _, status := range []string{"past_due", "unpaid"} {
		evID := billingtest.NewEventID()
		ids = append(ids, evID)
		events = append(events, billingtest.Event(evID, "customer.subscription.updated", start, billingtest.Subscription(id, "cus_1", status, start)))
	}
	return events, ids
}

// TestSubscriptionTieWithoutAKey: the larger event id wins, in both
// delivery orders: arbitrary, but deterministic.
func TestSubscriptionTieWithoutAKey(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	for run := range runs {
		id := fmt.Sprintf("sub_nokey_%03d", run)
		events, ids := subscriptionTie(id)
		deliverTie(t, p, run, events)
		want := "past_due"
		if ids[1] > ids[0] {
			want = "unpaid"
		}
		var sub models.Subscription
		if err := s.DB().Where("stripe_id = ?", id).Take(&sub).Error; err != nil {
			t.Fatal(err)
		}
		if *sub.Status != want || *sub.LastEventID != max(ids[0], ids[1]) {
			t.Errorf("run %d: status %s, last event %s; want %s from %s", run, *sub.Status, *sub.LastEventID, want, max(ids[0], ids[1]))
		}
	}
}

// TestSubscriptionTieFetchedFromStripe: with an ObjectFetcher, the tie is
// settled by the subscription as Stripe (stripe-mock) has it, in both
// orders; the history keeps what each event reported.
func TestSubscriptionTieFetchedFromStripe(t *testing.T) {
	t.Parallel()
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: testenv.StripeMock(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.Store(t)
	p := ledger.NewProcessor(s, nil, ledger.WithObjectFetcher(fetcher))
	for run := range 10 {
		id := fmt.Sprintf("sub_fetch_%03d", run)
		raw, err := fetcher.FetchObject(context.Background(), billing.ObjectRef{Type: "subscription", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		var stripeSub struct {
			Status           string
			Customer         string
			CurrentPeriodEnd int64 `json:"current_period_end"`
			CanceledAt       int64 `json:"canceled_at"`
		}
		if err := json.Unmarshal(raw, &stripeSub); err != nil {
			t.Fatal(err)
		}
		if stripeSub.Status == "past_due" || stripeSub.Status == "unpaid" || stripeSub.Status == "" {
			t.Fatalf("stripe-mock's subscription is %q: the test cannot tell it from the events", stripeSub.Status)
		}
		events, ids := subscriptionTie(id)
		deliverTie(t, p, run, events)
		var sub models.Subscription
		if err := s.DB().Where("stripe_id = ?", id).Take(&sub).Error; err != nil {
			t.Fatal(err)
		}
		if *sub.Status != stripeSub.Status || *sub.CustomerID != stripeSub.Customer ||
			sub.CurrentPeriodEnd.Unix() != stripeSub.CurrentPeriodEnd || sub.CanceledAt.Unix() != stripeSub.CanceledAt ||
			*sub.LastEventID != max(ids[0], ids[1]) {
			t.Errorf("run %d: row = status %s customer %s period end %v canceled %v last event %s; want Stripe's %+v and %s",
				run, *sub.Status, *sub.CustomerID, sub.CurrentPeriodEnd, sub.CanceledAt, *sub.LastEventID, stripeSub, max(ids[0], ids[1]))
		}
		var history []string
		s.DB().Model(&models.StatusChange{}).Where("object_id = ?", id).Order("status").Pluck("status", &history)
		if fmt.Sprint(history) != "[past_due unpaid]" {
			t.Errorf("run %d: history = %v, want what the events reported", run, history)
		}
	}
}

// fakeStripeProcessor is a Processor on a fresh store whose fetches
// from Stripe stripe answers.
func fakeStripeProcessor(t *testing.T, stripe http.HandlerFunc) (*models.Store, *ledger.Processor) {
	t.Helper()
	srv := httptest.NewServer(stripe)
	t.Cleanup(srv.Close)
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.Store(t)
	return s, ledger.NewProcessor(s, nil, ledger.WithObjectFetcher(fetcher))
}

// stripeDownProcessor is a Processor whose ties are fetched from a Stripe
// that answers 503.
func stripeDownProcessor(t *testing.T) (*models.Store, *ledger.Processor) {
	t.Helper()
	return fakeStripeProcessor(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
}

// TestTieFetchFailsTransiently: Stripe down during the fetch fails the
// event with a transient error and leaves nothing of it behind.
func TestTieFetchFailsTransiently(t *testing.T) {
	t.Parallel()
	s, p := stripeDownProcessor(t)
	events, ids := subscriptionTie("sub_down")
	process(t, p, events[0], ledger.Processed)
	_, err := p.Process(context.Background(), events[1])
	if err == nil || failure.Of(err) != failure.Transient {
		t.Fatalf("Process during a Stripe outage = %v (class %v), want a transient error", err, failure.Of(err))
	}
	var n int64
	s.DB().Model(&models.StripeEvent{}).Where("id = ?", ids[1]).Count(&n)
	var sub models.Subscription
	if err := s.DB().Where("stripe_id = ?", "sub_down").Take(&sub).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 || *sub.Status != "past_due" || *sub.LastEventID != ids[0] {
		t.Errorf("after the failed fetch: ledger rows %d, status %s, last event %s; want the first event's row only", n, *sub.Status, *sub.LastEventID)
	}
}

// TestTieFetchFailureFailsItsEventAlone: in a batch, the event whose tie
// cannot be fetched (Stripe down) fails alone, transiently; the batch's
// other events commit.
func TestTieFetchFailureFailsItsEventAlone(t *testing.T) {
	t.Parallel()
	s, p := stripeDownProcessor(t)
	events, _ := subscriptionTie("sub_down_batch")
	process(t, p, events[0], ledger.Processed)
	other := billingtest.Event(billingtest.NewEventID(), "customer.created", start, billingtest.Customer("cus_beside_tie", "a@example.com"))
	outcomes, err := p.ProcessBatch(context.Background(), [][]byte{events[1], other})
	if err != nil {
		t.Fatalf("ProcessBatch = %v, want the tie's event to fail alone", err)
	}
	if o := outcomes[0]; o.Err == nil || failure.Of(o.Err) != failure.Transient {
		t.Errorf("the tie's event: %+v, want a transient error", o)
	}
	if o := outcomes[1]; o.Err != nil || o.Result != ledger.Processed {
		t.Errorf("the other event: %+v, want processed", o)
	}
	var n int64
	s.DB().Model(&models.Customer{}).Where("stripe_id = ?", "cus_beside_tie").Count(&n)
	if n != 1 {
		t.Errorf("%d rows of the other event's customer, want 1", n)
	}
}

// deref is what a column read into a map holds: GORM reads a nullable
// model field as a pointer.
func deref(v any) any {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

// TestTieFetchHoldsNoLocks: Stripe is asked for a tie's object with no
// transaction open: while the fake Stripe answers, another connection
// locks the subscription's row without waiting (NOWAIT), one event at a
// time and in a batch, in both orders; and the tie is still settled by
// Stripe's object.
func TestTieFetchHoldsNoLocks(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	var calls atomic.Int32
	locked := make(chan error, 100)
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id := path.Base(r.URL.Path)
		locked <- s.DB().Transaction(func(tx *gorm.DB) error {
			var ids []string
			return tx.Raw("SELECT stripe_id FROM subscriptions WHERE stripe_id = ? FOR UPDATE NOWAIT", id).Scan(&ids).Error
		})
		_ = json.NewEncoder(w).Encode(billingtest.Subscription(id, "cus_1", "active", start))
	}))
	defer stripe.Close()
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: stripe.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := ledger.NewProcessor(s, nil, ledger.WithObjectFetcher(fetcher))
	for run := range 8 {
		id := fmt.Sprintf("sub_nolock_%03d", run)
		before := calls.Load()
		events, _ := subscriptionTie(id)
		deliverTie(t, p, run, events)
		if calls.Load() == before {
			t.Fatalf("run %d: Stripe not asked: the test shows nothing", run)
		}
		var sub models.Subscription
		if err := s.DB().Where("stripe_id = ?", id).Take(&sub).Error; err != nil {
			t.Fatal(err)
		}
		if *sub.Status != "active" {
			t.Errorf("run %d: status %s, want Stripe's active", run, *sub.Status)
		}
	}
	close(locked)
	for err := range locked {
		if err != nil {
			t.Errorf("the row was locked while Stripe was asked: %v", err)
		}
	}
}

// tieTypes are an event type of each stored object type, for ties.
var tieTypes = map[string]string{
	"customer": "customer.updated", "subscription": "customer.subscription.updated", "invoice": "invoice.updated",
	"invoice_payment": "invoice_payment.paid", "payment_intent": "payment_intent.processing", "charge": "charge.updated",
	"refund": "refund.updated", "dispute": "charge.dispute.updated", "checkout.session": "checkout.session.completed",
	"credit_note": "credit_note.updated", "payment_method": "payment_method.updated", "product": "product.updated",
	"price": "price.updated", "subscription_schedule": "subscription_schedule.updated",
}

// tieFields are, for an object type without a currency, the payload key
// a tie's payloads differ in and its column.
var tieFields = map[string][2]string{"payment_method": {"customer", "customer_id"}, "product": {"name", "name"},
	"subscription_schedule": {"end_behavior", "end_behavior"}}

// tieField is the payload key and column of typ that a tie varies.
func tieField(typ string) (key, column string) {
	if f, ok := tieFields[typ]; ok {
		return f[0], f[1]
	}
	return "currency", "currency"
}

// countingStripe is a fake Stripe that serves every stored object type
// from v's fixtures, with the id asked for and currency "gbp", and counts
// the calls by object type.
func countingStripe(t *testing.T, v string) (*ledger.Processor, *models.Store, func(typ string) int32) {
	t.Helper()
	paths := map[string]string{"customers": "customer", "subscriptions": "subscription", "invoices": "invoice",
		"invoice_payments": "invoice_payment", "payment_intents": "payment_intent", "charges": "charge", "refunds": "refund",
		"disputes": "dispute", "sessions": "checkout.session", "credit_notes": "credit_note", "payment_methods": "payment_method",
		"products": "product", "prices": "price", "subscription_schedules": "subscription_schedule"}
	calls := map[string]*atomic.Int32{}
	for _, typ := range paths {
		calls[typ] = &atomic.Int32{}
	}
	s, p := fakeStripeProcessor(t, func(w http.ResponseWriter, r *http.Request) {
		typ, ok := paths[path.Base(path.Dir(r.URL.Path))]
		if !ok {
			t.Errorf("fake Stripe asked for %s", r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		calls[typ].Add(1)
		o := stripefixture.Object(v, typ)
		key, _ := tieField(typ)
		o["id"], o[key] = path.Base(r.URL.Path), "gbp"
		_ = json.NewEncoder(w).Encode(o)
	})
	return p, s, func(typ string) int32 { return calls[typ].Load() }
}

// TestTieOnEveryStoredType: every object type the worker stores settles a
// tie: one whose payloads differ in a stored field (currency) by one call
// to Stripe, whose object wins; one whose payloads agree on every stored
// field by event id, with no call. One event at a time and in a batch,
// in both orders; none fails, none is parked.
func TestTieOnEveryStoredType(t *testing.T) {
	t.Parallel()
	const v = "2026-08-26.dahlia" // the newest: InvoicePayments exist
	if got := billing.ObjectTypes(); len(got) != len(tieTypes) {
		t.Fatalf("stored types %v, the test knows %d: add the new one to tieTypes", got, len(tieTypes))
	}
	for _, typ := range billing.ObjectTypes() {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			p, s, calls := countingStripe(t, v)
			model := map[string]any{"customer": &models.Customer{}, "subscription": &models.Subscription{}, "invoice": &models.Invoice{},
				"invoice_payment": &models.InvoicePayment{}, "payment_intent": &models.Payment{}, "charge": &models.Payment{},
				"refund": &models.Refund{}, "dispute": &models.Dispute{}, "checkout.session": &models.CheckoutSession{},
				"credit_note": &models.CreditNote{}, "payment_method": &models.PaymentMethod{}, "product": &models.Product{},
				"price": &models.Price{}, "subscription_schedule": &models.SubscriptionSchedule{}}[typ]
			key, column := tieField(typ)
			tie := func(id string, currencies ...string) ([][]byte, []string) {
				var events [][]byte
				var ids []string
				for _, c := range currencies {
					o := stripefixture.Object(v, typ)
					o["id"], o[key] = id, c
					evID := billingtest.NewEventID()
					events, ids = append(events, versionEvent(t, v, evID, tieTypes[typ], start, false, "", o)), append(ids, evID)
				}
				return events, ids
			}
			row := func(id string) (currency, lastEvent string) {
				r := map[string]any{}
				if err := s.DB().Model(model).Where("stripe_id = ?", id).Take(&r).Error; err != nil {
					t.Fatal(err)
				}
				return fmt.Sprint(deref(r[column])), fmt.Sprint(deref(r["last_event_id"]))
			}
			for _, c := range []struct {
				name       string
				currencies []string // of the two events
				calls      int32
				want       string // the row's currency
			}{
				{"differ", []string{"usd", "eur"}, 1, "gbp"}, // Stripe's object wins
				{"agree", []string{"usd", "usd"}, 0, "usd"},
			} {
				if typ == "subscription" && c.name == "agree" {
					continue // its items are not in its row: a tie on a payload with items is always fetched
				}
				for run := range 4 {
					id := fmt.Sprintf("obj_%s_%d", c.name, run)
					before := calls(typ)
					events, ids := tie(id, c.currencies...)
					deliverTie(t, p, run, events)
					if n := calls(typ) - before; n != c.calls {
						t.Errorf("run %d: payloads that %s: %d calls to Stripe, want %d", run, c.name, n, c.calls)
					}
					if cur, last := row(id); cur != c.want || last != max(ids[0], ids[1]) {
						t.Errorf("run %d: payloads that %s: currency %s, last event %s; want %s and %s", run, c.name, cur, last, c.want, max(ids[0], ids[1]))
					}
				}
			}
		})
	}
}

// TestRenewalDayNeedsNoCalls: renewal day, every subscription's events
// in one second (the invoice's finalized and updated, paid and
// payment_succeeded carrying the same invoice), delivered shuffled in
// batches: the order, growth and agreement rules settle them all, with
// no call to Stripe.
func TestRenewalDayNeedsNoCalls(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	s, p := fakeStripeProcessor(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusNotFound)
	})
	const renewals = 40
	var events [][]byte
	for i := range renewals {
		cus, sub, in, pi, ch := fmt.Sprintf("cus_r%d", i), fmt.Sprintf("sub_r%d", i), fmt.Sprintf("in_r%d", i), fmt.Sprintf("pi_r%d", i), fmt.Sprintf("ch_r%d", i)
		for _, e := range []struct {
			typ string
			obj map[string]any
		}{
			{"invoice.created", billingtest.Invoice(in, cus, sub, "draft", 2000, 0)},
			{"invoice.finalized", billingtest.Invoice(in, cus, sub, "open", 2000, 0)},
			{"invoice.updated", billingtest.Invoice(in, cus, sub, "open", 2000, 0)},
			{"payment_intent.succeeded", billingtest.PaymentIntent(pi, cus, in, "succeeded", 2000)},
			{"charge.succeeded", billingtest.Charge(ch, cus, pi, in, "succeeded", 2000)},
			{"invoice.paid", billingtest.Invoice(in, cus, sub, "paid", 2000, 2000)},
			{"invoice.payment_succeeded", billingtest.Invoice(in, cus, sub, "paid", 2000, 2000)},
			{"customer.subscription.updated", billingtest.Subscription(sub, cus, "active", start)},
		} {
			events = append(events, billingtest.Event(billingtest.NewEventID(), e.typ, start, e.obj))
		}
	}
	rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	for batch := range slices.Chunk(events, 16) {
		outcomes, err := p.ProcessBatch(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outcomes {
			if o.Err != nil || o.Result != ledger.Processed {
				t.Fatalf("outcome %+v, want processed", o)
			}
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls to Stripe for %d renewals, want none", n, renewals)
	}
	var paid int64
	s.DB().Model(&models.Invoice{}).Where("status = ? AND amount_paid = ?", "paid", 2000).Count(&paid)
	if paid != renewals {
		t.Errorf("%d invoices paid, want %d", paid, renewals)
	}
}
