package billingtest

// FailedInvoice is an invoice, in one Stripe API version, whose first
// attempt to pay it fails (charge.failed, payment_intent.payment_failed,
// invoice.payment_failed) and that is then voided (its payment intent
// canceled) or paid by the same payment intent's second charge. Ids are
// VersionLifecycle's for the seed; the customer and subscription have no
// events of their own.
type FailedInvoice struct {
	Version string
	IDs     VersionIDs
	Paid    bool // paid in the end, else void
	// Events are Stripe's, in its order.
	Events [][]byte
	// Payments are the InvoicePayments Stripe lists for the invoice once
	// the events are sent (GET /v1/invoice_payments?invoice=): one, of
	// the payment intent, paid or canceled; none before 2025-03-31.basil.
	Payments []map[string]any
}

// FailedAttempt builds the FailedInvoice of seed in version, paid in the
// end or voided. Whatever the version, its records link the invoice to
// the payment intent and to its latest charge (the failed one when
// voided), and both charges and the intent to the invoice: before
// 2025-03-31.basil the events say so; from it the invoice's payments
// (Payments) say it for an invoice that is never paid.
func FailedAttempt(version string, seed int, paid bool) FailedInvoice {
	b := newVersionBuilder(version, seed)
	f := FailedInvoice{Version: version, IDs: b.id, Paid: paid}
	add := func(sec int, typ string, o map[string]any) { f.Events = append(f.Events, b.event(typ, b.at(sec), o)) }
	add(1, "invoice.created", b.invoice("draft", 0, "", false))
	add(2, "invoice.finalized", b.invoice("open", 0, "", false))
	add(3, "charge.failed", b.charge(b.id.FailedCharge, "failed", b.at(3), 0))
	add(3, "payment_intent.payment_failed", b.paymentIntent("requires_payment_method", b.id.FailedCharge, true))
	add(3, "invoice.payment_failed", b.invoice("open", 1, b.id.FailedCharge, false))
	ip := b.defines("invoice", "payments.data[].payment.payment_intent")
	var payment map[string]any
	if ip {
		payment = b.invoicePayment()
	}
	if paid {
		add(10, "charge.succeeded", b.charge(b.id.Charge, "succeeded", b.at(10), 0))
		add(10, "payment_intent.succeeded", b.paymentIntent("succeeded", b.id.Charge, false))
		if ip {
			add(11, "invoice_payment.paid", payment)
		}
		add(11, "invoice.payment_succeeded", b.invoice("paid", 2, b.id.Charge, false))
		add(11, "invoice.paid", b.invoice("paid", 2, b.id.Charge, false))
	} else {
		intent := b.paymentIntent("canceled", b.id.FailedCharge, true)
		intent["canceled_at"], intent["cancellation_reason"] = b.at(20).Unix(), "void_invoice"
		add(20, "payment_intent.canceled", intent)
		add(20, "invoice.voided", b.invoice("void", 1, b.id.FailedCharge, false))
		if ip {
			payment["status"], payment["amount_paid"] = "canceled", 0
			payment["status_transitions"] = map[string]any{"paid_at": nil, "canceled_at": b.at(20).Unix()}
		}
	}
	if ip {
		f.Payments = []map[string]any{payment}
	}
	return f
}
