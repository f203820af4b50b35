package consumer

import (
	"context"

	"github.com/stripe-billing/billing/billing"
)

// Processor applies a raw Stripe event: billing.Processor.
type Processor interface {
	Process(ctx context.Context, raw []byte) (billing.Result, error)
}

// Process adapts a Processor to a Handler. Its errors already say their
// class (malformed → permanent, database down → outage).
func Process(p Processor) Handler {
	return HandlerFunc(func(ctx context.Context, d Delivery) error {
		_, err := p.Process(ctx, d.Body)
		return err
	})
}
