package billing

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// handlers builds the per-object handlers; now stamps created_at/updated_at.
type handlers struct{ now func() time.Time }

func (h handlers) register(m *Mux) {
	for _, t := range []string{"customer.created", "customer.updated", "customer.deleted"} {
		m.HandleFunc(t, h.customer)
	}
	for _, t := range []string{"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
		"customer.subscription.pending_update_applied", "customer.subscription.pending_update_expired"} {
		m.HandleFunc(t, h.subscription)
	}
	for _, t := range []string{"invoice.created", "invoice.finalized", "invoice.updated", "invoice.paid",
		"invoice.payment_succeeded", "invoice.payment_failed", "invoice.payment_action_required", "invoice.voided",
		"invoice.marked_uncollectible", "invoice.deleted", "invoice.sent", "invoice.upcoming", "invoice.finalization_failed"} {
		m.HandleFunc(t, h.invoice)
	}
	for _, t := range []string{"payment_intent.created", "payment_intent.succeeded", "payment_intent.payment_failed",
		"payment_intent.canceled", "payment_intent.processing", "payment_intent.requires_action",
		"payment_intent.amount_capturable_updated", "payment_intent.partially_funded"} {
		m.HandleFunc(t, h.paymentIntent)
	}
	for _, t := range []string{"charge.succeeded", "charge.failed", "charge.pending", "charge.captured",
		"charge.refunded", "charge.updated", "charge.expired"} {
		m.HandleFunc(t, h.charge)
	}
	for _, t := range []string{"charge.refund.updated", "refund.created", "refund.updated", "refund.failed"} {
		m.HandleFunc(t, h.refund)
	}
	for _, t := range []string{"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
		"charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"} {
		m.HandleFunc(t, h.dispute)
	}
	m.HandleFunc("invoice_payment.paid", h.invoicePayment)
	m.HandleFunc("checkout.session.completed", h.checkoutSession)
	m.HandleFunc("checkout.session.async_payment_succeeded", h.checkoutSession)
	m.HandleFunc("checkout.session.async_payment_failed", h.checkoutSession)
	m.HandleFunc("checkout.session.expired", h.checkoutSession)
	for _, t := range []string{"credit_note.created", "credit_note.updated", "credit_note.voided"} {
		m.HandleFunc(t, h.creditNote)
	}
}

// previewTypes are the event types whose object Stripe may send without an
// id: a preview of what will be, not an object to store.
var previewTypes = map[string]bool{"invoice.upcoming": true}

// isPreview reports whether ev carries a preview: an object without an id
// in an event of a preview type. Any other object without an id is a
// schema failure.
func isPreview(ev Event) bool { return ev.ObjectID == "" && previewTypes[ev.Type] }

func (h handlers) customer(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o customerObject
	p, err := customerKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	_, err = apply(ctx, tx, ev, h.now(), change{
		kind:    customerKind,
		id:      o.ID,
		present: p,
		row: &models.Customer{
			Email:         o.Email,
			Name:          o.Name,
			Currency:      o.Currency,
			Balance:       o.Balance,
			Metadata:      o.Metadata.s,
			StripeCreated: o.Created.t,
		},
	})
	if err != nil {
		return err
	}
	if ev.Type == "customer.deleted" {
		return markDeleted(ctx, tx, customerKind, o.ID)
	}
	return nil
}

func (h handlers) subscription(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o subscriptionObject
	p, err := subscriptionKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	items, err := decodeItems(ev, o, p)
	if err != nil {
		return err
	}
	row := &models.Subscription{
		CustomerID:         o.Customer.ptr(),
		Currency:           o.Currency,
		CurrentPeriodStart: o.CurrentPeriodStart.t,
		CurrentPeriodEnd:   o.CurrentPeriodEnd.t,
		CancelAtPeriodEnd:  o.CancelAtPeriodEnd,
		CancelAt:           o.CancelAt.t,
		CanceledAt:         o.CanceledAt.t,
		EndedAt:            o.EndedAt.t,
		TrialStart:         o.TrialStart.t,
		TrialEnd:           o.TrialEnd.t,
		Metadata:           o.Metadata.s,
		StripeCreated:      o.Created.t,
	}
	if !p.has("current_period_start") {
		// From 2025-03-31.basil each item has its own period: the
		// subscription's is their span.
		row.CurrentPeriodStart, row.CurrentPeriodEnd = items.span()
	}
	applied, err := apply(ctx, tx, ev, h.now(), change{
		kind:     subscriptionKind,
		id:       o.ID,
		status:   o.Status,
		present:  p,
		customer: o.Customer,
		row:      row,
	})
	if err != nil || !applied || o.Items == nil {
		return err
	}
	return writeItems(tx, ev, h.now(), o.ID, items, !o.Items.HasMore)
}

func (h handlers) invoice(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o invoiceObject
	p, err := invoiceKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	row := &models.Invoice{
		CustomerID:          o.Customer.ptr(),
		SubscriptionID:      o.subscription().ptr(),
		PaymentIntentID:     o.PaymentIntent.ptr(),
		ChargeID:            o.Charge.ptr(),
		Number:              o.Number,
		Currency:            o.Currency,
		AmountDue:           o.AmountDue,
		AmountPaid:          o.AmountPaid,
		AmountRemaining:     o.AmountRemaining,
		Subtotal:            o.Subtotal,
		Total:               o.Total,
		AttemptCount:        o.AttemptCount,
		HostedInvoiceURL:    o.HostedInvoiceURL,
		DueDate:             o.DueDate.t,
		PeriodStart:         o.PeriodStart.t,
		PeriodEnd:           o.PeriodEnd.t,
		PaidAt:              o.paidAt(),
		NextPaymentAttempt:  o.NextPaymentAttempt.t,
		Tax:                 o.tax(),
		TotalDiscountAmount: sum(o.TotalDiscountAmounts),
		Metadata:            o.Metadata.s,
		StripeCreated:       o.Created.t,
	}
	row.BilledPeriodStart, row.BilledPeriodEnd = o.billedPeriod()
	_, err = apply(ctx, tx, ev, h.now(), change{
		kind:     invoiceKind,
		id:       o.ID,
		status:   o.Status,
		present:  p,
		customer: o.Customer,
		row:      row,
	})
	if err != nil {
		return err
	}
	if o.Payments != nil {
		for i, raw := range o.Payments.Data {
			path := fmt.Sprintf("invoice.payments.data[%d]", i)
			if err := h.applyInvoicePayment(ctx, tx, ev, raw, path, ref(o.ID)); err != nil {
				return err
			}
		}
	}
	if ev.Type == "invoice.deleted" {
		return markDeleted(ctx, tx, invoiceKind, o.ID)
	}
	return nil
}

// invoicePayment applies an InvoicePayment (API versions from
// 2025-03-31.basil), the link between an invoice and what paid it.
func (h handlers) invoicePayment(ctx context.Context, tx *gorm.DB, ev Event) error {
	return h.applyInvoicePayment(ctx, tx, ev, ev.Object, invoicePaymentKind.objectType, "")
}

// applyInvoicePayment applies the InvoicePayment raw found at path of ev
// (data.object, or an item of an invoice's payments), whose invoice is
// invoice when it names none, and carries its links to the invoice, the
// payment intent and the charges.
func (h handlers) applyInvoicePayment(ctx context.Context, tx *gorm.DB, ev Event, raw []byte, path string, invoice ref) error {
	var o invoicePaymentObject
	k := invoicePaymentKind
	requires := k.requires
	if invoice != "" {
		requires = []string{"status"} // an item of the invoice's own list
	}
	p, err := decode(ev, raw, path, k.objectType, &o, &o.common, requires...)
	if err != nil {
		return err
	}
	if o.Invoice != "" {
		invoice = o.Invoice
	}
	var pi, charge ref
	if o.Payment != nil {
		pi, charge = o.Payment.PaymentIntent, o.Payment.Charge
	}
	row := &models.InvoicePayment{
		InvoiceID:       invoice.ptr(),
		PaymentIntentID: pi.ptr(),
		ChargeID:        charge.ptr(),
		Currency:        o.Currency,
		AmountPaid:      o.AmountPaid,
		AmountRequested: o.AmountRequested,
		StripeCreated:   o.Created.t,
	}
	if o.StatusTransitions != nil {
		row.PaidAt = o.StatusTransitions.PaidAt.t
	}
	_, err = apply(ctx, tx, ev, h.now(), change{kind: k, id: o.ID, status: o.Status, present: p, row: row})
	if err != nil {
		return err
	}
	return linkInvoicePayment(ctx, tx, ev, h.now(), invoice, pi, charge)
}

func (h handlers) paymentIntent(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o paymentIntentObject
	p, err := paymentIntentKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	succeeded := o.Status == "succeeded"
	row := &models.Payment{
		CustomerID:     o.Customer.ptr(),
		InvoiceID:      o.Invoice.ptr(),
		ChargeID:       o.LatestCharge.ptr(),
		Currency:       o.Currency,
		Amount:         o.Amount,
		AmountReceived: o.AmountReceived,
		Captured:       &succeeded,
		Paid:           &succeeded,
		Metadata:       o.Metadata.s,
		StripeCreated:  o.Created.t,
	}
	if e := o.LastPaymentError; e != nil {
		row.FailureCode, row.FailureMessage = e.Code, e.Message
	}
	_, err = apply(ctx, tx, ev, h.now(), change{
		kind:     paymentIntentKind,
		id:       o.ID,
		status:   o.Status,
		present:  p,
		customer: o.Customer,
		row:      row,
	})
	if err != nil || p.has("invoice") {
		return err // before basil the objects name each other
	}
	return settleLinks(tx, ref(o.ID))
}

func (h handlers) charge(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o chargeObject
	p, err := chargeKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	row := &models.Payment{
		CustomerID:      o.Customer.ptr(),
		InvoiceID:       o.Invoice.ptr(),
		PaymentIntentID: o.PaymentIntent.ptr(),
		Currency:        o.Currency,
		Amount:          o.Amount,
		AmountCaptured:  o.AmountCaptured,
		AmountRefunded:  o.AmountRefunded,
		Captured:        o.Captured,
		Refunded:        o.Refunded,
		Paid:            o.Paid,
		FailureCode:     o.FailureCode,
		FailureMessage:  o.FailureMessage,
		Metadata:        o.Metadata.s,
		StripeCreated:   o.Created.t,
	}
	if pm := o.PaymentMethodDetails; pm != nil {
		row.PaymentMethodType, row.PaymentMethodBrand, row.PaymentMethodLast4 = pm.Type, pm.Brand, pm.Last4
		row.PaymentMethodExpMonth, row.PaymentMethodExpYear, row.PaymentMethodWallet = pm.ExpMonth, pm.ExpYear, pm.wallet()
	}
	_, err = apply(ctx, tx, ev, h.now(), change{
		kind:     chargeKind,
		id:       o.ID,
		status:   o.Status,
		present:  p,
		customer: o.Customer,
		row:      row,
	})
	if err != nil || p.has("invoice") {
		return err // before basil the objects name each other
	}
	return settleLinks(tx, o.PaymentIntent)
}

func (h handlers) refund(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o refundObject
	p, err := refundKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	_, err = apply(ctx, tx, ev, h.now(), change{
		kind:    refundKind,
		id:      o.ID,
		status:  o.Status,
		present: p,
		row: &models.Refund{
			ChargeID:        o.Charge.ptr(),
			PaymentIntentID: o.PaymentIntent.ptr(),
			Currency:        o.Currency,
			Amount:          o.Amount,
			Reason:          o.Reason,
			FailureReason:   o.FailureReason,
			Metadata:        o.Metadata.s,
			StripeCreated:   o.Created.t,
		},
	})
	return err
}

func (h handlers) dispute(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o disputeObject
	p, err := disputeKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	row := &models.Dispute{
		ChargeID:           o.Charge.ptr(),
		PaymentIntentID:    o.PaymentIntent.ptr(),
		Currency:           o.Currency,
		Amount:             o.Amount,
		Reason:             o.Reason,
		IsChargeRefundable: o.IsChargeRefundable,
		Metadata:           o.Metadata.s,
		StripeCreated:      o.Created.t,
	}
	if o.EvidenceDetails != nil {
		row.EvidenceDueBy = o.EvidenceDetails.DueBy.t
	}
	_, err = apply(ctx, tx, ev, h.now(), change{
		kind:    disputeKind,
		id:      o.ID,
		status:  o.Status,
		present: p,
		row:     row,
	})
	return err
}

// checkoutSession stores the session (what ties a checkout to our user:
// client_reference_id, metadata) and links what a completed checkout
// created, creating rows for what has not arrived yet.
func (h handlers) checkoutSession(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o checkoutSessionObject
	p, err := checkoutSessionKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	now, env := h.now(), envelopeOf(ev)
	customer := o.Customer.ptr()
	_, err = apply(ctx, tx, ev, now, change{
		kind:     checkoutSessionKind,
		id:       o.ID,
		status:   o.Status,
		present:  p,
		customer: o.Customer,
		row: &models.CheckoutSession{
			Mode:              o.Mode,
			PaymentStatus:     o.PaymentStatus,
			ClientReferenceID: o.ClientReferenceID,
			CustomerID:        customer,
			SubscriptionID:    o.Subscription.ptr(),
			PaymentIntentID:   o.PaymentIntent.ptr(),
			InvoiceID:         o.Invoice.ptr(),
			Currency:          o.Currency,
			AmountTotal:       o.AmountTotal,
			ExpiresAt:         o.ExpiresAt.t,
			Metadata:          o.Metadata.s,
			StripeCreated:     o.Created.t,
		},
	})
	if err != nil {
		return err
	}
	for _, t := range []struct {
		kind kind
		id   ref
		refs any
	}{
		{subscriptionKind, o.Subscription, &models.Subscription{CustomerID: customer}},
		{paymentIntentKind, o.PaymentIntent, &models.Payment{CustomerID: customer, InvoiceID: o.Invoice.ptr()}},
		{invoiceKind, o.Invoice, &models.Invoice{CustomerID: customer, SubscriptionID: o.Subscription.ptr()}},
	} {
		if err := ensureStub(tx, t.kind, t.id, env, now); err != nil {
			return err
		}
		if err := link(ctx, tx, t.kind, t.id, t.refs); err != nil {
			return err
		}
	}
	return nil
}

func (h handlers) creditNote(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o creditNoteObject
	p, err := creditNoteKind.decode(ev, &o, &o.common)
	if err != nil {
		return err
	}
	_, err = apply(ctx, tx, ev, h.now(), change{
		kind:     creditNoteKind,
		id:       o.ID,
		status:   o.Status,
		present:  p,
		customer: o.Customer,
		row: &models.CreditNote{
			InvoiceID:     o.Invoice.ptr(),
			CustomerID:    o.Customer.ptr(),
			Number:        o.Number,
			Type:          o.Type,
			Reason:        o.Reason,
			Currency:      o.Currency,
			Amount:        o.Amount,
			Total:         o.Total,
			Memo:          o.Memo,
			VoidedAt:      o.VoidedAt.t,
			Metadata:      o.Metadata.s,
			StripeCreated: o.Created.t,
		},
	})
	return err
}
