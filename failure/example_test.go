package failure_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/retry"
)

// Decide is the one decision on a failed event: a transient failure waits
// in the next delay tier until its attempts run out; permanent, schema and
// unverified failures are parked at once; an outage spends no attempt (the
// worker pauses before it decides), so given one, Decide treats it as
// transient.
func ExampleDecide() {
	policy := retry.Policy{Delays: []time.Duration{10 * time.Second, time.Minute}, MaxAttempts: 3}
	lost := errors.New("lock wait timeout")
	for _, c := range []struct {
		err     error
		attempt int
	}{
		{lost, 1},
		{lost, 2},
		{lost, 3},
		{failure.MarkPermanent(errors.New("parse event: not JSON")), 1},
		{failure.MarkSchema(errors.New("invoice.status: missing")), 1},
		{failure.MarkUnverified(errors.New("no valid signature")), 1},
		{failure.MarkOutage(errors.New("connection refused")), 2},
	} {
		d := failure.Decide(failure.Of(c.err), c.attempt, policy)
		if d.Parked {
			fmt.Printf("%-10s attempt %d: parked\n", d.Class, d.Attempt)
			continue
		}
		fmt.Printf("%-10s attempt %d: tier %d\n", d.Class, d.Attempt, d.Tier)
	}
	// Output:
	// transient  attempt 1: tier 0
	// transient  attempt 2: tier 1
	// transient  attempt 3: parked
	// permanent  attempt 1: parked
	// schema     attempt 1: parked
	// unverified attempt 1: parked
	// transient  attempt 2: tier 1
}

// The class of an error is the first mark found in its chain, whatever
// wraps it; an unmarked error is transient.
func ExampleOf() {
	err := fmt.Errorf("billing: apply evt_1: %w", failure.MarkSchema(errors.New("invoice.total: is a JSON string, want a number")))
	fmt.Println(failure.Of(err))
	fmt.Println(failure.Of(errors.New("deadlock")))
	fmt.Println(failure.Redrivable(failure.Of(err)), failure.Redrivable(failure.Transient))
	// Output:
	// schema
	// transient
	// false true
}
