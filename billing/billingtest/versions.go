package billingtest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/simulate/stripeevent"
)

// VersionedLifecycle is one customer's lifecycle in one Stripe API version:
// the events Stripe sends, in its order, each built from a copy of
// Stripe's own fixture of the object in that version
// (stripefixture.Object), and the records they must leave.
//
// The customer checks out (client_reference_id and metadata name our
// user) and subscribes with two items (two prices, quantities 2 and 1),
// the first invoice (a discount, an inclusive tax) is drafted, finalized,
// fails once and is paid by a card (through a wallet for even seeds), the
// charge is refunded twice in part, a dispute is lost, the subscription is
// canceled, a credit note is issued and updated, another issued and
// voided, the customer updated, and an abandoned payment-mode checkout
// expires. Every object carries metadata. Seeds divisible by 5 pay in
// eur, the others in usd. From 2025-03-31.basil the invoice is
// tied to its payment by an invoice_payment.paid event (and, for even
// seeds, by the paid invoice's payments list too); before, by the
// invoice's payment_intent and charge and the charge's and intent's
// invoice. Which fields a version carries is its OpenAPI spec's say
// (stripefixture.SpecDefines), not this file's.
type VersionedLifecycle struct {
	Version  string
	IDs      VersionIDs
	Livemode bool   // odd seeds are live mode
	Account  string // a Connect account for seeds divisible by 3, else ""
	Currency string
	Events   [][]byte
	Want     Records
	// NextPaymentAttempt is the open invoice's after its failed attempt
	// (invoice.payment_failed); the paid invoice has none.
	NextPaymentAttempt time.Time
}

// VersionIDs are the object ids of a VersionedLifecycle.
type VersionIDs struct {
	Customer, Subscription, Invoice, PaymentIntent, FailedCharge, Charge, Dispute, InvoicePayment string
	Checkout, ExpiredCheckout, User                                                               string // User: our user's id, the checkout's client_reference_id
	Items, Prices, Lines, Refunds, CreditNotes                                                    [2]string
}

// Amounts of a VersionedLifecycle, in cents (or euro cents).
const (
	VersionedUnitA, VersionedUnitB = 1500, 800                                          // the prices' unit amounts
	VersionedQuantityA             = 2                                                  // item B's quantity is 1
	VersionedSubtotal              = VersionedQuantityA*VersionedUnitA + VersionedUnitB // 3800, the lines
	VersionedDiscount              = 380                                                // a 10% coupon
	VersionedTotal                 = VersionedSubtotal - VersionedDiscount              // 3420, charged
	VersionedTax                   = 311                                                // 10% VAT included in the total
	VersionedRefund1               = 500
	VersionedRefund2               = 700
	VersionedCredit                = 250 // the credit note that stays issued
	VersionedVoidedCredit          = 100 // the one voided
	VersionedDisputed              = VersionedTotal - VersionedRefund1 - VersionedRefund2
)

// VersionLifecycle builds the lifecycle of seed in API version version.
// Object ids depend on the seed only, so that one seed gives the same
// records in every version; use distinct seeds to put several lifecycles
// in one database. Event ids are random (evt_ and 24 characters), as
// Stripe's are: they do not sort in stream order.
func VersionLifecycle(version string, seed int) VersionedLifecycle {
	b := newVersionBuilder(version, seed)
	return VersionedLifecycle{Version: version, IDs: b.id, Livemode: b.livemode, Account: b.account, Currency: b.currency,
		Events: b.events(), Want: b.want(), NextPaymentAttempt: b.retryAt()}
}

type versionBuilder struct {
	version  string
	seed     int
	id       VersionIDs
	livemode bool
	account  string
	currency string
	t0       time.Time
	period   [2]time.Time // the items' current period: the invoice's billed period
	evRand   *rand.Rand
}

func newVersionBuilder(version string, seed int) *versionBuilder {
	ids := rand.New(rand.NewPCG(uint64(seed), 0x1d5))
	h := fnv.New64a()
	h.Write([]byte(version))
	b := &versionBuilder{
		version:  version,
		seed:     seed,
		livemode: seed%2 == 1,
		currency: "usd",
		t0:       time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(seed) * time.Hour),
		evRand:   rand.New(rand.NewPCG(uint64(seed), h.Sum64())),
	}
	s := randomID(ids, 14)
	b.id = VersionIDs{
		Customer: "cus_" + s, Subscription: "sub_" + s, Invoice: "in_" + s, PaymentIntent: "pi_" + s,
		FailedCharge: "ch_" + s + "f", Charge: "ch_" + s, Dispute: "dp_" + s, InvoicePayment: "inpay_" + s,
		Items:       [2]string{"si_" + s + "a", "si_" + s + "b"},
		Prices:      [2]string{"price_" + s + "a", "price_" + s + "b"},
		Lines:       [2]string{"il_" + s + "a", "il_" + s + "b"},
		Refunds:     [2]string{"re_" + s + "1", "re_" + s + "2"},
		CreditNotes: [2]string{"cn_" + s + "1", "cn_" + s + "2"},
		Checkout:    "cs_" + s, ExpiredCheckout: "cs_" + s + "x", User: "user_" + s,
	}
	if seed%5 == 0 {
		b.currency = "eur"
	}
	if seed%3 == 0 {
		b.account = "acct_" + randomID(ids, 16)
	}
	b.period = [2]time.Time{b.at(1), b.at(1).AddDate(0, 1, 0)}
	return b
}

func randomID(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = stripeevent.IDAlphabet[r.IntN(len(stripeevent.IDAlphabet))]
	}
	return string(b)
}

// at is the lifecycle's time sec seconds after it starts.
func (b *versionBuilder) at(sec int) time.Time { return b.t0.Add(time.Duration(sec) * time.Second) }

// defines reports whether the version's spec has field of object.
func (b *versionBuilder) defines(object, field string) bool {
	return stripefixture.SpecDefines(b.version, object, field)
}

// fixture is a fresh copy of Stripe's fixture of object in the version,
// with the lifecycle's id, created time and (where the object has one)
// livemode.
func (b *versionBuilder) fixture(object, id string, created time.Time) map[string]any {
	o := stripefixture.Object(b.version, object)
	o["id"], o["created"] = id, created.Unix()
	if _, ok := o["livemode"]; ok {
		o["livemode"] = b.livemode
	}
	return o
}

func (b *versionBuilder) customer(email string) map[string]any {
	o := b.fixture("customer", b.id.Customer, b.at(0))
	o["email"], o["name"], o["currency"], o["balance"] = email, "Customer "+b.id.Customer, b.currency, 0
	o["metadata"] = b.metadata("customer")
	return o
}

func (b *versionBuilder) subscription(status string, canceledAt *time.Time) map[string]any {
	o := b.fixture("subscription", b.id.Subscription, b.at(1))
	o["customer"], o["status"], o["currency"] = b.id.Customer, status, b.currency
	o["cancel_at_period_end"], o["cancel_at"], o["trial_start"], o["trial_end"] = false, nil, nil, nil
	o["pause_collection"] = nil // the basil and later fixtures pause it
	o["canceled_at"], o["ended_at"] = unixOrNil(canceledAt), unixOrNil(canceledAt)
	o["latest_invoice"] = b.id.Invoice
	o["metadata"] = b.metadata("subscription")
	if b.defines("subscription", "current_period_start") {
		o["current_period_start"], o["current_period_end"] = b.period[0].Unix(), b.period[1].Unix()
	}
	units := [2]int64{VersionedUnitA, VersionedUnitB}
	quantities := [2]int64{VersionedQuantityA, 1}
	var items []any
	for i := range 2 {
		it := b.fixture("subscription_item", b.id.Items[i], b.at(1))
		it["subscription"], it["quantity"] = b.id.Subscription, quantities[i]
		price := it["price"].(map[string]any)
		price["id"], price["unit_amount"], price["unit_amount_decimal"], price["livemode"] = b.id.Prices[i], units[i], fmt.Sprint(units[i]), b.livemode
		if b.defines("subscription", "items.data[].current_period_start") {
			it["current_period_start"], it["current_period_end"] = b.period[0].Unix(), b.period[1].Unix()
		}
		items = append(items, it)
	}
	o["items"] = map[string]any{"object": "list", "data": items, "has_more": false, "total_count": 2,
		"url": "/v1/subscription_items?subscription=" + b.id.Subscription}
	return o
}

// invoice is the invoice in status; linked: its payment intent and charge
// are known (from finalization on); paidWith adds the payments list.
func (b *versionBuilder) invoice(status string, attempts int, charge string, paidWith bool) map[string]any {
	o := b.fixture("invoice", b.id.Invoice, b.at(1))
	paid := status == "paid"
	amountPaid := int64(0)
	if paid {
		amountPaid = VersionedTotal
	}
	o["customer"], o["status"], o["currency"], o["billing_reason"] = b.id.Customer, status, b.currency, "subscription_create"
	o["amount_due"], o["amount_paid"], o["amount_remaining"] = VersionedTotal, amountPaid, VersionedTotal-amountPaid
	o["subtotal"], o["total"], o["attempt_count"], o["attempted"] = VersionedSubtotal, VersionedTotal, attempts, attempts > 0
	o["metadata"] = b.metadata("invoice")
	b.taxAndDiscount(o)
	o["next_payment_attempt"] = nil
	switch {
	case status == "draft":
		o["next_payment_attempt"] = b.at(2).Unix() // at finalization
	case status == "open" && attempts > 0:
		o["next_payment_attempt"] = b.retryAt().Unix()
	}
	o["due_date"], o["period_start"], o["period_end"] = nil, b.at(1).Unix(), b.at(1).Unix()
	o["number"], o["hosted_invoice_url"] = nil, nil
	if status != "draft" {
		o["number"], o["hosted_invoice_url"] = "INV-"+b.id.Invoice, "https://invoice.stripe.com/i/"+b.id.Invoice
	}
	transitions := o["status_transitions"].(map[string]any)
	transitions["paid_at"] = nil
	if paid {
		transitions["paid_at"] = b.at(11).Unix()
	}
	if b.defines("invoice", "subscription") {
		o["subscription"] = b.id.Subscription
	} else {
		o["parent"] = map[string]any{"type": "subscription_details", "quote_details": nil,
			"subscription_details": map[string]any{"metadata": map[string]any{}, "subscription": b.id.Subscription}}
	}
	if b.defines("invoice", "paid") {
		o["paid"] = paid
	}
	if b.defines("invoice", "payment_intent") {
		o["payment_intent"], o["charge"] = nil, nil
		if status != "draft" {
			o["payment_intent"] = b.id.PaymentIntent
		}
		if charge != "" {
			o["charge"] = charge
		}
	}
	lines := o["lines"].(map[string]any)
	template := lines["data"].([]any)[0].(map[string]any)
	var data []any
	for i, amount := range []int64{VersionedQuantityA * VersionedUnitA, VersionedUnitB} {
		l := deepCopy(template)
		l["id"], l["invoice"], l["amount"], l["livemode"] = b.id.Lines[i], b.id.Invoice, amount, b.livemode
		l["quantity"] = []int64{VersionedQuantityA, 1}[i]
		l["period"] = map[string]any{"start": b.period[0].Unix(), "end": b.period[1].Unix()}
		data = append(data, l)
	}
	lines["data"], lines["url"] = data, "/v1/invoices/"+b.id.Invoice+"/lines"
	if paidWith && b.defines("invoice", "payments.data[].payment.payment_intent") {
		o["payments"] = map[string]any{"object": "list", "data": []any{b.invoicePayment()}, "has_more": false,
			"url": "/v1/invoice_payments?invoice=" + b.id.Invoice}
	}
	return o
}

// retryAt is when Stripe retries the invoice after its failed attempt.
func (b *versionBuilder) retryAt() time.Time { return b.at(3).AddDate(0, 0, 3) }

// taxAndDiscount gives invoice o its coupon and its inclusive tax, in the
// fields o's version has: tax and total_tax_amounts before
// 2025-03-31.basil, total_taxes from it on.
func (b *versionBuilder) taxAndDiscount(o map[string]any) {
	o["total_discount_amounts"] = []any{map[string]any{"amount": VersionedDiscount, "discount": "di_" + b.id.Invoice}}
	if _, ok := o["total_excluding_tax"]; ok {
		o["total_excluding_tax"] = VersionedTotal - VersionedTax
	}
	taxRate := "txr_" + b.id.Invoice
	if b.defines("invoice", "tax") {
		o["tax"] = VersionedTax
		o["total_tax_amounts"] = []any{map[string]any{"amount": VersionedTax, "inclusive": true, "tax_rate": taxRate,
			"taxability_reason": "standard_rated", "taxable_amount": VersionedTotal - VersionedTax}}
		return
	}
	o["total_taxes"] = []any{map[string]any{"amount": VersionedTax, "tax_behavior": "inclusive", "type": "tax_rate_details",
		"tax_rate_details": map[string]any{"tax_rate": taxRate}, "taxability_reason": "standard_rated",
		"taxable_amount": VersionedTotal - VersionedTax}}
}

// metadata is what our application sets on an object of kind: our user's
// id, and the kind to tell them apart.
func (b *versionBuilder) metadata(kind string) map[string]any {
	return map[string]any{"user_id": b.id.User, "set_on": kind}
}

// metadataJSON is metadata(kind) as the metadata columns keep it.
func (b *versionBuilder) metadataJSON(kind string) *string {
	return ptr(`{"set_on":"` + kind + `","user_id":"` + b.id.User + `"}`)
}

func (b *versionBuilder) invoicePayment() map[string]any {
	o := b.fixture("invoice_payment", b.id.InvoicePayment, b.at(2))
	o["invoice"], o["currency"], o["status"], o["is_default"] = b.id.Invoice, b.currency, "paid", true
	o["amount_paid"], o["amount_requested"] = VersionedTotal, VersionedTotal
	o["payment"] = map[string]any{"type": "payment_intent", "payment_intent": b.id.PaymentIntent}
	o["status_transitions"] = map[string]any{"paid_at": b.at(11).Unix(), "canceled_at": nil}
	return o
}

func (b *versionBuilder) paymentIntent(status, latestCharge string, declined bool) map[string]any {
	o := b.fixture("payment_intent", b.id.PaymentIntent, b.at(2))
	received := int64(0)
	if status == "succeeded" {
		received = VersionedTotal
	}
	o["customer"], o["status"], o["currency"], o["amount"], o["amount_received"] = b.id.Customer, status, b.currency, VersionedTotal, received
	o["amount_capturable"], o["canceled_at"], o["latest_charge"], o["last_payment_error"] = 0, nil, latestCharge, nil
	if declined {
		o["last_payment_error"] = map[string]any{"type": "card_error", "code": "card_declined", "message": "Your card was declined."}
	}
	o["metadata"] = b.metadata("payment_intent")
	if b.defines("payment_intent", "invoice") {
		o["invoice"] = b.id.Invoice
	}
	return o
}

func (b *versionBuilder) charge(id, status string, created time.Time, refunded int64) map[string]any {
	o := b.fixture("charge", id, created)
	ok := status == "succeeded"
	captured := int64(0)
	if ok {
		captured = VersionedTotal
	}
	o["customer"], o["payment_intent"], o["status"], o["currency"] = b.id.Customer, b.id.PaymentIntent, status, b.currency
	o["amount"], o["amount_captured"], o["amount_refunded"] = VersionedTotal, captured, refunded
	o["captured"], o["paid"], o["refunded"] = ok, ok, refunded == VersionedTotal
	o["failure_code"], o["failure_message"] = nil, nil
	if !ok {
		o["failure_code"], o["failure_message"] = "card_declined", "Your card was declined."
	}
	o["metadata"] = b.metadata("charge")
	// Stripe's card details, fingerprint and all; the records keep the
	// summary only.
	card := o["payment_method_details"].(map[string]any)["card"].(map[string]any)
	card["brand"], card["last4"], card["exp_month"], card["exp_year"], card["wallet"] = "mastercard", b.last4(), 4, 2031, nil
	if b.seed%2 == 0 {
		card["wallet"] = map[string]any{"type": "apple_pay", "apple_pay": map[string]any{}, "dynamic_last4": "9876"}
	}
	if b.defines("charge", "invoice") {
		o["invoice"] = b.id.Invoice
	}
	return o
}

func (b *versionBuilder) refund(i int, amount int64, created time.Time) map[string]any {
	o := b.fixture("refund", b.id.Refunds[i], created)
	o["charge"], o["payment_intent"], o["status"], o["currency"] = b.id.Charge, b.id.PaymentIntent, "succeeded", b.currency
	o["amount"], o["reason"] = amount, "requested_by_customer"
	o["metadata"] = b.metadata("refund")
	return o
}

func (b *versionBuilder) dispute(status string) map[string]any {
	o := b.fixture("dispute", b.id.Dispute, b.at(30))
	o["charge"], o["payment_intent"], o["status"], o["currency"] = b.id.Charge, b.id.PaymentIntent, status, b.currency
	o["amount"], o["reason"], o["is_charge_refundable"] = VersionedDisputed, "fraudulent", false
	o["metadata"] = b.metadata("dispute")
	o["evidence_details"].(map[string]any)["due_by"] = b.at(30).AddDate(0, 0, 7).Unix()
	return o
}

// last4 is the card's last four digits.
func (b *versionBuilder) last4() string { return fmt.Sprintf("%04d", 4000+b.seed%1000) }

// checkout is the subscription-mode session that created the customer
// and the subscription.
func (b *versionBuilder) checkout() map[string]any {
	o := b.fixture("checkout.session", b.id.Checkout, b.at(0))
	o["mode"], o["status"], o["payment_status"], o["client_reference_id"] = "subscription", "complete", "paid", b.id.User
	o["customer"], o["subscription"], o["invoice"], o["payment_intent"] = b.id.Customer, b.id.Subscription, b.id.Invoice, nil
	o["currency"], o["amount_total"], o["amount_subtotal"], o["expires_at"] = b.currency, VersionedTotal, VersionedSubtotal, b.at(0).Add(24*time.Hour).Unix()
	o["metadata"] = b.metadata("checkout.session")
	return o
}

// expiredCheckout is a payment-mode session the customer abandoned.
func (b *versionBuilder) expiredCheckout() map[string]any {
	o := b.fixture("checkout.session", b.id.ExpiredCheckout, b.at(60))
	o["mode"], o["status"], o["payment_status"], o["client_reference_id"] = "payment", "expired", "unpaid", b.id.User
	o["customer"], o["subscription"], o["invoice"], o["payment_intent"] = b.id.Customer, nil, nil, nil
	o["currency"], o["amount_total"], o["amount_subtotal"], o["expires_at"] = b.currency, 1000, 1000, b.at(60+1800).Unix()
	o["metadata"] = b.metadata("checkout.session")
	return o
}

// creditNote is the post-payment credit note i on the paid invoice:
// issued, or void from voidedAt on.
func (b *versionBuilder) creditNote(i int, amount int64, created time.Time, memo string, voidedAt *time.Time) map[string]any {
	o := b.fixture("credit_note", b.id.CreditNotes[i], created)
	o["invoice"], o["customer"], o["currency"], o["number"] = b.id.Invoice, b.id.Customer, b.currency, fmt.Sprintf("INV-%s-CN-%02d", b.id.Invoice, i+1)
	o["amount"], o["subtotal"], o["total"], o["subtotal_excluding_tax"], o["total_excluding_tax"] = amount, amount, amount, amount, amount
	o["status"], o["type"], o["reason"], o["memo"], o["voided_at"] = "issued", "post_payment", "order_change", nil, unixOrNil(voidedAt)
	if memo != "" {
		o["memo"] = memo
	}
	o["effective_at"], o["out_of_band_amount"], o["discount_amount"], o["discount_amounts"] = created.Unix(), nil, 0, []any{}
	if voidedAt != nil {
		o["status"] = "void"
	}
	for key, v := range map[string]any{"refund": nil, "refunds": []any{}, "tax_amounts": []any{}, "total_taxes": []any{},
		"pretax_credit_amounts": []any{}, "shipping_cost": nil, "post_payment_amount": amount, "pre_payment_amount": 0} {
		if _, ok := o[key]; ok {
			o[key] = v
		}
	}
	lines := o["lines"].(map[string]any)
	line := deepCopy(lines["data"].([]any)[0].(map[string]any))
	line["id"], line["amount"], line["livemode"], line["invoice_line_item"] = "cnli_"+b.id.CreditNotes[i], amount, b.livemode, b.id.Lines[0]
	lines["data"], lines["total_count"], lines["url"] = []any{line}, 1, "/v1/credit_notes/"+b.id.CreditNotes[i]+"/lines"
	o["metadata"] = b.metadata("credit_note")
	return o
}

// event wraps object in a copy of the version's event fixture.
func (b *versionBuilder) event(typ string, created time.Time, object map[string]any) []byte {
	e := stripefixture.Object(b.version, "event")
	e["id"], e["type"], e["api_version"], e["created"] = "evt_"+randomID(b.evRand, 24), typ, b.version, created.Unix()
	e["livemode"], e["pending_webhooks"] = b.livemode, 1
	e["request"] = map[string]any{"id": nil, "idempotency_key": nil}
	e["data"] = map[string]any{"object": object}
	if b.account != "" {
		e["account"] = b.account
	}
	raw, err := json.Marshal(e)
	if err != nil {
		panic(err) // only maps of JSON values
	}
	return raw
}

func (b *versionBuilder) events() [][]byte {
	canceled := b.at(50)
	ip := b.defines("invoice", "payments.data[].payment.payment_intent") // invoice payments, from basil
	var out [][]byte
	add := func(sec int, typ string, o map[string]any) { out = append(out, b.event(typ, b.at(sec), o)) }
	add(0, "customer.created", b.customer(b.id.Customer+"@example.com"))
	add(1, "checkout.session.completed", b.checkout())
	add(1, "customer.subscription.created", b.subscription("incomplete", nil))
	add(1, "invoice.created", b.invoice("draft", 0, "", false))
	add(2, "invoice.finalized", b.invoice("open", 0, "", false))
	add(3, "charge.failed", b.charge(b.id.FailedCharge, "failed", b.at(3), 0))
	add(3, "payment_intent.payment_failed", b.paymentIntent("requires_payment_method", b.id.FailedCharge, true))
	add(3, "invoice.payment_failed", b.invoice("open", 1, b.id.FailedCharge, false))
	add(10, "charge.succeeded", b.charge(b.id.Charge, "succeeded", b.at(10), 0))
	add(10, "payment_intent.succeeded", b.paymentIntent("succeeded", b.id.Charge, false))
	if ip {
		add(11, "invoice_payment.paid", b.invoicePayment())
	}
	add(11, "invoice.payment_succeeded", b.invoice("paid", 2, b.id.Charge, false))
	add(11, "invoice.paid", b.invoice("paid", 2, b.id.Charge, b.seed%2 == 0))
	add(11, "customer.subscription.updated", b.subscription("active", nil))
	add(20, "refund.created", b.refund(0, VersionedRefund1, b.at(20)))
	add(20, "charge.refunded", b.charge(b.id.Charge, "succeeded", b.at(10), VersionedRefund1))
	add(21, "refund.created", b.refund(1, VersionedRefund2, b.at(21)))
	add(21, "charge.refunded", b.charge(b.id.Charge, "succeeded", b.at(10), VersionedRefund1+VersionedRefund2))
	add(30, "charge.dispute.created", b.dispute("needs_response"))
	add(40, "charge.dispute.closed", b.dispute("lost"))
	add(50, "customer.subscription.deleted", b.subscription("canceled", &canceled))
	add(51, "customer.updated", b.customer("billing+"+b.id.Customer+"@example.com"))
	voided := b.at(62)
	add(55, "credit_note.created", b.creditNote(0, VersionedCredit, b.at(55), "", nil))
	add(56, "credit_note.created", b.creditNote(1, VersionedVoidedCredit, b.at(56), "", nil))
	add(57, "credit_note.updated", b.creditNote(0, VersionedCredit, b.at(55), "Goodwill credit", nil))
	add(62, "credit_note.voided", b.creditNote(1, VersionedVoidedCredit, b.at(56), "", &voided))
	add(60+1800, "checkout.session.expired", b.expiredCheckout())
	return out
}

// want is the records the events leave.
func (b *versionBuilder) want() Records {
	var account *string
	if b.account != "" {
		account = ptr(b.account)
	}
	id, live := b.id, b.livemode
	canceled, voided := b.at(50), b.at(62)
	var wallet *string
	if b.seed%2 == 0 {
		wallet = ptr("apple_pay")
	}
	r := Records{
		Customers: []models.Customer{{StripeID: id.Customer, Email: ptr("billing+" + id.Customer + "@example.com"),
			Name: ptr("Customer " + id.Customer), Currency: ptr(b.currency), Balance: ptr[int64](0), Metadata: b.metadataJSON("customer"),
			Livemode: live, Account: account,
			StripeCreated: ptr(b.at(0))}},
		Subscriptions: []models.Subscription{{StripeID: id.Subscription, CustomerID: ptr(id.Customer), Status: ptr("canceled"),
			Currency: ptr(b.currency), CurrentPeriodStart: ptr(b.period[0]), CurrentPeriodEnd: ptr(b.period[1]),
			CancelAtPeriodEnd: ptr(false), CanceledAt: &canceled, EndedAt: &canceled, Metadata: b.metadataJSON("subscription"),
			Livemode: live, Account: account,
			StripeCreated: ptr(b.at(1))}},
		Invoices: []models.Invoice{{StripeID: id.Invoice, CustomerID: ptr(id.Customer), SubscriptionID: ptr(id.Subscription),
			PaymentIntentID: ptr(id.PaymentIntent), ChargeID: ptr(id.Charge), Status: ptr("paid"), Number: ptr("INV-" + id.Invoice),
			Currency: ptr(b.currency), AmountDue: ptr[int64](VersionedTotal), AmountPaid: ptr[int64](VersionedTotal),
			AmountRemaining: ptr[int64](0), Subtotal: ptr[int64](VersionedSubtotal), Total: ptr[int64](VersionedTotal),
			Tax: ptr[int64](VersionedTax), TotalDiscountAmount: ptr[int64](VersionedDiscount), PaidAt: ptr(b.at(11)),
			AttemptCount: ptr(2), HostedInvoiceURL: ptr("https://invoice.stripe.com/i/" + id.Invoice),
			PeriodStart: ptr(b.at(1)), PeriodEnd: ptr(b.at(1)), BilledPeriodStart: ptr(b.period[0]), BilledPeriodEnd: ptr(b.period[1]),
			Metadata: b.metadataJSON("invoice"),
			Livemode: live, Account: account, StripeCreated: ptr(b.at(1))}},
		Payments: []models.Payment{
			{StripeID: id.Charge, Object: models.ObjectCharge, CustomerID: ptr(id.Customer), InvoiceID: ptr(id.Invoice),
				PaymentIntentID: ptr(id.PaymentIntent), Status: ptr("succeeded"), Currency: ptr(b.currency),
				Amount: ptr[int64](VersionedTotal), AmountCaptured: ptr[int64](VersionedTotal),
				AmountRefunded: ptr[int64](VersionedRefund1 + VersionedRefund2), AmountReleased: ptr[int64](0), Captured: ptr(true), Refunded: ptr(false),
				Paid: ptr(true), PaymentMethodType: ptr("card"), PaymentMethodBrand: ptr("mastercard"), PaymentMethodLast4: ptr(b.last4()),
				PaymentMethodExpMonth: ptr(4), PaymentMethodExpYear: ptr(2031), PaymentMethodWallet: wallet, Metadata: b.metadataJSON("charge"),
				Livemode: live, Account: account, StripeCreated: ptr(b.at(10))},
			{StripeID: id.FailedCharge, Object: models.ObjectCharge, CustomerID: ptr(id.Customer), InvoiceID: ptr(id.Invoice),
				PaymentIntentID: ptr(id.PaymentIntent), Status: ptr("failed"), Currency: ptr(b.currency),
				Amount: ptr[int64](VersionedTotal), AmountCaptured: ptr[int64](0), AmountRefunded: ptr[int64](0), AmountReleased: ptr[int64](0),
				Captured: ptr(false), Refunded: ptr(false), Paid: ptr(false), FailureCode: ptr("card_declined"),
				FailureMessage: ptr("Your card was declined."), PaymentMethodType: ptr("card"), PaymentMethodBrand: ptr("mastercard"),
				PaymentMethodLast4: ptr(b.last4()), PaymentMethodExpMonth: ptr(4), PaymentMethodExpYear: ptr(2031), PaymentMethodWallet: wallet,
				Metadata: b.metadataJSON("charge"), Livemode: live, Account: account, StripeCreated: ptr(b.at(3))},
			{StripeID: id.PaymentIntent, Object: models.ObjectPaymentIntent, CustomerID: ptr(id.Customer), InvoiceID: ptr(id.Invoice),
				ChargeID: ptr(id.Charge), Status: ptr("succeeded"), Currency: ptr(b.currency), Amount: ptr[int64](VersionedTotal),
				AmountReceived: ptr[int64](VersionedTotal), Captured: ptr(true), Paid: ptr(true), Metadata: b.metadataJSON("payment_intent"),
				Livemode: live, Account: account,
				StripeCreated: ptr(b.at(2))},
		},
		Refunds: []models.Refund{
			{StripeID: id.Refunds[0], ChargeID: ptr(id.Charge), PaymentIntentID: ptr(id.PaymentIntent), Status: ptr("succeeded"),
				Currency: ptr(b.currency), Amount: ptr[int64](VersionedRefund1), Reason: ptr("requested_by_customer"),
				Metadata: b.metadataJSON("refund"), Livemode: live,
				Account: account, StripeCreated: ptr(b.at(20))},
			{StripeID: id.Refunds[1], ChargeID: ptr(id.Charge), PaymentIntentID: ptr(id.PaymentIntent), Status: ptr("succeeded"),
				Currency: ptr(b.currency), Amount: ptr[int64](VersionedRefund2), Reason: ptr("requested_by_customer"),
				Metadata: b.metadataJSON("refund"), Livemode: live,
				Account: account, StripeCreated: ptr(b.at(21))},
		},
		Disputes: []models.Dispute{{StripeID: id.Dispute, ChargeID: ptr(id.Charge), PaymentIntentID: ptr(id.PaymentIntent),
			Status: ptr("lost"), Currency: ptr(b.currency), Amount: ptr[int64](VersionedDisputed),
			Reason: ptr("fraudulent"), IsChargeRefundable: ptr(false), EvidenceDueBy: ptr(b.at(30).AddDate(0, 0, 7)),
			Metadata: b.metadataJSON("dispute"),
			Livemode: live, Account: account, StripeCreated: ptr(b.at(30))}},
	}
	r.CheckoutSessions = []models.CheckoutSession{
		{StripeID: id.Checkout, Mode: ptr("subscription"), Status: ptr("complete"), PaymentStatus: ptr("paid"),
			ClientReferenceID: ptr(id.User), CustomerID: ptr(id.Customer), SubscriptionID: ptr(id.Subscription),
			InvoiceID: ptr(id.Invoice), Currency: ptr(b.currency), AmountTotal: ptr[int64](VersionedTotal),
			ExpiresAt: ptr(b.at(0).Add(24 * time.Hour)), Metadata: b.metadataJSON("checkout.session"), Livemode: live, Account: account,
			StripeCreated: ptr(b.at(0))},
		{StripeID: id.ExpiredCheckout, Mode: ptr("payment"), Status: ptr("expired"), PaymentStatus: ptr("unpaid"),
			ClientReferenceID: ptr(id.User), CustomerID: ptr(id.Customer), Currency: ptr(b.currency), AmountTotal: ptr[int64](1000),
			ExpiresAt: ptr(b.at(60 + 1800)), Metadata: b.metadataJSON("checkout.session"), Livemode: live, Account: account,
			StripeCreated: ptr(b.at(60))},
	}
	r.CreditNotes = []models.CreditNote{
		{StripeID: id.CreditNotes[0], InvoiceID: ptr(id.Invoice), CustomerID: ptr(id.Customer), Number: ptr("INV-" + id.Invoice + "-CN-01"),
			Status: ptr("issued"), Type: ptr("post_payment"), Reason: ptr("order_change"), Currency: ptr(b.currency),
			Amount: ptr[int64](VersionedCredit), Total: ptr[int64](VersionedCredit), Memo: ptr("Goodwill credit"),
			Metadata: b.metadataJSON("credit_note"), Livemode: live, Account: account, StripeCreated: ptr(b.at(55))},
		{StripeID: id.CreditNotes[1], InvoiceID: ptr(id.Invoice), CustomerID: ptr(id.Customer), Number: ptr("INV-" + id.Invoice + "-CN-02"),
			Status: ptr("void"), Type: ptr("post_payment"), Reason: ptr("order_change"), Currency: ptr(b.currency),
			Amount: ptr[int64](VersionedVoidedCredit), Total: ptr[int64](VersionedVoidedCredit), VoidedAt: &voided,
			Metadata: b.metadataJSON("credit_note"), Livemode: live, Account: account, StripeCreated: ptr(b.at(56))},
	}
	for i, q := range []int64{VersionedQuantityA, 1} {
		r.SubscriptionItems = append(r.SubscriptionItems, models.SubscriptionItem{StripeID: id.Items[i], SubscriptionID: id.Subscription,
			PriceID: ptr(id.Prices[i]), Quantity: ptr(q), CurrentPeriodStart: ptr(b.period[0]), CurrentPeriodEnd: ptr(b.period[1]),
			Livemode: live, Account: account})
	}
	if b.defines("invoice", "payments.data[].payment.payment_intent") {
		r.InvoicePayments = []models.InvoicePayment{{StripeID: id.InvoicePayment, InvoiceID: ptr(id.Invoice),
			PaymentIntentID: ptr(id.PaymentIntent), Status: ptr("paid"), Currency: ptr(b.currency),
			AmountPaid: ptr[int64](VersionedTotal), AmountRequested: ptr[int64](VersionedTotal), PaidAt: ptr(b.at(11)),
			Livemode: live, Account: account, StripeCreated: ptr(b.at(2))}}
	}
	r.sort()
	return r
}

// Records are the billing rows of Stripe objects, without what depends on
// wall time, insertion order or event ids: surrogate ids, created_at,
// updated_at and the last applied event.
type Records struct {
	Customers         []models.Customer
	Subscriptions     []models.Subscription
	SubscriptionItems []models.SubscriptionItem
	Invoices          []models.Invoice
	InvoicePayments   []models.InvoicePayment
	Payments          []models.Payment
	Refunds           []models.Refund
	Disputes          []models.Dispute
	CheckoutSessions  []models.CheckoutSession
	CreditNotes       []models.CreditNote
	// From issue 23 item 9 (TrafficLifecycle).
	PaymentMethods        []models.PaymentMethod
	Products              []models.Product
	Prices                []models.Price
	SubscriptionSchedules []models.SubscriptionSchedule
}

// Add appends o's rows to r's, in stripe_id order as ReadRecords returns
// them.
func (r Records) Add(o Records) Records {
	r.Customers = append(r.Customers, o.Customers...)
	r.Subscriptions = append(r.Subscriptions, o.Subscriptions...)
	r.SubscriptionItems = append(r.SubscriptionItems, o.SubscriptionItems...)
	r.Invoices = append(r.Invoices, o.Invoices...)
	r.InvoicePayments = append(r.InvoicePayments, o.InvoicePayments...)
	r.Payments = append(r.Payments, o.Payments...)
	r.Refunds = append(r.Refunds, o.Refunds...)
	r.Disputes = append(r.Disputes, o.Disputes...)
	r.CheckoutSessions = append(r.CheckoutSessions, o.CheckoutSessions...)
	r.CreditNotes = append(r.CreditNotes, o.CreditNotes...)
	r.PaymentMethods = append(r.PaymentMethods, o.PaymentMethods...)
	r.Products = append(r.Products, o.Products...)
	r.Prices = append(r.Prices, o.Prices...)
	r.SubscriptionSchedules = append(r.SubscriptionSchedules, o.SubscriptionSchedules...)
	r.sort()
	return r
}

// ReadRecords reads every billing table of db, in stripe_id order.
func ReadRecords(db *gorm.DB) (Records, error) {
	var r Records
	for _, dst := range []any{&r.Customers, &r.Subscriptions, &r.SubscriptionItems, &r.Invoices, &r.InvoicePayments,
		&r.Payments, &r.Refunds, &r.Disputes, &r.CheckoutSessions, &r.CreditNotes,
		&r.PaymentMethods, &r.Products, &r.Prices, &r.SubscriptionSchedules} {
		if err := db.Order("stripe_id").Find(dst).Error; err != nil {
			return Records{}, fmt.Errorf("billingtest: read records: %w", err)
		}
	}
	r.sort() // and clears what Records leaves out
	return r, nil
}

// Tables returns r as JSON rows by table name, for comparing and showing.
func (r Records) Tables() map[string][]string {
	return map[string][]string{
		models.Customer{}.TableName():             jsonRows(r.Customers),
		models.Subscription{}.TableName():         jsonRows(r.Subscriptions),
		models.SubscriptionItem{}.TableName():     jsonRows(r.SubscriptionItems),
		models.Invoice{}.TableName():              jsonRows(r.Invoices),
		models.InvoicePayment{}.TableName():       jsonRows(r.InvoicePayments),
		models.Payment{}.TableName():              jsonRows(r.Payments),
		models.Refund{}.TableName():               jsonRows(r.Refunds),
		models.Dispute{}.TableName():              jsonRows(r.Disputes),
		models.CheckoutSession{}.TableName():      jsonRows(r.CheckoutSessions),
		models.CreditNote{}.TableName():           jsonRows(r.CreditNotes),
		models.PaymentMethod{}.TableName():        jsonRows(r.PaymentMethods),
		models.Product{}.TableName():              jsonRows(r.Products),
		models.Price{}.TableName():                jsonRows(r.Prices),
		models.SubscriptionSchedule{}.TableName(): jsonRows(r.SubscriptionSchedules),
	}
}

func jsonRows[M any](rows []M) []string {
	out := make([]string, 0, len(rows))
	for _, row := range rows {
		b, err := json.Marshal(row)
		if err != nil {
			panic(err) // models are plain structs
		}
		out = append(out, string(b))
	}
	return out
}

// sort orders every table by stripe_id (byte order, as the ascii_bin
// columns sort) and clears the bookkeeping columns.
func (r *Records) sort() {
	sortBy(r.Customers, func(m *models.Customer) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.Subscriptions, func(m *models.Subscription) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.SubscriptionItems, func(m *models.SubscriptionItem) string {
		m.ID, m.CreatedAt, m.UpdatedAt = 0, time.Time{}, time.Time{}
		return m.StripeID
	})
	sortBy(r.Invoices, func(m *models.Invoice) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.InvoicePayments, func(m *models.InvoicePayment) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.Payments, func(m *models.Payment) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.Refunds, func(m *models.Refund) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.Disputes, func(m *models.Dispute) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.CheckoutSessions, func(m *models.CheckoutSession) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.CreditNotes, func(m *models.CreditNote) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.PaymentMethods, func(m *models.PaymentMethod) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.Products, func(m *models.Product) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.Prices, func(m *models.Price) string { m.ID, m.Ordering = 0, models.Ordering{}; return m.StripeID })
	sortBy(r.SubscriptionSchedules, func(m *models.SubscriptionSchedule) string {
		m.ID, m.Ordering = 0, models.Ordering{}
		return m.StripeID
	})
}

// sortBy sorts rows by stripe_id; bare clears a row's bookkeeping and
// returns its stripe_id.
func sortBy[M any](rows []M, bare func(*M) string) {
	for i := range rows {
		bare(&rows[i])
	}
	slices.SortFunc(rows, func(a, b M) int { return strings.Compare(bare(&a), bare(&b)) })
}

func ptr[T any](v T) *T { return &v }

func unixOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}

// deepCopy copies a decoded JSON object.
func deepCopy(o map[string]any) map[string]any {
	b, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}
