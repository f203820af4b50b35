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
	var o stripejson.Customer
	p, err := customerKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	var defaultMethod ref
	if o.InvoiceSettings != nil {
		defaultMethod = o.InvoiceSettings.DefaultPaymentMethod
	}
	pl := one(customerKind, o.ID, "", p, "", &models.Customer{
		Email:                  o.Email,
		Name:                   o.Name,
		Currency:               o.Currency,
		Balance:                o.Balance,
		Metadata:               o.Metadata.S,
		StripeCreated:          o.Created.T,
		DefaultPaymentMethodID: defaultMethod.Ptr(),
	})
	pl[0].change.deletes = ev.Type == "customer.deleted"
	return pl, nil
}

func subscriptionPlan(ev Event) (plan, error) {
	var o stripejson.Subscription
	p, err := subscriptionKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	its, err := decodeItems(ev, o, p)
	if err != nil {
		return nil, err
	}
	row := &models.Subscription{
		CustomerID:         o.Customer.Ptr(),
		Currency:           o.Currency,
		CurrentPeriodStart: o.CurrentPeriodStart.T,
		CurrentPeriodEnd:   o.CurrentPeriodEnd.T,
		CancelAtPeriodEnd:  o.CancelAtPeriodEnd,
		CancelAt:           o.CancelAt.T,
		CanceledAt:         o.CanceledAt.T,
		EndedAt:            o.EndedAt.T,
		TrialStart:         o.TrialStart.T,
		TrialEnd:           o.TrialEnd.T,
		Metadata:           o.Metadata.S,
		StripeCreated:      o.Created.T,
	}
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
	var o stripejson.Invoice
	p, err := invoiceKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	row := &models.Invoice{
		CustomerID:          o.Customer.Ptr(),
		SubscriptionID:      o.SubscriptionRef().Ptr(),
		PaymentIntentID:     o.PaymentIntent.Ptr(),
		ChargeID:            o.Charge.Ptr(),
		Number:              o.Number,
		Currency:            o.Currency,
		AmountDue:           o.AmountDue,
		AmountPaid:          o.AmountPaid,
		AmountRemaining:     o.AmountRemaining,
		Subtotal:            o.Subtotal,
		Total:               o.Total,
		AttemptCount:        o.AttemptCount,
		HostedInvoiceURL:    o.HostedInvoiceURL,
		DueDate:             o.DueDate.T,
		PeriodStart:         o.PeriodStart.T,
		PeriodEnd:           o.PeriodEnd.T,
		PaidAt:              o.PaidAt(),
		NextPaymentAttempt:  o.NextPaymentAttempt.T,
		Tax:                 o.TotalTax(),
		TotalDiscountAmount: stripejson.Sum(o.TotalDiscountAmounts),
		Metadata:            o.Metadata.S,
		StripeCreated:       o.Created.T,
	}
	row.BilledPeriodStart, row.BilledPeriodEnd = o.BilledPeriod()
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
	var o stripejson.InvoicePayment
	k := invoicePaymentKind
	requires := k.requires
	if invoice != "" {
		requires = []string{"status"} // an item of the invoice's own list
	}
	p, err := decode(ev, raw, path, k.objectType, &o, &o.Common, requires...)
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
	row := &models.InvoicePayment{
		InvoiceID:       invoice.Ptr(),
		PaymentIntentID: pi.Ptr(),
		ChargeID:        charge.Ptr(),
		Currency:        o.Currency,
		AmountPaid:      o.AmountPaid,
		AmountRequested: o.AmountRequested,
		StripeCreated:   o.Created.T,
	}
	if o.StatusTransitions != nil {
		row.PaidAt = o.StatusTransitions.PaidAt.T
	}
	return plan{
		{kind: k, id: o.ID, change: &change{kind: k, id: o.ID, status: o.Status, present: p, row: row}},
		{kind: invoiceKind, id: string(invoice), ensure: true},
		{kind: invoiceKind, id: string(invoice), link: &models.Invoice{PaymentIntentID: pi.Ptr(), ChargeID: charge.Ptr()}},
		{kind: chargeKind, id: string(charge), link: &models.Payment{InvoiceID: invoice.Ptr()}},
		{kind: paymentIntentKind, id: string(pi), settle: true},
	}, nil
}

func paymentIntentPlan(ev Event) (plan, error) {
	var o stripejson.PaymentIntent
	p, err := paymentIntentKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	succeeded := o.Status == "succeeded"
	row := &models.Payment{
		CustomerID:     o.Customer.Ptr(),
		InvoiceID:      o.Invoice.Ptr(),
		ChargeID:       o.LatestCharge.Ptr(),
		Currency:       o.Currency,
		Amount:         o.Amount,
		AmountReceived: o.AmountReceived,
		Captured:       &succeeded,
		Paid:           &succeeded,
		Metadata:       o.Metadata.S,
		StripeCreated:  o.Created.T,
	}
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
	var o stripejson.Charge
	p, err := chargeKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	row := &models.Payment{
		CustomerID:      o.Customer.Ptr(),
		InvoiceID:       o.Invoice.Ptr(),
		PaymentIntentID: o.PaymentIntent.Ptr(),
		Currency:        o.Currency,
		Amount:          o.Amount,
		AmountCaptured:  o.AmountCaptured,
		AmountRefunded:  o.AmountRefunded,
		AmountReleased:  released(o, p.Has("invoice")),
		Captured:        o.Captured,
		Refunded:        o.Refunded,
		Paid:            o.Paid,
		FailureCode:     o.FailureCode,
		FailureMessage:  o.FailureMessage,
		Metadata:        o.Metadata.S,
		StripeCreated:   o.Created.T,
	}
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

// released is the part of charge o's amount_refunded that gave back a
// hold never captured: not money returned (docs/finance.md's refunded
// leaves it out); nil when o lacks an amount. Before 2025-03-31.basil a
// partial capture, a cancellation and an expired authorisation each
// refund the part not captured, first, so that part of amount_refunded
// is a release; from basil Stripe releases it with no refund and
// amount_refunded counts only captured money. Stripe decides by the API
// version of the request that captured or canceled, which the event does
// not say: preBasil (the payload has a charge's invoice, a key basil
// removed) stands for it, and refunds beyond amount_captured can only
// hold a release whatever the version.
func released(o stripejson.Charge, preBasil bool) *int64 {
	if o.Amount == nil || o.AmountRefunded == nil {
		return nil
	}
	captured := int64(0)
	if o.AmountCaptured != nil {
		captured = *o.AmountCaptured
	}
	n := int64(0)
	if preBasil || *o.AmountRefunded > captured {
		n = max(0, min(*o.AmountRefunded, *o.Amount-captured))
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
	var o stripejson.Refund
	k := refundKind
	var keys payload
	if charge == "" {
		keys = ev.keys // data.object's, read already
	}
	p, err := decodeScanned(ev, raw, keys, path, k.objectType, &o, &o.Common, k.requires...)
	if err != nil {
		return nil, err
	}
	if o.Charge == "" {
		o.Charge = charge
	}
	pl := one(refundKind, o.ID, o.Status, p, "", &models.Refund{
		ChargeID:        o.Charge.Ptr(),
		PaymentIntentID: o.PaymentIntent.Ptr(),
		Currency:        o.Currency,
		Amount:          o.Amount,
		Reason:          o.Reason,
		FailureReason:   o.FailureReason,
		Metadata:        o.Metadata.S,
		StripeCreated:   o.Created.T,
	})
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
	var o stripejson.Dispute
	p, err := disputeKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	row := &models.Dispute{
		ChargeID:           o.Charge.Ptr(),
		PaymentIntentID:    o.PaymentIntent.Ptr(),
		Currency:           o.Currency,
		Amount:             o.Amount,
		Reason:             o.Reason,
		IsChargeRefundable: o.IsChargeRefundable,
		Metadata:           o.Metadata.S,
		StripeCreated:      o.Created.T,
	}
	if o.EvidenceDetails != nil {
		row.EvidenceDueBy = o.EvidenceDetails.DueBy.T
	}
	return one(disputeKind, o.ID, o.Status, p, "", row), nil
}

// checkoutSession stores the session (what ties a checkout to our user:
// client_reference_id, metadata) and links what a completed checkout
// created, creating rows for what has not arrived yet.
func checkoutSessionPlan(ev Event) (plan, error) {
	var o stripejson.CheckoutSession
	p, err := checkoutSessionKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	customer := o.Customer.Ptr()
	pl := one(checkoutSessionKind, o.ID, o.Status, p, o.Customer, &models.CheckoutSession{
		Mode:              o.Mode,
		PaymentStatus:     o.PaymentStatus,
		ClientReferenceID: o.ClientReferenceID,
		CustomerID:        customer,
		SubscriptionID:    o.Subscription.Ptr(),
		PaymentIntentID:   o.PaymentIntent.Ptr(),
		InvoiceID:         o.Invoice.Ptr(),
		Currency:          o.Currency,
		AmountTotal:       o.AmountTotal,
		ExpiresAt:         o.ExpiresAt.T,
		Metadata:          o.Metadata.S,
		StripeCreated:     o.Created.T,
	})
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
	var o stripejson.CreditNote
	p, err := creditNoteKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	return one(creditNoteKind, o.ID, o.Status, p, o.Customer, &models.CreditNote{
		InvoiceID:     o.Invoice.Ptr(),
		CustomerID:    o.Customer.Ptr(),
		Number:        o.Number,
		Type:          o.Type,
		Reason:        o.Reason,
		Currency:      o.Currency,
		Amount:        o.Amount,
		Total:         o.Total,
		Memo:          o.Memo,
		VoidedAt:      o.VoidedAt.T,
		Metadata:      o.Metadata.S,
		StripeCreated: o.Created.T,
	}), nil
}

// one is the plan of an event that changes one object, its own.
func one(k kind, id, status string, present payload, customer ref, row any) plan {
	return plan{{kind: k, id: id, change: &change{kind: k, id: id, status: status, present: present, customer: customer, row: row}}}
}

// paymentMethodPlan stores a payment method's summary (never its
// fingerprint); a detached method names no customer.
func paymentMethodPlan(ev Event) (plan, error) {
	var o stripejson.PaymentMethod
	p, err := paymentMethodKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	m := o.Summary
	return one(paymentMethodKind, o.ID, "", p, o.Customer, &models.PaymentMethod{CustomerID: o.Customer.Ptr(), Type: m.Type,
		Brand: m.Brand, Last4: m.Last4, ExpMonth: m.ExpMonth, ExpYear: m.ExpYear, Wallet: m.WalletType(), Metadata: o.Metadata.S,
		StripeCreated: o.Created.T}), nil
}

func productPlan(ev Event) (plan, error) {
	var o stripejson.Product
	p, err := productKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	pl := one(productKind, o.ID, "", p, "", &models.Product{Name: o.Name, Active: o.Active, Metadata: o.Metadata.S, StripeCreated: o.Created.T})
	pl[0].change.deletes = ev.Type == "product.deleted"
	return pl, nil
}

func pricePlan(ev Event) (plan, error) {
	var o stripejson.Price
	p, err := priceKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	row := &models.Price{ProductID: o.Product.Ptr(), Type: o.Type, Currency: o.Currency, UnitAmount: o.UnitAmount,
		Nickname: o.Nickname, LookupKey: o.LookupKey, Active: o.Active, Metadata: o.Metadata.S, StripeCreated: o.Created.T}
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
	var o stripejson.SubscriptionSchedule
	p, err := subscriptionScheduleKind.decode(ev, &o, &o.Common)
	if err != nil {
		return nil, err
	}
	sub := o.Subscription
	if sub == "" {
		sub = o.ReleasedSubscription
	}
	row := &models.SubscriptionSchedule{CustomerID: o.Customer.Ptr(), SubscriptionID: sub.Ptr(), EndBehavior: o.EndBehavior,
		CanceledAt: o.CanceledAt.T, CompletedAt: o.CompletedAt.T, ReleasedAt: o.ReleasedAt.T, Metadata: o.Metadata.S,
		StripeCreated: o.Created.T}
	if ph := o.CurrentPhase; ph != nil {
		row.CurrentPhaseStart, row.CurrentPhaseEnd = ph.StartDate.T, ph.EndDate.T
	}
	return one(subscriptionScheduleKind, o.ID, o.Status, p, o.Customer, row), nil
}
