package ledger

import (
	"context"

	"github.com/stripe-billing/billing/consumer"
)

// Handlers adapt p to the consumer: the Handler applies one event, the
// BatchHandler a batch in one transaction, each with the signature that
// signs it; what the Processor did with an applied event is reported as
// the consumer.Handled of the same name. Their errors already say their
// class (malformed → permanent, database down → outage).
func Handlers(p *Processor) (consumer.Handler, consumer.BatchHandler) {
	batch := consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		raws, signatures := make([][]byte, len(ds)), make([]string, len(ds))
		for i, d := range ds {
			raws[i], signatures[i] = d.Body, d.Signature
		}
		outcomes, err := p.ProcessBatchSigned(ctx, raws, signatures)
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
