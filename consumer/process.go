package consumer

import (
	"context"

	"github.com/stripe-billing/billing/billing"
)

// Processor applies a raw Stripe event, keeping the signature that signs
// it beside it: billing.Processor.
type Processor interface {
	ProcessSigned(ctx context.Context, raw []byte, signature string) (billing.Result, error)
}

// Process adapts a Processor to a Handler: it reports the billing.Result
// of each event it applied (Delivery.Report). Its errors already say their
// class (malformed → permanent, database down → outage).
func Process(p Processor) Handler {
	return HandlerFunc(func(ctx context.Context, d Delivery) error {
		res, err := p.ProcessSigned(ctx, d.Body, d.Signature)
		if err != nil {
			return err
		}
		d.Report(res)
		return nil
	})
}

// BatchProcessor applies raw Stripe events in one transaction, keeping
// the signatures that sign them: billing.Processor.
type BatchProcessor interface {
	ProcessBatchSigned(ctx context.Context, raws [][]byte, signatures []string) ([]billing.Outcome, error)
}

// ProcessBatch adapts a BatchProcessor to a BatchHandler; it reports each
// applied event's billing.Result (Delivery.Report).
func ProcessBatch(p BatchProcessor) BatchHandler {
	return BatchHandlerFunc(func(ctx context.Context, ds []Delivery) ([]error, error) {
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
				ds[i].Report(o.Result)
			}
		}
		return errs, nil
	})
}
