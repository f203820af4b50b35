package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
)

// BenchmarkProcess applies lifecycle events into a migrated database, one
// per transaction and in batches: the apply path's cost per event. Its
// allocations are the figure to compare between changes; its time
// depends on the database's load.
func BenchmarkProcess(b *testing.B) {
	perLifecycle := len(billingtest.Lifecycle(1, start))
	for _, size := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := testenv.Store(b)
			p := ledger.NewProcessor(s, nil)
			events := billingtest.Lifecycle(b.N/perLifecycle+1, start)[:b.N]
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			if size == 1 {
				for _, raw := range events {
					if r, err := p.Process(ctx, raw); err != nil || r != ledger.Processed {
						b.Fatalf("Process = %q, %v; want processed", r, err)
					}
				}
				return
			}
			for i := 0; i < len(events); i += size {
				batch := events[i:min(i+size, len(events))]
				outcomes, err := p.ProcessBatch(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				for _, o := range outcomes {
					if o.Err != nil || o.Result != ledger.Processed {
						b.Fatalf("outcome %+v, want processed", o)
					}
				}
			}
		})
	}
}
