package ledger

import (
	"context"
	"fmt"
	"slices"

	"github.com/stripe-billing/billing/billing"
)

// withPayments is events with, for each that needs them
// (billing.PaymentsToFetch: an attempt on an invoice of 2025-03-31.basil
// or later), the InvoicePayments Stripe lists for its invoice, fetched
// before any transaction opens: a call to Stripe never waits with row
// locks held. Without a fetcher such an event is applied without them
// (`billing history` then says the invoice's attempts are unknown). A
// failed fetch is the event's outcome in failed: it fails alone, to be
// tried again, and the others go on. The slices passed in are not
// changed.
func (p *Processor) withPayments(ctx context.Context, events []billing.Event, failed []error) ([]billing.Event, []error) {
	if p.fetcher == nil {
		return events, failed
	}
	cloned := false
	for i, ev := range events {
		if i < len(failed) && failed[i] != nil {
			continue
		}
		if _, ok := billing.PaymentsToFetch(ev); !ok || !p.handles(ev.Type) {
			continue
		}
		if !cloned {
			events, failed = slices.Clone(events), append(slices.Clone(failed), make([]error, len(events)-len(failed))...)
			cloned = true
		}
		events[i], failed[i] = p.paymentsOf(ctx, ev)
	}
	return events, failed
}

// paymentsOf is ev with its invoice's payments from Stripe when it needs
// them (billing.PaymentsToFetch) and there is a fetcher, else ev.
func (p *Processor) paymentsOf(ctx context.Context, ev billing.Event) (billing.Event, error) {
	ref, ok := billing.PaymentsToFetch(ev)
	if !ok || p.fetcher == nil {
		return ev, nil
	}
	payments, err := p.fetcher.FetchInvoicePayments(ctx, ref)
	if err != nil {
		return ev, fmt.Errorf("ledger: event %s: the payments of invoice %s: %w", ev.ID, ref.ID, err)
	}
	return ev.WithPayments(payments), nil
}
