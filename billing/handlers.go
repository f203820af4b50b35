package billing

import (
	"fmt"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/models"
)

// decoders are the event types the worker applies, each with the decoder
// of its plan: the one list of them. Every other type is recorded in the
// ledger as ignored.
var decoders = func() map[string]func(Event) (plan, error) {
	m := map[string]func(Event) (plan, error){}
	handle := func(t string, decode func(Event) (plan, error)) { m[t] = decode }
	for _, t := range []string{"customer.created", "customer.updated", "customer.deleted"} {
		handle(t, customerPlan)
	}
	for _, t := range []string{"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
		"customer.subscription.pending_update_applied", "customer.subscription.pending_update_expired"} {
		handle(t, subscriptionPlan)
	}
	for _, t := range []string{"invoice.created", "invoice.finalized", "invoice.updated", "invoice.paid",
		"invoice.payment_succeeded", "invoice.payment_failed", "invoice.payment_action_required", "invoice.voided",
		"invoice.marked_uncollectible", "invoice.deleted", "invoice.sent", "invoice.upcoming", "invoice.finalization_failed",
		"invoice.overdue", "invoice.will_be_due"} {
		handle(t, invoicePlan)
	}
	for _, t := range []string{"payment_intent.created", "payment_intent.succeeded", "payment_intent.payment_failed",
		"payment_intent.canceled", "payment_intent.processing", "payment_intent.requires_action",
		"payment_intent.amount_capturable_updated", "payment_intent.partially_funded"} {
		handle(t, paymentIntentPlan)
	}
	for _, t := range []string{"charge.succeeded", "charge.failed", "charge.pending", "charge.captured",
		"charge.refunded", "charge.updated", "charge.expired"} {
		handle(t, chargePlan)
	}
	for _, t := range []string{"charge.refund.updated", "refund.created", "refund.updated", "refund.failed"} {
		handle(t, refundPlan)
	}
	for _, t := range []string{"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
		"charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"} {
		handle(t, disputePlan)
	}
	handle("invoice_payment.paid", invoicePaymentPlan)
	handle("checkout.session.completed", checkoutSessionPlan)
	handle("checkout.session.async_payment_succeeded", checkoutSessionPlan)
	handle("checkout.session.async_payment_failed", checkoutSessionPlan)
	handle("checkout.session.expired", checkoutSessionPlan)
	for _, t := range []string{"credit_note.created", "credit_note.updated", "credit_note.voided"} {
		handle(t, creditNotePlan)
	}
	for _, t := range []string{"payment_method.attached", "payment_method.detached", "payment_method.updated",
		"payment_method.automatically_updated"} {
		handle(t, paymentMethodPlan)
	}
	for _, t := range []string{"created", "updated", "deleted"} {
		handle("product."+t, productPlan)
		handle("price."+t, pricePlan)
	}
	for _, t := range []string{"created", "updated", "expiring", "released", "canceled", "completed", "aborted"} {
		handle("subscription_schedule."+t, subscriptionSchedulePlan)
	}
	return m
}()

// objectPlans plan an object of each stored type, by Stripe's "object"
// name: Stripe's copy of one, fetched (Planned.WithFetched), or a
// snapshot's (Snapshot).
var objectPlans = map[string]func(Event) (plan, error){
	customerKind.objectType: customerPlan, subscriptionKind.objectType: subscriptionPlan, invoiceKind.objectType: invoicePlan,
	invoicePaymentKind.objectType: invoicePaymentPlan, paymentIntentKind.objectType: paymentIntentPlan,
	chargeKind.objectType: chargePlan, refundKind.objectType: refundPlan, disputeKind.objectType: disputePlan,
	checkoutSessionKind.objectType: checkoutSessionPlan, creditNoteKind.objectType: creditNotePlan,
	paymentMethodKind.objectType: paymentMethodPlan, productKind.objectType: productPlan, priceKind.objectType: pricePlan,
	subscriptionScheduleKind.objectType: subscriptionSchedulePlan,
}

// previewTypes are the event types whose object Stripe may send without an
// id: a preview of what will be, not an object to store.
var previewTypes = map[string]bool{"invoice.upcoming": true}

func customerPlan(ev Event) (plan, error) {
	row := &models.Customer{}
	o, p, err := decodeObject[stripejson.Customer](ev, &customerKind, row)
	if err != nil {
		return nil, err
	}
	var defaultMethod ref
	if o.InvoiceSettings != nil {
		defaultMethod = o.InvoiceSettings.DefaultPaymentMethod
	}
	row.Metadata, row.StripeCreated, row.DefaultPaymentMethodID = o.Metadata.S, o.Created.T, defaultMethod.Ptr()
	pl := one(customerKind, o.ID, "", p, "", row)
	pl[0].change.deletes = ev.Type == "customer.deleted"
	return pl, nil
}

func subscriptionPlan(ev Event) (plan, error) {
	row := &models.Subscription{}
	o, p, err := decodeObject[stripejson.Subscription](ev, &subscriptionKind, row)
	if err != nil {
		return nil, err
	}
	its, err := decodeItems(ev, *o, p)
	if err != nil {
		return nil, err
	}
	row.CustomerID, row.Metadata, row.StripeCreated = o.Customer.Ptr(), o.Metadata.S, o.Created.T
	row.CurrentPeriodStart, row.CurrentPeriodEnd = o.CurrentPeriodStart.T, o.CurrentPeriodEnd.T
	if pc := o.PauseCollection; pc != nil {
		row.PauseCollectionBehavior, row.PauseCollectionResumesAt = pc.Behavior, pc.ResumesAt.T
	}
	if !p.Has("current_period_start") {
		// From 2025-03-31.basil each item has its own period: the
		// subscription's is their span.
		row.CurrentPeriodStart, row.CurrentPeriodEnd = its.span()
	}
	c := &change{
		kind:     subscriptionKind,
		id:       o.ID,
		status:   o.Status,
		present:  p,
		customer: o.Customer,
		row:      row,
	}
	if o.Items != nil {
		c.items = &its // written with the event only when it is applied
	}
	return plan{{kind: subscriptionKind, id: o.ID, change: c}}, nil
}

func invoicePlan(ev Event) (plan, error) {
	row := &models.Invoice{}
	o, p, err := decodeObject[stripejson.Invoice](ev, &invoiceKind, row)
	if err != nil {
		return nil, err
	}
	row.CustomerID, row.SubscriptionID = o.Customer.Ptr(), stripejson.SubscriptionRef(o).Ptr()
	row.PaymentIntentID, row.ChargeID = o.PaymentIntent.Ptr(), o.Charge.Ptr()
	row.PaidAt, row.Tax, row.TotalDiscountAmount = stripejson.PaidAt(o), stripejson.TotalTax(o), stripejson.Sum(o.TotalDiscountAmounts)
	row.Metadata, row.StripeCreated = o.Metadata.S, o.Created.T
	row.BilledPeriodStart, row.BilledPeriodEnd = stripejson.BilledPeriod(o)
	pl := one(invoiceKind, o.ID, o.Status, p, o.Customer, row)
	pl[0].change.deletes = ev.Type == "invoice.deleted"
	payments, path := ev.payments, "invoice_payments listed[%d]" // fetched (PaymentsToFetch)
	if o.Payments != nil {
		payments, path = o.Payments.Data, "invoice.payments.data[%d]"
	}
	for i, raw := range payments {
		ip, err := decodeInvoicePayment(ev, raw, fmt.Sprintf(path, i), ref(o.ID))
		if err != nil {
			return nil, err
		}
		pl = append(pl, ip...)
	}
	return pl, nil
}

// invoicePayment applies an InvoicePayment (API versions from
// 2025-03-31.basil), the link between an invoice and what paid it.
func invoicePaymentPlan(ev Event) (plan, error) {
	return decodeInvoicePayment(ev, ev.Object, invoicePaymentKind.objectType, "")
}

// decodeInvoicePayment plans the InvoicePayment raw found at path of ev
// (data.object, or an item of an invoice's payments), whose invoice is
// invoice when it names none, and its links: the invoice gets a row if it
// has none yet, so that the link waits for its own events; it is tied to
// what paid it (a payment intent, or a charge without one), and the
// intent's links are settled.
func decodeInvoicePayment(ev Event, raw []byte, path string, invoice ref) (plan, error) {
	k := &invoicePaymentKind
	requires := k.requires
	if invoice != "" {
		requires = []string{"status"} // an item of the invoice's own list
	}
	row := &models.InvoicePayment{}
	o, p, err := decodeAs[stripejson.InvoicePayment](ev, raw, payload{}, path, k, row, requires...)
	if err != nil {
		return nil, err
	}
	if o.Invoice != "" {
		invoice = o.Invoice
	}
	var pi, charge ref
	if o.Payment != nil {
		pi, charge = o.Payment.PaymentIntent, o.Payment.Charge
	}
	row.InvoiceID, row.PaymentIntentID, row.ChargeID, row.StripeCreated = invoice.Ptr(), pi.Ptr(), charge.Ptr(), o.Created.T
	if o.StatusTransitions != nil {
		row.PaidAt = o.StatusTransitions.PaidAt.T
	}
	return plan{
		{kind: *k, id: o.ID, change: &change{kind: *k, id: o.ID, status: o.Status, present: p, row: row}},
		{kind: invoiceKind, id: string(invoice), ensure: true},
		{kind: invoiceKind, id: string(invoice), link: &models.Invoice{PaymentIntentID: pi.Ptr(), ChargeID: charge.Ptr()}},
		{kind: chargeKind, id: string(charge), link: &models.Payment{InvoiceID: invoice.Ptr()}},
		{kind: paymentIntentKind, id: string(pi), settle: true},
	}, nil
}

func paymentIntentPlan(ev Event) (plan, error) {
	row := &models.Payment{}
	o, p, err := decodeObject[stripejson.PaymentIntent](ev, &paymentIntentKind, row)
	if err != nil {
		return nil, err
	}
	succeeded := o.Status == "succeeded"
	row.CustomerID, row.InvoiceID, row.ChargeID = o.Customer.Ptr(), o.Invoice.Ptr(), o.LatestCharge.Ptr()
	row.Captured, row.Paid, row.Metadata, row.StripeCreated = &succeeded, &succeeded, o.Metadata.S, o.Created.T
	if e := o.LastPaymentError; e != nil {
		row.FailureCode, row.FailureMessage = e.Code, e.Message
	}
	pl := one(paymentIntentKind, o.ID, o.Status, p, o.Customer, row)
	if !p.Has("invoice") { // before basil the objects name each other
		pl = append(pl, op{kind: paymentIntentKind, id: o.ID, settle: true})
	}
	return pl, nil
}

func chargePlan(ev Event) (plan, error) {
	row := &models.Payment{}
	o, p, err := decodeObject[stripejson.Charge](ev, &chargeKind, row)
	if err != nil {
		return nil, err
	}
	row.CustomerID, row.InvoiceID, row.PaymentIntentID = o.Customer.Ptr(), o.Invoice.Ptr(), o.PaymentIntent.Ptr()
	row.AmountReleased, row.Metadata, row.StripeCreated = released(row, p.Has("invoice")), o.Metadata.S, o.Created.T
	if pm := o.PaymentMethodDetails; pm != nil {
		row.PaymentMethodType, row.PaymentMethodBrand, row.PaymentMethodLast4 = pm.Type, pm.Brand, pm.Last4
		row.PaymentMethodExpMonth, row.PaymentMethodExpYear, row.PaymentMethodWallet = pm.ExpMonth, pm.ExpYear, pm.WalletType()
	}
	pl := one(chargeKind, o.ID, o.Status, p, o.Customer, row)
	if !p.Has("invoice") { // before basil the objects name each other
		pl = append(pl, op{kind: paymentIntentKind, id: string(o.PaymentIntent), settle: true})
	}
	// The refunds the charge carries, where its payload has the list
	// (every supported version defines it, and Stripe's fixtures carry
	// it; a payload without it says nothing of them): rows of their own,
	// folded as the refund events' objects are.
	if o.Refunds != nil {
		for i, raw := range o.Refunds.Data {
			r, err := decodeRefund(ev, raw, fmt.Sprintf("charge.refunds.data[%d]", i), ref(o.ID))
			if err != nil {
				return nil, err
			}
			pl = append(pl, r...)
		}
	}
	return pl, nil
}

// released is the part of charge c's amount_refunded that gave back a
// hold never captured: not money returned (docs/finance.md's refunded
// leaves it out); nil when c lacks an amount. Before 2025-03-31.basil a
// partial capture, a cancellation and an expired authorisation each
// refund the part not captured, first, so that part of amount_refunded
// is a release; from basil Stripe releases it with no refund and
// amount_refunded counts only captured money. Stripe decides by the API
// version of the request that captured or canceled, which the event does
// not say: preBasil (the payload has a charge's invoice, a key basil
// removed) stands for it, and refunds beyond amount_captured can only
// hold a release whatever the version.
func released(c *models.Payment, preBasil bool) *int64 {
	if c.Amount == nil || c.AmountRefunded == nil {
		return nil
	}
	captured := int64(0)
	if c.AmountCaptured != nil {
		captured = *c.AmountCaptured
	}
	n := int64(0)
	if preBasil || *c.AmountRefunded > captured {
		n = max(0, min(*c.AmountRefunded, *c.Amount-captured))
	}
	return &n
}

func refundPlan(ev Event) (plan, error) {
	return decodeRefund(ev, ev.Object, refundKind.objectType, "")
}

// decodeRefund plans the Refund raw found at path of ev (data.object, or
// an item of a charge's refunds), whose charge is charge when it names
// none.
func decodeRefund(ev Event, raw []byte, path string, charge ref) (plan, error) {
	k := &refundKind
	var keys payload
	if charge == "" {
		keys = ev.keys // data.object's, read already
	}
	row := &models.Refund{}
	o, p, err := decodeAs[stripejson.Refund](ev, raw, keys, path, k, row, k.requires...)
	if err != nil {
		return nil, err
	}
	if o.Charge == "" {
		o.Charge = charge
	}
	row.ChargeID, row.PaymentIntentID, row.Metadata, row.StripeCreated = o.Charge.Ptr(), o.PaymentIntent.Ptr(), o.Metadata.S, o.Created.T
	pl := one(refundKind, o.ID, o.Status, p, "", row)
	if o.Status == "failed" || o.Status == "canceled" {
		pl = append(pl, op{kind: chargeKind, id: string(o.Charge), refund: o.ID})
	}
	return pl, nil
}

// refundCounted reports whether a charge's amount_refunded may count a
// refund in status s ("": not seen yet): it does from the refund's
// creation until the refund fails or is canceled.
func refundCounted(s string) bool { return s != "failed" && s != "canceled" }

func disputePlan(ev Event) (plan, error) {
	row := &models.Dispute{}
	o, p, err := decodeObject[stripejson.Dispute](ev, &disputeKind, row)
	if err != nil {
		return nil, err
	}
	row.ChargeID, row.PaymentIntentID, row.Metadata, row.StripeCreated = o.Charge.Ptr(), o.PaymentIntent.Ptr(), o.Metadata.S, o.Created.T
	if o.EvidenceDetails != nil {
		row.EvidenceDueBy = o.EvidenceDetails.DueBy.T
	}
	return one(disputeKind, o.ID, o.Status, p, "", row), nil
}

// checkoutSession stores the session (what ties a checkout to our user:
// client_reference_id, metadata) and links what a completed checkout
// created, creating rows for what has not arrived yet.
func checkoutSessionPlan(ev Event) (plan, error) {
	row := &models.CheckoutSession{}
	o, p, err := decodeObject[stripejson.CheckoutSession](ev, &checkoutSessionKind, row)
	if err != nil {
		return nil, err
	}
	customer := o.Customer.Ptr()
	row.CustomerID, row.SubscriptionID, row.PaymentIntentID, row.InvoiceID = customer, o.Subscription.Ptr(), o.PaymentIntent.Ptr(), o.Invoice.Ptr()
	row.Metadata, row.StripeCreated = o.Metadata.S, o.Created.T
	pl := one(checkoutSessionKind, o.ID, o.Status, p, o.Customer, row)
	for _, t := range []struct {
		kind kind
		id   ref
		refs any
	}{
		{subscriptionKind, o.Subscription, &models.Subscription{CustomerID: customer}},
		{paymentIntentKind, o.PaymentIntent, &models.Payment{CustomerID: customer, InvoiceID: o.Invoice.Ptr()}},
		{invoiceKind, o.Invoice, &models.Invoice{CustomerID: customer, SubscriptionID: o.Subscription.Ptr()}},
	} {
		pl = append(pl, op{kind: t.kind, id: string(t.id), ensure: true}, op{kind: t.kind, id: string(t.id), link: t.refs})
	}
	return pl, nil
}

func creditNotePlan(ev Event) (plan, error) {
	row := &models.CreditNote{}
	o, p, err := decodeObject[stripejson.CreditNote](ev, &creditNoteKind, row)
	if err != nil {
		return nil, err
	}
	row.InvoiceID, row.CustomerID, row.Metadata, row.StripeCreated = o.Invoice.Ptr(), o.Customer.Ptr(), o.Metadata.S, o.Created.T
	return one(creditNoteKind, o.ID, o.Status, p, o.Customer, row), nil
}

// one is the plan of an event that changes one object, its own.
func one(k kind, id, status string, present payload, customer ref, row any) plan {
	return plan{{kind: k, id: id, change: &change{kind: k, id: id, status: status, present: present, customer: customer, row: row}}}
}

// paymentMethodPlan stores a payment method's summary (never its
// fingerprint); a detached method names no customer.
func paymentMethodPlan(ev Event) (plan, error) {
	row := &models.PaymentMethod{}
	o, p, err := decodeObject[stripejson.PaymentMethod](ev, &paymentMethodKind, row)
	if err != nil {
		return nil, err
	}
	m := o.Summary
	row.CustomerID, row.Brand, row.Last4, row.ExpMonth, row.ExpYear = o.Customer.Ptr(), m.Brand, m.Last4, m.ExpMonth, m.ExpYear
	row.Wallet, row.Metadata, row.StripeCreated = m.WalletType(), o.Metadata.S, o.Created.T
	return one(paymentMethodKind, o.ID, "", p, o.Customer, row), nil
}

func productPlan(ev Event) (plan, error) {
	row := &models.Product{}
	o, p, err := decodeObject[stripejson.Product](ev, &productKind, row)
	if err != nil {
		return nil, err
	}
	row.Metadata, row.StripeCreated = o.Metadata.S, o.Created.T
	pl := one(productKind, o.ID, "", p, "", row)
	pl[0].change.deletes = ev.Type == "product.deleted"
	return pl, nil
}

func pricePlan(ev Event) (plan, error) {
	row := &models.Price{}
	o, p, err := decodeObject[stripejson.Price](ev, &priceKind, row)
	if err != nil {
		return nil, err
	}
	row.ProductID, row.Metadata, row.StripeCreated = o.Product.Ptr(), o.Metadata.S, o.Created.T
	if r := o.Recurring; r != nil {
		row.RecurringInterval, row.RecurringIntervalCount = r.Interval, r.IntervalCount
	}
	pl := one(priceKind, o.ID, "", p, "", row)
	pl[0].change.deletes = ev.Type == "price.deleted"
	return pl, nil
}

// subscriptionSchedulePlan stores a schedule and its current phase; its
// subscription is the one it manages, or released.
func subscriptionSchedulePlan(ev Event) (plan, error) {
	row := &models.SubscriptionSchedule{}
	o, p, err := decodeObject[stripejson.SubscriptionSchedule](ev, &subscriptionScheduleKind, row)
	if err != nil {
		return nil, err
	}
	sub := o.Subscription
	if sub == "" {
		sub = o.ReleasedSubscription
	}
	row.CustomerID, row.SubscriptionID, row.Metadata, row.StripeCreated = o.Customer.Ptr(), sub.Ptr(), o.Metadata.S, o.Created.T
	if ph := o.CurrentPhase; ph != nil {
		row.CurrentPhaseStart, row.CurrentPhaseEnd = ph.StartDate.T, ph.EndDate.T
	}
	return one(subscriptionScheduleKind, o.ID, o.Status, p, o.Customer, row), nil
}
