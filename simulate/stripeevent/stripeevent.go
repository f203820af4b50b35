// Package stripeevent builds Stripe events in the API version 2023-10-16
// shapes: single objects, an event around one, and customer lifecycles in
// the order Stripe sends their events. It is production code because the
// simulator streams these lifecycles to a running api; tests reach it
// through billing/billingtest.
package stripeevent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// APIVersion is the version the events claim, the one stripe-go v76 pins.
const APIVersion = "2023-10-16"

// Event returns the JSON of a test-mode event of type typ carrying object.
func Event(id, typ string, created time.Time, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id":               id,
		"object":           "event",
		"api_version":      APIVersion,
		"created":          created.Unix(),
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             typ,
		"data":             map[string]any{"object": object},
	})
	if err != nil {
		panic(err) // only maps of JSON values are passed
	}
	return b
}

// IDAlphabet is the characters of a Stripe id after its prefix, in ASCII
// order (a ledger's ascii_bin order).
const IDAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewEventID returns a random event id in Stripe's shape, "evt_" and 24
// alphanumerics. Stripe's ids are not ordered in time, and neither are
// these: nothing may settle an order by comparing them.
func NewEventID() string {
	id := make([]byte, 0, 4+24)
	id = append(id, "evt_"...)
	var buf [32]byte
	for len(id) < cap(id) {
		rand.Read(buf[:]) // never fails (crypto/rand)
		for _, b := range buf {
			// 248 = 4*62: rejecting the rest keeps every character equally likely.
			if b < 248 && len(id) < cap(id) {
				id = append(id, IDAlphabet[b%62])
			}
		}
	}
	return string(id)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Customer is a customer object.
func Customer(id, email string) map[string]any {
	return map[string]any{
		"id": id, "object": "customer", "livemode": false, "created": int64(1700000000),
		"email": email, "name": "Customer " + id, "currency": "usd", "balance": 0, "deleted": nil,
	}
}

// Subscription is a subscription object with one monthly item.
func Subscription(id, customer, status string, periodStart time.Time) map[string]any {
	return map[string]any{
		"id": id, "object": "subscription", "livemode": false, "created": periodStart.Unix(),
		"customer": customer, "status": status, "currency": "usd",
		"current_period_start": periodStart.Unix(),
		"current_period_end":   periodStart.AddDate(0, 1, 0).Unix(),
		"cancel_at_period_end": false, "cancel_at": nil, "canceled_at": nil, "ended_at": nil,
		"trial_start": nil, "trial_end": nil,
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_" + id, "object": "subscription_item", "quantity": 1,
			"price": map[string]any{"id": "price_monthly", "object": "price", "unit_amount": 2000, "currency": "usd"},
		}}},
	}
}

// Invoice is an invoice object; amountPaid is subtracted from amountDue
// for amount_remaining.
func Invoice(id, customer, subscription, status string, amountDue, amountPaid int64) map[string]any {
	return map[string]any{
		"id": id, "object": "invoice", "livemode": false, "created": int64(1700000000),
		"customer": customer, "subscription": nullable(subscription), "status": status,
		"number": nil, "currency": "usd",
		"amount_due": amountDue, "amount_paid": amountPaid, "amount_remaining": amountDue - amountPaid,
		"subtotal": amountDue, "total": amountDue, "attempt_count": 0,
		"hosted_invoice_url": "https://invoice.stripe.com/i/" + id,
		"due_date":           nil, "period_start": int64(1700000000), "period_end": int64(1700000000),
		"payment_intent": nil, "charge": nil, "paid": status == "paid",
	}
}

// PaymentIntent is a payment intent object.
func PaymentIntent(id, customer, invoice, status string, amount int64) map[string]any {
	received := int64(0)
	if status == "succeeded" {
		received = amount
	}
	return map[string]any{
		"id": id, "object": "payment_intent", "livemode": false, "created": int64(1700000000),
		"customer": nullable(customer), "invoice": nullable(invoice), "status": status, "currency": "usd",
		"amount": amount, "amount_capturable": 0, "amount_received": received,
		"latest_charge": nil, "last_payment_error": nil,
	}
}

// Charge is a charge object; a failed one carries card_declined.
func Charge(id, customer, paymentIntent, invoice, status string, amount int64) map[string]any {
	o := map[string]any{
		"id": id, "object": "charge", "livemode": false, "created": int64(1700000000),
		"customer": nullable(customer), "payment_intent": nullable(paymentIntent), "invoice": nullable(invoice),
		"status": status, "currency": "usd", "amount": amount, "amount_captured": 0, "amount_refunded": 0,
		"captured": false, "refunded": false, "paid": false, "failure_code": nil, "failure_message": nil,
	}
	switch status {
	case "succeeded":
		o["amount_captured"], o["captured"], o["paid"] = amount, true, true
	case "failed":
		o["failure_code"], o["failure_message"] = "card_declined", "Your card was declined."
	}
	return o
}

// Refund is a refund object.
func Refund(id, charge, paymentIntent, status string, amount int64) map[string]any {
	return map[string]any{
		"id": id, "object": "refund", "created": int64(1700000000),
		"charge": nullable(charge), "payment_intent": nullable(paymentIntent),
		"status": status, "currency": "usd", "amount": amount, "reason": "requested_by_customer", "failure_reason": nil,
	}
}

// Dispute is a dispute object.
func Dispute(id, charge, paymentIntent, status string, amount int64) map[string]any {
	return map[string]any{
		"id": id, "object": "dispute", "livemode": false, "created": int64(1700000000),
		"charge": charge, "payment_intent": nullable(paymentIntent), "status": status, "currency": "usd",
		"amount": amount, "reason": "fraudulent", "is_charge_refundable": false,
		"evidence_details": map[string]any{"due_by": int64(1700000000 + 7*86400), "has_evidence": false},
	}
}

// CheckoutSession is a completed subscription-mode checkout session.
func CheckoutSession(id, customer, subscription, invoice string) map[string]any {
	return map[string]any{
		"id": id, "object": "checkout.session", "livemode": false, "created": int64(1700000000),
		"mode": "subscription", "status": "complete", "payment_status": "paid",
		"customer": nullable(customer), "subscription": nullable(subscription), "invoice": nullable(invoice),
		"payment_intent": nil, "currency": "usd", "amount_total": 2000,
	}
}

// IDs are the object ids of one customer's lifecycle.
type IDs struct {
	Customer, Subscription, Invoice, PaymentIntent, FailedCharge, Charge, Refund, Dispute, Checkout string
}

// LifecycleIDs returns the ids Lifecycle(_, start) uses for customer i.
// They start with four characters of a hash of start and i: Stripe's ids
// are random, so a table's unique key takes new objects at random places,
// not at its end as ids that grow with time would (the ledger benchmark
// measures that cost); the rest keeps the ids readable.
func LifecycleIDs(start time.Time, i int) IDs {
	s := fmt.Sprintf("%d_%03d", start.Unix(), i)
	sum := sha256.Sum256([]byte(s))
	head := make([]byte, 4)
	for i := range head {
		head[i] = IDAlphabet[sum[i]%62]
	}
	s = string(head) + s
	return IDs{
		Customer: "cus_" + s, Subscription: "sub_" + s, Invoice: "in_" + s, PaymentIntent: "pi_" + s,
		FailedCharge: "ch_fail_" + s, Charge: "ch_" + s, Refund: "re_" + s, Dispute: "dp_" + s, Checkout: "cs_" + s,
	}
}

// LifecycleAmount is customer i's invoice amount in cents.
func LifecycleAmount(i int) int64 { return 2000 + int64(i)*100 }

// LifecycleRefund is the amount refunded to every customer.
const LifecycleRefund int64 = 500

// Lifecycle returns customerN interleaved lifecycles, in the order Stripe
// would send them: customer, subscription, invoice drafted and finalized, a
// declined payment, a successful one, the invoice paid (payment_succeeded
// and paid share one second, as in reality), the subscription active, a
// refund, a lost dispute, the subscription canceled, and a customer update.
// Event ids are random (NewEventID), as Stripe's say nothing of order.
func Lifecycle(customerN int, start time.Time) [][]byte {
	type step struct {
		at  int // seconds after the customer's start
		typ string
		obj func(id IDs, amount int64, at time.Time) map[string]any
	}
	steps := []step{
		{0, "customer.created", func(id IDs, _ int64, _ time.Time) map[string]any {
			return Customer(id.Customer, id.Customer+"@example.com")
		}},
		{1, "customer.subscription.created", func(id IDs, _ int64, at time.Time) map[string]any {
			return Subscription(id.Subscription, id.Customer, "incomplete", at)
		}},
		{1, "invoice.created", func(id IDs, a int64, _ time.Time) map[string]any {
			return Invoice(id.Invoice, id.Customer, id.Subscription, "draft", a, 0)
		}},
		{2, "invoice.finalized", func(id IDs, a int64, _ time.Time) map[string]any {
			o := Invoice(id.Invoice, id.Customer, id.Subscription, "open", a, 0)
			o["number"] = "INV-" + id.Invoice
			o["payment_intent"] = id.PaymentIntent
			return o
		}},
		{3, "charge.failed", func(id IDs, a int64, _ time.Time) map[string]any {
			return Charge(id.FailedCharge, id.Customer, id.PaymentIntent, id.Invoice, "failed", a)
		}},
		{3, "payment_intent.payment_failed", func(id IDs, a int64, _ time.Time) map[string]any {
			o := PaymentIntent(id.PaymentIntent, id.Customer, id.Invoice, "requires_payment_method", a)
			o["latest_charge"] = id.FailedCharge
			o["last_payment_error"] = map[string]any{"code": "card_declined", "message": "Your card was declined."}
			return o
		}},
		{3, "invoice.payment_failed", func(id IDs, a int64, _ time.Time) map[string]any {
			o := Invoice(id.Invoice, id.Customer, id.Subscription, "open", a, 0)
			o["number"] = "INV-" + id.Invoice
			o["payment_intent"] = id.PaymentIntent
			o["attempt_count"] = 1
			return o
		}},
		{10, "charge.succeeded", func(id IDs, a int64, _ time.Time) map[string]any {
			return Charge(id.Charge, id.Customer, id.PaymentIntent, id.Invoice, "succeeded", a)
		}},
		{10, "payment_intent.succeeded", func(id IDs, a int64, _ time.Time) map[string]any {
			o := PaymentIntent(id.PaymentIntent, id.Customer, id.Invoice, "succeeded", a)
			o["latest_charge"] = id.Charge
			return o
		}},
		{11, "invoice.payment_succeeded", paidInvoice},
		{11, "invoice.paid", paidInvoice},
		{11, "customer.subscription.updated", func(id IDs, _ int64, at time.Time) map[string]any {
			return Subscription(id.Subscription, id.Customer, "active", at.Add(-10*time.Second))
		}},
		{12, "checkout.session.completed", func(id IDs, _ int64, _ time.Time) map[string]any {
			return CheckoutSession(id.Checkout, id.Customer, id.Subscription, id.Invoice)
		}},
		{20, "refund.created", func(id IDs, _ int64, _ time.Time) map[string]any {
			return Refund(id.Refund, id.Charge, id.PaymentIntent, "succeeded", LifecycleRefund)
		}},
		{20, "charge.refunded", func(id IDs, a int64, _ time.Time) map[string]any {
			o := Charge(id.Charge, id.Customer, id.PaymentIntent, id.Invoice, "succeeded", a)
			o["amount_refunded"] = LifecycleRefund
			return o
		}},
		{30, "charge.dispute.created", func(id IDs, a int64, _ time.Time) map[string]any {
			return Dispute(id.Dispute, id.Charge, id.PaymentIntent, "needs_response", a-LifecycleRefund)
		}},
		{40, "charge.dispute.closed", func(id IDs, a int64, _ time.Time) map[string]any {
			return Dispute(id.Dispute, id.Charge, id.PaymentIntent, "lost", a-LifecycleRefund)
		}},
		{50, "customer.subscription.deleted", func(id IDs, _ int64, at time.Time) map[string]any {
			o := Subscription(id.Subscription, id.Customer, "canceled", at.Add(-49*time.Second))
			o["canceled_at"], o["ended_at"] = at.Unix(), at.Unix()
			return o
		}},
		{51, "customer.updated", func(id IDs, _ int64, _ time.Time) map[string]any {
			return Customer(id.Customer, "billing+"+id.Customer+"@example.com")
		}},
	}
	var out [][]byte
	for _, st := range steps {
		for i := range customerN {
			id := LifecycleIDs(start, i)
			at := start.Add(time.Duration(i+st.at) * time.Second)
			out = append(out, Event(NewEventID(), st.typ, at, st.obj(id, LifecycleAmount(i), at)))
		}
	}
	return out
}

func paidInvoice(id IDs, a int64, _ time.Time) map[string]any {
	o := Invoice(id.Invoice, id.Customer, id.Subscription, "paid", a, a)
	o["number"] = "INV-" + id.Invoice
	o["payment_intent"] = id.PaymentIntent
	o["charge"] = id.Charge
	o["attempt_count"] = 2
	return o
}
