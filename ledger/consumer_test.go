package ledger_test

import (
	"testing"

	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/ledger"
)

// TestHandlers checks the one assumption of the adapter: each of the ledger's
// results becomes, by its name, the consumer.Handled the event metrics
// count it under.
func TestHandlers(t *testing.T) {
	t.Parallel()
	t.Run("ResultsAreHandledByName", func(t *testing.T) {
		for res, want := range map[ledger.Result]consumer.Handled{
			ledger.Processed: consumer.Processed,
			ledger.Ignored:   consumer.Ignored,
			ledger.Duplicate: consumer.Duplicate,
			ledger.Preview:   consumer.Preview,
		} {
			if got := consumer.Handled(res); got != want {
				t.Errorf("ledger.%s reported as %q, want %q", res, got, want)
			}
		}
	})
}
