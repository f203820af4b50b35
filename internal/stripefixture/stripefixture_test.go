package stripefixture

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const (
	v20231016 = "2023-10-16"
	acacia    = "2024-09-30.acacia"
	basil     = "2025-05-28.basil"
	clover    = "2025-09-30.clover"
	dahlia    = "2026-08-26.dahlia"
)

var (
	allVersions = []string{v20231016, acacia, basil, clover, dahlia}
	beforeBasil = []string{v20231016, acacia}
	fromBasil   = []string{basil, clover, dahlia}
)

func TestVersions(t *testing.T) {
	t.Parallel()
	if got := Versions(); !slices.Equal(got, allVersions) {
		t.Fatalf("Versions() = %v, want %v", got, allVersions)
	}
	// The stripe-mock each version came from; v0.183.0 is also the one
	// internal/testenv runs.
	stripeMock := map[string]string{
		v20231016: "v0.183.0",
		acacia:    "v0.190.0",
		basil:     "v0.195.0",
		clover:    "v0.197.0",
		dahlia:    "v0.203.0",
	}
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			spec := loadSpec(v)
			if spec.APIVersion != v {
				t.Errorf("spec info.version = %q, stored as %q", spec.APIVersion, v)
			}
			if got := StripeMock(v); got != stripeMock[v] {
				t.Errorf("StripeMock = %q, want %q", got, stripeMock[v])
			}
		})
	}
}

func TestObject(t *testing.T) {
	t.Parallel()
	objects := []string{
		"customer", "subscription", "subscription_item", "invoice", "line_item",
		"invoice_payment", "payment_intent", "charge", "refund", "dispute",
		"checkout.session", "credit_note", "event",
		"payment_method", "product", "price", "subscription_schedule",
	}
	for _, v := range allVersions {
		for _, name := range objects {
			t.Run(v+"/"+name, func(t *testing.T) {
				t.Parallel()
				// InvoicePayment is a basil object.
				wantHas := name != "invoice_payment" || slices.Contains(fromBasil, v)
				if Has(v, name) != wantHas {
					t.Fatalf("Has = %v, want %v", !wantHas, wantHas)
				}
				if !wantHas {
					return
				}
				if !json.Valid(Raw(v, name)) {
					t.Fatal("Raw is not valid JSON")
				}
				obj := Object(v, name)
				if obj["object"] != name {
					t.Errorf("object = %v, want %s", obj["object"], name)
				}
				// Object is a deep copy: changing one leaves the next intact.
				obj["object"] = "changed"
				if lines, ok := obj["lines"].(map[string]any); ok {
					lines["data"] = nil
				}
				again := Object(v, name)
				if again["object"] != name {
					t.Errorf("a change to one Object shows in the next: object = %v", again["object"])
				}
				if lines, ok := again["lines"].(map[string]any); ok && lines["data"] == nil {
					t.Error("a nested change to one Object shows in the next")
				}
			})
		}
	}
	if Has(dahlia, "no_such_object") || Has("2099-01-01", "invoice") {
		t.Error("Has is true for a fixture that does not exist")
	}
}

func TestObjectPanicsWithoutFixture(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("Object of a missing fixture did not panic")
		}
	}()
	Object(v20231016, "invoice_payment")
}

func TestSpecDefinesPanicsOnUnrecordedPath(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("SpecDefines of an unrecorded path did not panic; a misspelt path would pass as absent")
		}
	}()
	SpecDefines(dahlia, "invoice", "paymnet_intent")
}

// TestShape documents, as assertions on Stripe's own spec and fixtures, the
// shape differences between API versions that the billing handlers must
// handle. spec lists the versions whose OpenAPI spec defines the path;
// fixture lists those whose fixture carries it (the key, even if null;
// for "x[]" every item of a non-empty array x). They differ where a
// fixture omits an optional or includable field, leaves an array empty, or
// keeps a key its spec dropped.
func TestShape(t *testing.T) {
	t.Parallel()
	var none []string
	tests := []struct {
		object, path  string
		spec, fixture []string
	}{
		// Invoice ↔ payment links: from basil an invoice's payments are
		// InvoicePayment objects (invoice_payment.paid, invoice.payments);
		// the fixtures leave the includable payments list out.
		{"invoice", "payment_intent", beforeBasil, beforeBasil},
		{"invoice", "charge", beforeBasil, beforeBasil},
		{"invoice", "payments.data[].payment.payment_intent", fromBasil, none},
		{"invoice", "payments.data[].payment.charge", fromBasil, none},
		{"invoice", "payments.data[].amount_paid", fromBasil, none},
		{"invoice_payment", "invoice", fromBasil, fromBasil},
		{"invoice_payment", "amount_paid", fromBasil, fromBasil},
		{"invoice_payment", "amount_requested", fromBasil, fromBasil},
		{"invoice_payment", "status", fromBasil, fromBasil},
		{"invoice_payment", "status_transitions.paid_at", fromBasil, fromBasil},
		{"invoice_payment", "payment.type", fromBasil, fromBasil},
		// The fixture's payment has only its type.
		{"invoice_payment", "payment.payment_intent", fromBasil, none},
		{"invoice_payment", "payment.charge", fromBasil, none},
		{"charge", "invoice", beforeBasil, beforeBasil},
		{"payment_intent", "invoice", beforeBasil, beforeBasil},
		{"charge", "payment_intent", allVersions, allVersions},
		{"payment_intent", "latest_charge", allVersions, allVersions},
		{"refund", "charge", allVersions, allVersions},
		{"refund", "payment_intent", allVersions, allVersions},
		{"dispute", "charge", allVersions, allVersions},
		{"dispute", "payment_intent", allVersions, allVersions},
		{"checkout.session", "subscription", allVersions, allVersions},
		{"checkout.session", "invoice", allVersions, allVersions},
		{"checkout.session", "payment_intent", allVersions, allVersions},

		// An invoice's subscription moves under parent. The basil and later
		// fixtures keep a top-level "subscription": null their spec no
		// longer defines: reading it gives NULL, never an error.
		{"invoice", "subscription", beforeBasil, allVersions},
		{"invoice", "parent.type", fromBasil, fromBasil},
		{"invoice", "parent.subscription_details.subscription", fromBasil, fromBasil},
		{"invoice", "subscription_details.metadata", beforeBasil, beforeBasil},
		{"invoice", "parent.subscription_details.metadata", fromBasil, fromBasil},
		{"invoice", "subscription_details.subscription", none, none},

		// Paid: from basil only status says it.
		{"invoice", "paid", beforeBasil, beforeBasil},
		{"invoice", "paid_out_of_band", beforeBasil, beforeBasil},
		{"invoice", "status", allVersions, allVersions},
		{"invoice", "status_transitions.paid_at", allVersions, allVersions},
		{"invoice", "status_transitions.voided_at", allVersions, allVersions},
		{"invoice", "status_transitions.marked_uncollectible_at", allVersions, allVersions},
		{"invoice", "amount_due", allVersions, allVersions},
		{"invoice", "amount_paid", allVersions, allVersions},
		{"invoice", "amount_remaining", allVersions, allVersions},
		{"invoice", "subtotal", allVersions, allVersions},
		{"invoice", "total", allVersions, allVersions},
		{"invoice", "attempt_count", allVersions, allVersions},
		{"invoice", "amount_overpaid", fromBasil, fromBasil},
		{"invoice", "amount_paid_off_stripe", []string{dahlia}, []string{dahlia}},

		// Tax and discounts: tax/total_tax_amounts become total_taxes;
		// the fixtures' tax and discount arrays are empty or null.
		{"invoice", "tax", beforeBasil, beforeBasil},
		{"invoice", "total_tax_amounts[].amount", beforeBasil, none},
		{"invoice", "total_taxes[].amount", fromBasil, none},
		{"invoice", "total_discount_amounts[].amount", allVersions, none},
		{"invoice", "discount", beforeBasil, beforeBasil},
		{"invoice", "discounts", allVersions, allVersions},

		// Periods: the invoice's period_start/end stay (the period items
		// were added in); the billed period is on the lines.
		{"invoice", "period_start", allVersions, allVersions},
		{"invoice", "period_end", allVersions, allVersions},
		{"invoice", "lines.data[].period.start", allVersions, allVersions},
		{"invoice", "lines.data[].period.end", allVersions, allVersions},

		// Invoice line items: price, proration, the subscription item and
		// tax move under parent/pricing/taxes.
		{"line_item", "amount", allVersions, allVersions},
		{"line_item", "quantity", allVersions, allVersions},
		{"line_item", "period.start", allVersions, allVersions},
		{"line_item", "period.end", allVersions, allVersions},
		{"line_item", "subscription", allVersions, allVersions},
		{"line_item", "amount_excluding_tax", beforeBasil, beforeBasil},
		{"line_item", "subtotal", []string{dahlia}, []string{dahlia}},
		{"line_item", "price.id", beforeBasil, beforeBasil},
		{"line_item", "pricing.price_details.price", fromBasil, none},
		{"line_item", "proration", beforeBasil, beforeBasil},
		{"line_item", "parent.subscription_item_details.proration", fromBasil, fromBasil},
		{"line_item", "subscription_item", beforeBasil, none},
		{"line_item", "parent.type", fromBasil, fromBasil},
		{"line_item", "parent.subscription_item_details.subscription", fromBasil, fromBasil},
		{"line_item", "parent.subscription_item_details.subscription_item", fromBasil, fromBasil},
		{"line_item", "invoice_item", beforeBasil, beforeBasil},
		{"line_item", "parent.invoice_item_details.invoice_item", fromBasil, fromBasil},
		{"line_item", "tax_amounts[].amount", beforeBasil, none},
		{"line_item", "taxes[].amount", fromBasil, none},

		// Subscriptions: the current period moves onto each item.
		{"subscription", "current_period_start", beforeBasil, beforeBasil},
		{"subscription", "current_period_end", beforeBasil, beforeBasil},
		{"subscription", "items.data[].current_period_start", fromBasil, fromBasil},
		{"subscription", "items.data[].current_period_end", fromBasil, fromBasil},
		{"subscription", "items.data[].id", allVersions, allVersions},
		{"subscription", "items.data[].price.id", allVersions, allVersions},
		{"subscription", "items.data[].quantity", allVersions, allVersions},
		{"subscription", "status", allVersions, allVersions},
		{"subscription", "discount", beforeBasil, beforeBasil},
		{"subscription", "discounts", []string{acacia, basil, clover, dahlia}, []string{acacia, basil, clover, dahlia}},
		{"subscription_item", "current_period_start", fromBasil, fromBasil},
		{"subscription_item", "current_period_end", fromBasil, fromBasil},
		{"subscription_item", "price.id", allVersions, allVersions},
		{"subscription_item", "quantity", allVersions, allVersions},

		// Charges and payments: amounts and card details never move.
		{"charge", "amount", allVersions, allVersions},
		{"charge", "amount_captured", allVersions, allVersions},
		{"charge", "amount_refunded", allVersions, allVersions},
		{"charge", "refunded", allVersions, allVersions},
		{"charge", "status", allVersions, allVersions},
		{"charge", "payment_method_details.card.brand", allVersions, allVersions},
		{"charge", "payment_method_details.card.last4", allVersions, allVersions},
		{"charge", "payment_method_details.card.exp_month", allVersions, allVersions},
		{"charge", "payment_method_details.card.exp_year", allVersions, allVersions},
		{"payment_intent", "amount", allVersions, allVersions},
		{"payment_intent", "amount_received", allVersions, allVersions},
		{"payment_intent", "status", allVersions, allVersions},
		{"payment_intent", "payment_details", []string{dahlia}, none},

		// A refund never has livemode: take it from the event.
		{"refund", "livemode", none, none},
		{"refund", "amount", allVersions, allVersions},
		{"refund", "status", allVersions, allVersions},
		{"dispute", "amount", allVersions, allVersions},
		{"dispute", "status", allVersions, allVersions},
		{"dispute", "livemode", allVersions, allVersions},

		// Credit notes: refund becomes refunds[], tax_amounts total_taxes.
		{"credit_note", "refund", beforeBasil, beforeBasil},
		{"credit_note", "refunds[].refund", fromBasil, fromBasil},
		{"credit_note", "refunds[].amount_refunded", fromBasil, fromBasil},
		{"credit_note", "tax_amounts[].amount", beforeBasil, beforeBasil},
		{"credit_note", "total_taxes[].amount", fromBasil, none},
		{"credit_note", "total", allVersions, allVersions},

		// Payment methods, products, prices, schedules: no field the
		// handlers read moves; the fingerprint is there to be left out.
		{"payment_method", "customer", allVersions, allVersions},
		{"payment_method", "card.brand", allVersions, allVersions},
		{"payment_method", "card.last4", allVersions, allVersions},
		{"payment_method", "card.exp_month", allVersions, allVersions},
		{"payment_method", "card.exp_year", allVersions, allVersions},
		{"payment_method", "card.wallet.type", allVersions, fromBasil},
		{"payment_method", "card.fingerprint", allVersions, allVersions},
		{"customer", "invoice_settings.default_payment_method", allVersions, allVersions},
		{"product", "name", allVersions, allVersions},
		{"product", "active", allVersions, allVersions},
		{"price", "product", allVersions, allVersions},
		{"price", "unit_amount", allVersions, allVersions},
		{"price", "lookup_key", allVersions, allVersions},
		{"price", "recurring.interval", allVersions, allVersions},
		{"price", "recurring.interval_count", allVersions, allVersions},
		{"subscription", "pause_collection.behavior", allVersions, fromBasil},
		{"subscription", "pause_collection.resumes_at", allVersions, fromBasil},
		{"subscription_schedule", "current_phase.start_date", allVersions, fromBasil},
		{"subscription_schedule", "current_phase.end_date", allVersions, fromBasil},
		{"subscription_schedule", "subscription", allVersions, allVersions},
		{"subscription_schedule", "released_subscription", allVersions, allVersions},

		// The event envelope: account only on Connect events (the fixture
		// is not one); context is new in basil.
		{"event", "livemode", allVersions, allVersions},
		{"event", "api_version", allVersions, allVersions},
		{"event", "data.object", allVersions, allVersions},
		{"event", "data.previous_attributes", allVersions, none},
		{"event", "account", allVersions, none},
		{"event", "context", fromBasil, none},
	}
	for _, tt := range tests {
		t.Run(tt.object+"."+tt.path, func(t *testing.T) {
			t.Parallel()
			for _, v := range allVersions {
				wantSpec, wantFixture := slices.Contains(tt.spec, v), slices.Contains(tt.fixture, v)
				if !Has(v, tt.object) {
					if wantSpec || wantFixture {
						t.Errorf("%s: no %s fixture", v, tt.object)
					}
					continue
				}
				if got := SpecDefines(v, tt.object, tt.path); got != wantSpec {
					t.Errorf("%s: spec defines it = %v, want %v", v, got, wantSpec)
				}
				if got := carries(Object(v, tt.object), strings.Split(tt.path, ".")); got != wantFixture {
					t.Errorf("%s: fixture carries it = %v, want %v", v, got, wantFixture)
				}
			}
		})
	}
}

// Stripe's subscription fixtures have a single item: a test of several
// items adds its own.
func TestSubscriptionFixtureHasOneItem(t *testing.T) {
	t.Parallel()
	for _, v := range allVersions {
		items := Object(v, "subscription")["items"].(map[string]any)["data"].([]any)
		if len(items) != 1 {
			t.Errorf("%s: %d subscription items, want 1", v, len(items))
		}
	}
}

// carries reports whether v has the field path (the key, even if null);
// "x[]" requires every item of a non-empty array x to have the rest.
func carries(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	name, isArray := strings.CutSuffix(path[0], "[]")
	field, ok := m[name]
	if !ok {
		return false
	}
	if !isArray {
		return carries(field, path[1:])
	}
	items, ok := field.([]any)
	if !ok || len(items) == 0 {
		return false
	}
	for _, item := range items {
		if !carries(item, path[1:]) {
			return false
		}
	}
	return true
}
