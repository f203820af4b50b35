package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

// versionEvent is an event of API version v carrying object, with the
// envelope facts livemode and account ("" for none).
func versionEvent(t *testing.T, v, id, typ string, created time.Time, livemode bool, account string, object map[string]any) []byte {
	t.Helper()
	e := map[string]any{"id": id, "object": "event", "type": typ, "api_version": v, "created": created.Unix(),
		"livemode": livemode, "data": map[string]any{"object": object}}
	if account != "" {
		e["account"] = account
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAbsentFieldsAreLeftAlone: a field a payload does not carry leaves the
// stored value as it is, and NULL on a new row; a field carried as null is
// written as NULL.
func TestAbsentFieldsAreLeftAlone(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	db := s.DB()
	t0, t1, t2 := start, start.Add(time.Second), start.Add(2*time.Second)
	full := billingtest.Invoice("in_1", "cus_1", "sub_1", "open", 1000, 0)
	full["number"], full["attempt_count"] = "N-1", 1
	process(t, p, billingtest.Event("evt_full", "invoice.finalized", t0, full), ledger.Processed)

	// A later payload without the amounts and the number: they stay.
	sparse := map[string]any{"id": "in_1", "object": "invoice", "status": "open", "amount_paid": 0}
	process(t, p, billingtest.Event("evt_sparse", "invoice.updated", t1, sparse), ledger.Processed)
	var inv models.Invoice
	if err := db.Where("stripe_id = ?", "in_1").Take(&inv).Error; err != nil {
		t.Fatal(err)
	}
	if inv.AmountDue == nil || *inv.AmountDue != 1000 || inv.Number == nil || *inv.Number != "N-1" ||
		inv.AttemptCount == nil || *inv.AttemptCount != 1 || inv.Total == nil || *inv.Total != 1000 || *inv.LastEventID != "evt_sparse" {
		t.Errorf("after a sparse payload: amount_due %v number %v attempt_count %v total %v last event %v, want 1000, N-1, 1, 1000, evt_sparse",
			value(inv.AmountDue), value(inv.Number), value(inv.AttemptCount), value(inv.Total), value(inv.LastEventID))
	}
	// null is a value: written as NULL.
	nulled := map[string]any{"id": "in_1", "object": "invoice", "status": "open", "number": nil}
	process(t, p, billingtest.Event("evt_null", "invoice.updated", t2, nulled), ledger.Processed)
	if err := db.Where("stripe_id = ?", "in_1").Take(&inv).Error; err != nil {
		t.Fatal(err)
	}
	if inv.Number != nil || inv.AmountDue == nil {
		t.Errorf("after number: null: number %v amount_due %v, want NULL and 1000", value(inv.Number), value(inv.AmountDue))
	}

	// A new row from a payload without amounts: NULL, not 0.
	process(t, p, billingtest.Event("evt_new", "charge.pending", t0,
		map[string]any{"id": "ch_new", "object": "charge", "status": "pending", "amount": 700}), ledger.Processed)
	var ch models.Payment
	if err := db.Where("stripe_id = ?", "ch_new").Take(&ch).Error; err != nil {
		t.Fatal(err)
	}
	if ch.Amount == nil || *ch.Amount != 700 || ch.AmountRefunded != nil || ch.AmountCaptured != nil || ch.Captured != nil || ch.Paid != nil {
		t.Errorf("new charge: amount %v refunded %v captured %v/%v paid %v, want 700 and NULLs",
			value(ch.Amount), value(ch.AmountRefunded), value(ch.AmountCaptured), value(ch.Captured), value(ch.Paid))
	}

	// A subscription item's quantity absent from a later payload stays.
	sub := billingtest.Subscription("sub_q", "cus_1", "active", t0)
	sub["items"].(map[string]any)["data"].([]any)[0].(map[string]any)["quantity"] = 3
	process(t, p, billingtest.Event("evt_sub1", "customer.subscription.created", t0, sub), ledger.Processed)
	sub = billingtest.Subscription("sub_q", "cus_1", "past_due", t0)
	delete(sub["items"].(map[string]any)["data"].([]any)[0].(map[string]any), "quantity")
	process(t, p, billingtest.Event("evt_sub2", "customer.subscription.updated", t1, sub), ledger.Processed)
	var item models.SubscriptionItem
	if err := db.Where("subscription_id = ?", "sub_q").Take(&item).Error; err != nil {
		t.Fatal(err)
	}
	if item.Quantity == nil || *item.Quantity != 3 || item.PriceID == nil {
		t.Errorf("item after a payload without quantity: quantity %v price %v, want 3 and a price", value(item.Quantity), value(item.PriceID))
	}
}

// TestSchemaFailures: a field a handler cannot do without, missing or of
// another type, fails the event with class schema, naming the field and
// the API version, and writes nothing.
func TestSchemaFailures(t *testing.T) {
	t.Parallel()
	const v = "2025-05-28.basil"
	fixture := func(object string, edit func(o map[string]any)) map[string]any {
		o := stripefixture.Object(v, object)
		edit(o)
		return o
	}
	tests := []struct {
		name, typ string
		object    map[string]any
		want      string
	}{
		{"subscription without status", "customer.subscription.updated",
			fixture("subscription", func(o map[string]any) { delete(o, "status") }), "subscription.status is missing"},
		{"subscription item without id", "customer.subscription.updated", fixture("subscription", func(o map[string]any) {
			delete(o["items"].(map[string]any)["data"].([]any)[0].(map[string]any), "id")
		}), "subscription.items.data[0].id is missing"},
		{"item quantity a string", "customer.subscription.updated", fixture("subscription", func(o map[string]any) {
			o["items"].(map[string]any)["data"].([]any)[0].(map[string]any)["quantity"] = "2"
		}), "subscription.items.data[0].quantity is a JSON string, want a number"},
		{"invoice payment without invoice", "invoice_payment.paid",
			fixture("invoice_payment", func(o map[string]any) { o["invoice"] = nil }), "invoice_payment.invoice is missing"},
		{"invoice payments item status a number", "invoice.paid", fixture("invoice", func(o map[string]any) {
			ip := stripefixture.Object(v, "invoice_payment")
			ip["status"] = 3
			o["payments"] = map[string]any{"object": "list", "data": []any{ip}, "has_more": false}
		}), "invoice.payments.data[0].status is a JSON number, want a string"},
		{"subscription status empty", "customer.subscription.updated",
			fixture("subscription", func(o map[string]any) { o["status"] = "" }), "subscription.status is missing"},
		{"refund status null", "refund.updated",
			fixture("refund", func(o map[string]any) { o["status"] = nil }), "refund.status is missing"},
		{"charge amount_refunded a string", "charge.refunded",
			fixture("charge", func(o map[string]any) { o["amount_refunded"] = "500" }), "charge.amount_refunded is a JSON string, want a number"},
		{"customer reference a number", "invoice.paid",
			fixture("invoice", func(o map[string]any) { o["customer"] = 42 }), "invoice.customer is a JSON value 42, want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, p := setup(t)
			_, err := p.Process(context.Background(), versionEvent(t, v, "evt_bad", tt.typ, start, false, "", tt.object))
			if failure.Of(err) != failure.Schema || !strings.Contains(err.Error(), tt.want) ||
				!strings.Contains(err.Error(), "API version "+v) {
				t.Fatalf("err = %v (class %q), want class schema saying %q and the API version", err, failure.Of(err), tt.want)
			}
			for table, rows := range snapshot(t, s) {
				if len(rows) != 0 {
					t.Errorf("%s has rows after a schema failure: %v", table, rows)
				}
			}
		})
	}
}

// TestPreview: invoice.upcoming carries an invoice without an id: no row,
// a ledger row marked ignored, the result Preview. An invoice.paid without
// an id is a schema failure.
func TestPreview(t *testing.T) {
	t.Parallel()
	for _, v := range billing.SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			s, p := setup(t)
			o := stripefixture.Object(v, "invoice")
			delete(o, "id")
			process(t, p, versionEvent(t, v, "evt_upcoming", "invoice.upcoming", start, true, "", o), ledger.Preview)
			process(t, p, versionEvent(t, v, "evt_upcoming", "invoice.upcoming", start, true, "", o), ledger.Duplicate)
			snap := snapshot(t, s)
			if got := snap["stripe_events"]; len(got) != 1 || !strings.Contains(got[0], `"Status":"ignored"`) {
				t.Errorf("ledger = %v, want one ignored row", got)
			}
			for table, rows := range snap {
				if table != "stripe_events" && len(rows) != 0 {
					t.Errorf("%s has rows for a preview: %v", table, rows)
				}
			}
			_, err := p.Process(context.Background(), versionEvent(t, v, "evt_noid", "invoice.paid", start, true, "", o))
			if failure.Of(err) != failure.Schema || !strings.Contains(err.Error(), "invoice.id is missing") {
				t.Errorf("invoice.paid without id: %v (class %q), want a schema failure", err, failure.Of(err))
			}
			// billing reprocess passes over the preview and says so,
			// in a dry run and for real, and writes nothing.
			for _, dryRun := range []bool{true, false} {
				rep, outcomes := reprocess(t, p, models.EventFilter{}, dryRun)
				if rep.Previews != 1 || rep.Failed != 0 || !slices.Equal(outcomes, []string{"invoice.upcoming preview"}) {
					t.Errorf("reprocess (dry run %v): report %+v, outcomes %v; want the preview passed over", dryRun, rep, outcomes)
				}
			}
			if after := snapshot(t, s); fmt.Sprint(after) != fmt.Sprint(snap) {
				t.Errorf("reprocessing the preview changed rows:\nbefore %v\nafter  %v", snap, after)
			}
		})
	}
}

// TestEnvelopeFacts: livemode and the Connect account come from the event
// for every row, a Refund's (which has no livemode) and a stub's included.
func TestEnvelopeFacts(t *testing.T) {
	t.Parallel()
	s, p := setup(t)
	const v = "2026-08-26.dahlia"
	refund := stripefixture.Object(v, "refund")
	refund["id"], refund["charge"], refund["status"] = "re_live", "ch_live", "succeeded"
	process(t, p, versionEvent(t, v, "evt_re", "refund.created", start, true, "acct_1", refund), ledger.Processed)
	sub := stripefixture.Object(v, "subscription")
	sub["id"], sub["customer"] = "sub_conn", "cus_conn"
	process(t, p, versionEvent(t, v, "evt_sub", "customer.subscription.created", start, true, "acct_1", sub), ledger.Processed)
	dispute := stripefixture.Object(v, "dispute")
	dispute["id"], dispute["livemode"] = "dp_test", true // the event says test mode
	process(t, p, versionEvent(t, v, "evt_dp", "charge.dispute.created", start, false, "", dispute), ledger.Processed)

	type envelope struct {
		Livemode bool
		Account  *string
	}
	for _, c := range []struct {
		table, id string
		want      envelope
	}{
		{"refunds", "re_live", envelope{true, ptr("acct_1")}},
		{"subscriptions", "sub_conn", envelope{true, ptr("acct_1")}},
		{"subscription_items", stripefixture.Object(v, "subscription")["items"].(map[string]any)["data"].([]any)[0].(map[string]any)["id"].(string), envelope{true, ptr("acct_1")}},
		{"customers", "cus_conn", envelope{true, ptr("acct_1")}}, // a stub
		{"disputes", "dp_test", envelope{false, nil}},
	} {
		var got envelope
		if err := s.DB().Table(c.table).Select("livemode, account").Where("stripe_id = ?", c.id).Take(&got).Error; err != nil {
			t.Fatalf("%s %s: %v", c.table, c.id, err)
		}
		if got.Livemode != c.want.Livemode || value(got.Account) != value(c.want.Account) {
			t.Errorf("%s %s: livemode %v account %v, want %v %v", c.table, c.id, got.Livemode, value(got.Account), c.want.Livemode, value(c.want.Account))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestChargeRefundedWritesItsRefunds: a charge.refunded whose charge
// carries its refunds (every supported version defines the list) writes
// a refund row for each, by the refunds' own order: a later refund event
// still applies, an older one does not. A charge without the list writes
// none.
func TestChargeRefundedWritesItsRefunds(t *testing.T) {
	t.Parallel()
	for _, v := range billing.SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			if !stripefixture.SpecDefines(v, "charge", "refunds") {
				t.Fatalf("%s: the spec has no charge.refunds: the test assumes every supported version has it", v)
			}
			s, p := setup(t)
			refund := func(id, status string, amount int64) map[string]any {
				r := stripefixture.Object(v, "refund")
				r["id"], r["status"], r["amount"], r["currency"] = id, status, amount, "usd"
				delete(r, "charge") // an item of the charge's own list may leave it out
				return r
			}
			charge := stripefixture.Object(v, "charge")
			charge["id"], charge["amount_refunded"], charge["refunded"] = "ch_refunds", 700, false
			charge["refunds"] = map[string]any{"object": "list", "has_more": false, "url": "/v1/charges/ch_refunds/refunds",
				"data": []any{refund("re_one", "succeeded", 500), refund("re_two", "pending", 200)}}
			older := refund("re_two", "requires_action", 200)
			older["charge"] = "ch_refunds"
			later := refund("re_one", "failed", 500)
			later["charge"] = "ch_refunds"
			process(t, p, versionEvent(t, v, billingtest.NewEventID(), "charge.refunded", start, true, "", charge), ledger.Processed)
			process(t, p, versionEvent(t, v, billingtest.NewEventID(), "charge.refund.updated", start.Add(-time.Minute), true, "", older), ledger.Processed)
			process(t, p, versionEvent(t, v, billingtest.NewEventID(), "refund.updated", start.Add(time.Minute), true, "", later), ledger.Processed)

			without := stripefixture.Object(v, "charge")
			delete(without, "refunds")
			without["id"] = "ch_without"
			process(t, p, versionEvent(t, v, billingtest.NewEventID(), "charge.refunded", start, true, "", without), ledger.Processed)

			var rows []models.Refund
			if err := s.DB().Order("stripe_id").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				got = append(got, fmt.Sprintf("%s %s %v %v", r.StripeID, value(r.Status), value(r.Amount), value(r.ChargeID)))
			}
			if want := []string{"re_one failed 500 ch_refunds", "re_two pending 200 ch_refunds"}; !slices.Equal(got, want) {
				t.Errorf("refunds = %q, want %q", got, want)
			}
		})
	}
}
