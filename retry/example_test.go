package retry_test

import (
	"fmt"
	"time"

	"github.com/stripe-billing/billing/retry"
)

// After its n-th failed attempt an event waits Delay(n) in delay tier
// Tier(n), the last tier repeating, until Exhausted(n) parks it in the DLQ.
// The tiers are fixed queue TTLs, so these delays carry no jitter.
func ExamplePolicy() {
	p := retry.Policy{
		Delays:      []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute},
		MaxAttempts: 5,
	}
	for n := 1; n <= p.MaxAttempts; n++ {
		if p.Exhausted(n) {
			fmt.Printf("failure %d: parked in the DLQ\n", n)
			continue
		}
		fmt.Printf("failure %d: wait %s in tier %d\n", n, p.Delay(n), p.Tier(n))
	}
	// Output:
	// failure 1: wait 10s in tier 0
	// failure 2: wait 1m0s in tier 1
	// failure 3: wait 5m0s in tier 2
	// failure 4: wait 5m0s in tier 2
	// failure 5: parked in the DLQ
}

// The waits a process performs itself, such as the probes of a database
// that is down, are exponential, capped and jittered. The random source is
// injected: here it always returns 0.5, so each wait is shortened by half
// of the policy's Jitter (20%), that is by 10%.
func ExamplePolicy_Pause() {
	p := retry.Policy{Delays: []time.Duration{10 * time.Second}, MaxAttempts: 8, Jitter: 0.2}
	half := func() float64 { return 0.5 }
	for n := range 6 {
		fmt.Printf("probe %d after %s\n", n, p.Pause(n, 250*time.Millisecond, 4*time.Second, half))
	}
	// Output:
	// probe 0 after 225ms
	// probe 1 after 450ms
	// probe 2 after 900ms
	// probe 3 after 1.8s
	// probe 4 after 3.6s
	// probe 5 after 3.6s
}
