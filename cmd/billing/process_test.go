package main

import (
	"testing"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/consumer"
)

// TestProcess checks the one assumption of the adapter: each of billing's
// results becomes, by its name, the consumer.Handled the event metrics
// count it under.
func TestProcess(t *testing.T) {
	t.Parallel()
	t.Run("ResultsAreHandledByName", func(t *testing.T) {
		for res, want := range map[billing.Result]consumer.Handled{
			billing.Processed: consumer.Processed,
			billing.Ignored:   consumer.Ignored,
			billing.Duplicate: consumer.Duplicate,
			billing.Preview:   consumer.Preview,
		} {
			if got := consumer.Handled(res); got != want {
				t.Errorf("billing.%s reported as %q, want %q", res, got, want)
			}
		}
	})
}
