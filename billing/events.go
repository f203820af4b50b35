package billing

import (
	"slices"
	"time"
)

// HandledTypes lists the event types the worker applies, sorted: those
// handlers.register gives a handler, the one list of them. Every other
// type is recorded in the ledger as ignored.
func HandledTypes() []string {
	m := NewMux()
	handlers{now: time.Now}.register(m)
	return m.Types()
}

// since names the event types Stripe sends only from an API version on:
// an endpoint of an older version needs no subscription to them.
var since = map[string]string{
	// InvoicePayment objects exist from 2025-03-31.basil, where an invoice
	// no longer names its payment intent and charge; before it the invoice
	// and charge events carry the links.
	"invoice_payment.paid": "2025-03-31.basil",
}

// NeededTypes lists, sorted, the event types an endpoint of apiVersion
// must send for the records to be whole: every handled type but previews
// (they store nothing) and the types of later versions. An empty
// apiVersion (the account's default, unknown here) needs them all.
func NeededTypes(apiVersion string) []string {
	var out []string
	for _, t := range HandledTypes() {
		if previewTypes[t] {
			continue
		}
		// Stripe's versions begin with their date, so they sort in time.
		if v, ok := since[t]; ok && apiVersion != "" && apiVersion < v {
			continue
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
