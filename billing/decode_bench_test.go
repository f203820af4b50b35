package billing

import (
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
)

// BenchmarkDecode parses lifecycle events and decodes each into its plan,
// as ProcessBatch does before its transaction: the worker's JSON work per
// event, without the database.
func BenchmarkDecode(b *testing.B) {
	events := billingtest.Lifecycle(8, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev, err := Parse(events[i%len(events)])
		if err != nil {
			b.Fatal(err)
		}
		if Handles(ev.Type) {
			if _, err := PlanOf(ev); err != nil {
				b.Fatal(err)
			}
		}
	}
}
