package bench_test

import (
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/ledger"
)

// withBatches configures cfg as `billing worker` does for batchSize
// events per transaction.
func withBatches(cfg *consumer.Config, proc *ledger.Processor, batchSize int, c config.Config) {
	if batchSize <= 1 {
		return
	}
	cfg.BatchSize, cfg.BatchWait = batchSize, c.WorkerBatchWait
	_, cfg.Batch = ledger.Handlers(proc)
}
