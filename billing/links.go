package billing

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/models"
)

// Links between an invoice, its payment intent and the intent's charges
// (models.SettleLinks) are settled from rows, not events; a plan names
// the payment intents to settle. Subscription items come with their
// subscription's event.

// InvoicePaymentsSince is the API version from which an invoice's
// payments are InvoicePayment objects: no invoice, payment intent or
// charge names another, and only invoice_payment.paid ties them.
const InvoicePaymentsSince = "2025-03-31.basil"

// attemptTypes are the invoice events that report an attempt to pay it
// that did not succeed.
var attemptTypes = map[string]bool{"invoice.payment_failed": true, "invoice.payment_action_required": true}

// PaymentsToFetch names the invoice whose payments ev needs from Stripe,
// with ev's API version and account (the ledger fetches them before its
// transaction and hands them on: Event.WithPayments). From
// 2025-03-31.basil an invoice names no payment intent or charge, its
// intent and charges name no invoice, and only invoice_payment.paid ties
// them: an attempt that failed is tied to its invoice by the invoice's
// InvoicePayments alone, which no event carries. ok is true for an
// attempt's event (attemptTypes) whose invoice has neither field
// (payment_intent before basil, the payments list when expanded).
func PaymentsToFetch(ev Event) (invoice ObjectRef, ok bool) {
	if !attemptTypes[ev.Type] || ev.ObjectType != invoiceKind.objectType || ev.ObjectID == "" || ev.snapshot {
		return ObjectRef{}, false
	}
	keys := ev.keys
	if !keys.Scanned() {
		keys, _, _ = stripejson.Scan(ev.Object)
	}
	if keys.Has("payment_intent", "payments") {
		return ObjectRef{}, false
	}
	return ObjectRef{Type: invoiceKind.objectType, ID: ev.ObjectID, APIVersion: ev.APIVersion, Account: ev.Account}, true
}

// WithPayments is ev carrying payments, the InvoicePayments Stripe lists
// for its invoice (PaymentsToFetch): they are planned as the items of an
// invoice's payments list are, as Stripe showed them when ev was
// applied.
func (ev Event) WithPayments(payments []json.RawMessage) Event {
	ev.payments = payments
	return ev
}

// item is one subscription item of a payload and the fields it carries.
type item struct {
	stripejson.SubscriptionItem
	present payload
}

// items are a subscription payload's items; start and end are the
// subscription's own period (before basil), which every item shares.
type items struct {
	list       []item
	start, end *time.Time
	hasPeriod  bool // the subscription payload carries its period
	complete   bool // the list has every item (no has_more)
}

// decodeItems reads the items of subscription o, whose payload is p, from
// ev.
func decodeItems(ev Event, o stripejson.Subscription, p payload) (items, error) {
	its := items{start: o.CurrentPeriodStart.T, end: o.CurrentPeriodEnd.T, hasPeriod: p.Has("current_period_start")}
	if o.Items == nil {
		return its, nil
	}
	its.complete = !o.Items.HasMore
	for i, raw := range o.Items.Data {
		var it item
		p, err := decode(ev, raw, fmt.Sprintf("subscription.items.data[%d]", i), "subscription_item",
			&it.SubscriptionItem, &it.Common)
		if err != nil {
			return items{}, err
		}
		it.present = p
		its.list = append(its.list, it)
	}
	return its, nil
}

// span is the earliest start and latest end of the items' own periods.
func (its items) span() (start, end *time.Time) {
	for _, it := range its.list {
		if s := it.CurrentPeriodStart.T; s != nil && (start == nil || s.Before(*start)) {
			start = s
		}
		if e := it.CurrentPeriodEnd.T; e != nil && (end == nil || e.After(*end)) {
			end = e
		}
	}
	return start, end
}

// itemList is the item list of items, as the applied event ev of
// subscription sub lists them, for the store: an item's period is its
// own (from basil) or else its subscription's, when the payload carries
// it.
func itemList(ev Event, sub string, its *items) models.ItemList {
	env := envelopeOf(ev)
	l := models.ItemList{Subscription: sub, Livemode: env.livemode, Account: env.account, Complete: its.complete}
	for _, it := range its.list {
		li := models.ListedItem{ID: it.ID, HasPrice: it.present.Has("price"), HasQuantity: it.present.Has("quantity")}
		if li.HasPrice {
			li.Price = it.Price.Ptr()
		}
		if li.HasQuantity {
			li.Quantity = it.Quantity
		}
		switch {
		case it.present.Has("current_period_start"):
			li.HasPeriod, li.PeriodStart, li.PeriodEnd = true, it.CurrentPeriodStart.T, it.CurrentPeriodEnd.T
		case its.hasPeriod:
			li.HasPeriod, li.PeriodStart, li.PeriodEnd = true, its.start, its.end
		}
		l.Items = append(l.Items, li)
	}
	return l
}
