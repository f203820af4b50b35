package billing

import (
	"context"
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
	m.HandleFunc("checkout.session.completed", h.checkoutSession)
	m.HandleFunc("checkout.session.async_payment_succeeded", h.checkoutSession)
	m.HandleFunc("checkout.session.async_payment_failed", h.checkoutSession)
}

func (h handlers) customer(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o customerObject
	if err := decode(ev, "customer", &o, &o.common); err != nil {
		return err
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     customerKind,
		id:       o.ID,
		livemode: o.Livemode,
		row: &models.Customer{
			Email:         o.Email,
			Name:          o.Name,
			Currency:      o.Currency,
			Balance:       o.Balance,
			StripeCreated: o.Created.t,
		},
	})
	if err != nil {
		return err
	}
	if ev.Type == "customer.deleted" {
		return markDeleted(tx, customerKind, o.ID)
	}
	return nil
}

func (h handlers) subscription(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o subscriptionObject
	if err := decode(ev, "subscription", &o, &o.common); err != nil {
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
		StripeCreated:      o.Created.t,
	}
	if len(o.Items.Data) > 0 {
		item := o.Items.Data[0]
		row.PriceID = ref(item.Price.ID).ptr()
		row.Quantity = item.Quantity
		if row.CurrentPeriodStart == nil {
			row.CurrentPeriodStart = item.CurrentPeriodStart.t
			row.CurrentPeriodEnd = item.CurrentPeriodEnd.t
		}
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     subscriptionKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		row:      row,
	})
	return err
}

func (h handlers) invoice(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o invoiceObject
	if err := decode(ev, "invoice", &o, &o.common); err != nil {
		return err
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     invoiceKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		row: &models.Invoice{
			CustomerID:       o.Customer.ptr(),
			SubscriptionID:   o.subscription().ptr(),
			PaymentIntentID:  o.PaymentIntent.ptr(),
			ChargeID:         o.Charge.ptr(),
			Number:           o.Number,
			Currency:         o.Currency,
			AmountDue:        o.AmountDue,
			AmountPaid:       o.AmountPaid,
			AmountRemaining:  o.AmountRemaining,
			Subtotal:         o.Subtotal,
			Total:            o.Total,
			AttemptCount:     o.AttemptCount,
			HostedInvoiceURL: o.HostedInvoiceURL,
			DueDate:          o.DueDate.t,
			PeriodStart:      o.PeriodStart.t,
			PeriodEnd:        o.PeriodEnd.t,
			StripeCreated:    o.Created.t,
		},
	})
	if err != nil {
		return err
	}
	if ev.Type == "invoice.deleted" {
		return markDeleted(tx, invoiceKind, o.ID)
	}
	return nil
}

func (h handlers) paymentIntent(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o paymentIntentObject
	if err := decode(ev, models.ObjectPaymentIntent, &o, &o.common); err != nil {
		return err
	}
	row := &models.Payment{
		CustomerID:     o.Customer.ptr(),
		InvoiceID:      o.Invoice.ptr(),
		ChargeID:       o.LatestCharge.ptr(),
		Currency:       o.Currency,
		Amount:         o.Amount,
		AmountReceived: o.AmountReceived,
		Captured:       o.Status == "succeeded",
		Paid:           o.Status == "succeeded",
		StripeCreated:  o.Created.t,
	}
	if e := o.LastPaymentError; e != nil {
		row.FailureCode, row.FailureMessage = e.Code, e.Message
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     paymentIntentKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		row:      row,
	})
	return err
}

func (h handlers) charge(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o chargeObject
	if err := decode(ev, models.ObjectCharge, &o, &o.common); err != nil {
		return err
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     chargeKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		row: &models.Payment{
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
			StripeCreated:   o.Created.t,
		},
	})
	return err
}

func (h handlers) refund(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o refundObject
	if err := decode(ev, "refund", &o, &o.common); err != nil {
		return err
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     refundKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		row: &models.Refund{
			ChargeID:        o.Charge.ptr(),
			PaymentIntentID: o.PaymentIntent.ptr(),
			Currency:        o.Currency,
			Amount:          o.Amount,
			Reason:          o.Reason,
			FailureReason:   o.FailureReason,
			StripeCreated:   o.Created.t,
		},
	})
	return err
}

func (h handlers) dispute(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o disputeObject
	if err := decode(ev, "dispute", &o, &o.common); err != nil {
		return err
	}
	row := &models.Dispute{
		ChargeID:           o.Charge.ptr(),
		PaymentIntentID:    o.PaymentIntent.ptr(),
		Currency:           o.Currency,
		Amount:             o.Amount,
		Reason:             o.Reason,
		IsChargeRefundable: o.IsChargeRefundable,
		StripeCreated:      o.Created.t,
	}
	if o.EvidenceDetails != nil {
		row.EvidenceDueBy = o.EvidenceDetails.DueBy.t
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     disputeKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		row:      row,
	})
	return err
}

// checkoutSession links what a completed checkout created, creating rows
// for what has not arrived yet. Sessions themselves are not stored.
func (h handlers) checkoutSession(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o checkoutSessionObject
	if err := decode(ev, "checkout.session", &o, &o.common); err != nil {
		return err
	}
	now := h.now()
	if err := ensureStub(tx, customerKind, o.Customer, o.Livemode, now); err != nil {
		return err
	}
	customer := o.Customer.ptr()
	for _, t := range []struct {
		kind kind
		id   ref
		refs any
	}{
		{subscriptionKind, o.Subscription, &models.Subscription{CustomerID: customer}},
		{paymentIntentKind, o.PaymentIntent, &models.Payment{CustomerID: customer, InvoiceID: o.Invoice.ptr()}},
		{invoiceKind, o.Invoice, &models.Invoice{CustomerID: customer, SubscriptionID: o.Subscription.ptr()}},
	} {
		if err := ensureStub(tx, t.kind, t.id, o.Livemode, now); err != nil {
			return err
		}
		if err := link(ctx, tx, t.kind, t.id, t.refs); err != nil {
			return err
		}
	}
	return nil
}
