package ledger

import (
	"context"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/verify"
)

// Handlers adapt p to the consumer: the Handler applies one event, the
// BatchHandler a batch in one transaction, each with the envelope the
// consumer's Verify read and the signature that signs it (a delivery
// that did not pass Verify, in a test, is parsed here); what the Processor did with an applied event is reported as
// the consumer.Handled of the same name. Their errors already say their
// class (malformed → permanent, database down → outage).
func Handlers(p *Processor) (consumer.Handler, consumer.BatchHandler) {
	batch := consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		events, failed := make([]billing.Event, len(ds)), make([]error, len(ds))
		for i, d := range ds {
			if d.Envelope.ID != "" {
				// Read once, by the consumer's Verify: not read again.
				events[i] = billing.NewEvent(verify.Event{Envelope: d.Envelope, Body: d.Body, Signature: d.Signature})
				continue
			}
			events[i], failed[i] = billing.Parse(d.Body)
			events[i].Signature = d.Signature
		}
		outcomes, err := p.Apply(ctx, events, failed)
		if err != nil {
			return nil, err
		}
		errs := make([]error, len(ds))
		for i, o := range outcomes {
			if errs[i] = o.Err; o.Err == nil {
				ds[i].Report(consumer.Handled(o.Result))
			}
		}
		return errs, nil
	})
	// One event is a batch of one, by the same protocol.
	one := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		errs, err := batch(ctx, []consumer.Delivery{d})
		if err != nil {
			return err
		}
		return errs[0]
	})
	return one, batch
}
