// Package billingtest builds Stripe events for tests and benchmarks. In the
// API version 2023-10-16 shapes: single objects, events around them, and a
// realistic ordered lifecycle stream; the builders are simulate/stripeevent,
// which the simulator streams in production, and this package names them
// for tests, so test code never becomes a dependency of production code.
// In every supported API version: VersionLifecycle, built from Stripe's own
// fixtures (internal/stripefixture), with the records it must leave.
package billingtest

import (
	"time"

	"github.com/stripe-billing/billing/simulate/stripeevent"
)

// APIVersion is the version the events claim, the one stripe-go v76 pins.
const APIVersion = stripeevent.APIVersion

// Event returns the JSON of a test-mode event of type typ carrying object.
func Event(id, typ string, created time.Time, object map[string]any) []byte {
	return stripeevent.Event(id, typ, created, object)
}

// Customer is a customer object.
func Customer(id, email string) map[string]any { return stripeevent.Customer(id, email) }

// Subscription is a subscription object with one monthly item.
func Subscription(id, customer, status string, periodStart time.Time) map[string]any {
	return stripeevent.Subscription(id, customer, status, periodStart)
}

// Invoice is an invoice object; amountPaid is subtracted from amountDue
// for amount_remaining.
func Invoice(id, customer, subscription, status string, amountDue, amountPaid int64) map[string]any {
	return stripeevent.Invoice(id, customer, subscription, status, amountDue, amountPaid)
}

// PaymentIntent is a payment intent object.
func PaymentIntent(id, customer, invoice, status string, amount int64) map[string]any {
	return stripeevent.PaymentIntent(id, customer, invoice, status, amount)
}

// Charge is a charge object; a failed one carries card_declined.
func Charge(id, customer, paymentIntent, invoice, status string, amount int64) map[string]any {
	return stripeevent.Charge(id, customer, paymentIntent, invoice, status, amount)
}

// Refund is a refund object.
func Refund(id, charge, paymentIntent, status string, amount int64) map[string]any {
	return stripeevent.Refund(id, charge, paymentIntent, status, amount)
}

// Dispute is a dispute object.
func Dispute(id, charge, paymentIntent, status string, amount int64) map[string]any {
	return stripeevent.Dispute(id, charge, paymentIntent, status, amount)
}

// CheckoutSession is a completed subscription-mode checkout session.
func CheckoutSession(id, customer, subscription, invoice string) map[string]any {
	return stripeevent.CheckoutSession(id, customer, subscription, invoice)
}

// IDs are the object ids of one customer's lifecycle.
type IDs = stripeevent.IDs

// LifecycleIDs returns the ids Lifecycle(_, start) uses for customer i.
func LifecycleIDs(start time.Time, i int) IDs { return stripeevent.LifecycleIDs(start, i) }

// LifecycleAmount is customer i's invoice amount in cents.
func LifecycleAmount(i int) int64 { return stripeevent.LifecycleAmount(i) }

// LifecycleRefund is the amount refunded to every customer.
const LifecycleRefund = stripeevent.LifecycleRefund

// NewEventID returns a random event id in Stripe's shape (crypto/rand):
// like Stripe's, it says nothing of the event's place in time.
func NewEventID() string { return stripeevent.NewEventID() }

// Lifecycle returns customerN interleaved lifecycles in the order Stripe
// would send them (see stripeevent.Lifecycle); event ids are random.
func Lifecycle(customerN int, start time.Time) [][]byte {
	return stripeevent.Lifecycle(customerN, start)
}
