package main

import (
	"context"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/consumer"
)

// process adapts billing's Processor to the consumer: the Handler applies
// one event, the BatchHandler a batch in one transaction, each with the
// signature that signs it; what billing did with an applied event is
// reported as the consumer.Handled of the same name. Their errors already
// say their class (malformed → permanent, database down → outage).
func process(p *billing.Processor) (consumer.Handler, consumer.BatchHandler) {
	one := consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
		res, err := p.ProcessSigned(ctx, d.Body, d.Signature)
		if err == nil {
			d.Report(consumer.Handled(res))
		}
		return err
	})
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
	return one, batch
}
