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
	now := h.now()
	_, err := apply(ctx, tx, ev, now, change{
		kind:     customerKind,
		id:       o.ID,
		livemode: o.Livemode,
		fields: map[string]any{
			"email":          o.Email,
			"name":           o.Name,
			"currency":       o.Currency,
			"balance":        o.Balance,
			"stripe_created": o.Created.t,
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
	now := h.now()
	fields := map[string]any{
		"currency":             o.Currency,
		"current_period_start": o.CurrentPeriodStart.t,
		"current_period_end":   o.CurrentPeriodEnd.t,
		"cancel_at_period_end": o.CancelAtPeriodEnd,
		"cancel_at":            o.CancelAt.t,
		"canceled_at":          o.CanceledAt.t,
		"ended_at":             o.EndedAt.t,
		"trial_start":          o.TrialStart.t,
		"trial_end":            o.TrialEnd.t,
		"stripe_created":       o.Created.t,
		"price_id":             nil,
		"quantity":             nil,
	}
	if len(o.Items.Data) > 0 {
		item := o.Items.Data[0]
		fields["price_id"] = ref(item.Price.ID).ptr()
		fields["quantity"] = item.Quantity
		if o.CurrentPeriodStart.t == nil {
			fields["current_period_start"] = item.CurrentPeriodStart.t
			fields["current_period_end"] = item.CurrentPeriodEnd.t
		}
	}
	_, err := apply(ctx, tx, ev, now, change{
		kind:     subscriptionKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		fields:   fields,
		refs:     map[string]ref{"customer_id": o.Customer},
	})
	return err
}

func (h handlers) invoice(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o invoiceObject
	if err := decode(ev, "invoice", &o, &o.common); err != nil {
		return err
	}
	now := h.now()
	_, err := apply(ctx, tx, ev, now, change{
		kind:     invoiceKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		fields: map[string]any{
			"number":             o.Number,
			"currency":           o.Currency,
			"amount_due":         o.AmountDue,
			"amount_paid":        o.AmountPaid,
			"amount_remaining":   o.AmountRemaining,
			"subtotal":           o.Subtotal,
			"total":              o.Total,
			"attempt_count":      o.AttemptCount,
			"hosted_invoice_url": o.HostedInvoiceURL,
			"due_date":           o.DueDate.t,
			"period_start":       o.PeriodStart.t,
			"period_end":         o.PeriodEnd.t,
			"stripe_created":     o.Created.t,
		},
		refs: map[string]ref{
			"customer_id":       o.Customer,
			"subscription_id":   o.subscription(),
			"payment_intent_id": o.PaymentIntent,
			"charge_id":         o.Charge,
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
	now := h.now()
	fields := map[string]any{
		"currency":        o.Currency,
		"amount":          o.Amount,
		"amount_received": o.AmountReceived,
		"captured":        o.Status == "succeeded",
		"paid":            o.Status == "succeeded",
		"failure_code":    nil,
		"failure_message": nil,
		"stripe_created":  o.Created.t,
	}
	if e := o.LastPaymentError; e != nil {
		fields["failure_code"] = e.Code
		fields["failure_message"] = e.Message
	}
	_, err := apply(ctx, tx, ev, now, change{
		kind:     paymentIntentKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		fields:   fields,
		refs: map[string]ref{
			"customer_id": o.Customer,
			"invoice_id":  o.Invoice,
			"charge_id":   o.LatestCharge,
		},
	})
	return err
}

func (h handlers) charge(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o chargeObject
	if err := decode(ev, models.ObjectCharge, &o, &o.common); err != nil {
		return err
	}
	now := h.now()
	_, err := apply(ctx, tx, ev, now, change{
		kind:     chargeKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		customer: o.Customer,
		fields: map[string]any{
			"currency":        o.Currency,
			"amount":          o.Amount,
			"amount_captured": o.AmountCaptured,
			"amount_refunded": o.AmountRefunded,
			"captured":        o.Captured,
			"refunded":        o.Refunded,
			"paid":            o.Paid,
			"failure_code":    o.FailureCode,
			"failure_message": o.FailureMessage,
			"stripe_created":  o.Created.t,
		},
		refs: map[string]ref{
			"customer_id":       o.Customer,
			"invoice_id":        o.Invoice,
			"payment_intent_id": o.PaymentIntent,
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
		fields: map[string]any{
			"currency":       o.Currency,
			"amount":         o.Amount,
			"reason":         o.Reason,
			"failure_reason": o.FailureReason,
			"stripe_created": o.Created.t,
		},
		refs: map[string]ref{"charge_id": o.Charge, "payment_intent_id": o.PaymentIntent},
	})
	return err
}

func (h handlers) dispute(ctx context.Context, tx *gorm.DB, ev Event) error {
	var o disputeObject
	if err := decode(ev, "dispute", &o, &o.common); err != nil {
		return err
	}
	fields := map[string]any{
		"currency":             o.Currency,
		"amount":               o.Amount,
		"reason":               o.Reason,
		"is_charge_refundable": o.IsChargeRefundable,
		"evidence_due_by":      nil,
		"stripe_created":       o.Created.t,
	}
	if o.EvidenceDetails != nil {
		fields["evidence_due_by"] = o.EvidenceDetails.DueBy.t
	}
	_, err := apply(ctx, tx, ev, h.now(), change{
		kind:     disputeKind,
		id:       o.ID,
		status:   o.Status,
		livemode: o.Livemode,
		fields:   fields,
		refs:     map[string]ref{"charge_id": o.Charge, "payment_intent_id": o.PaymentIntent},
	})
	return err
}

// checkoutSession links what a completed checkout created, creating rows
// for what has not arrived yet. Sessions themselves are not stored.
func (h handlers) checkoutSession(_ context.Context, tx *gorm.DB, ev Event) error {
	var o checkoutSessionObject
	if err := decode(ev, "checkout.session", &o, &o.common); err != nil {
		return err
	}
	now := h.now()
	if err := ensureStub(tx, customerKind, o.Customer, o.Livemode, nil, now); err != nil {
		return err
	}
	for _, t := range []struct {
		kind kind
		id   ref
	}{{subscriptionKind, o.Subscription}, {paymentIntentKind, o.PaymentIntent}, {invoiceKind, o.Invoice}} {
		if err := ensureStub(tx, t.kind, t.id, o.Livemode, nil, now); err != nil {
			return err
		}
		if err := link(tx, t.kind, t.id, "customer_id", o.Customer); err != nil {
			return err
		}
	}
	if err := link(tx, invoiceKind, o.Invoice, "subscription_id", o.Subscription); err != nil {
		return err
	}
	return link(tx, paymentIntentKind, o.PaymentIntent, "invoice_id", o.Invoice)
}
