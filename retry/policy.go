// Package retry owns the backoff policy: the delay tiers a failed event
// waits in, how many failed attempts it gets (Policy, which failure.Decide
// follows), and the jittered exponential backoff of the process's own
// waits (reconnects, outage probes). It is pure: no I/O, no clock.
package retry

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// The worker's default policy (config.Vars refers to it).
const DefaultMaxAttempts = 8

// DefaultDelays are the worker's default delay tiers.
func DefaultDelays() []time.Duration {
	return []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour}
}

// Policy says what happens to an event after its n-th failed attempt: which
// delay tier it waits in, and when it has had enough tries.
//
// Attempts are counted in failures: attempt 1 is the first delivery that
// failed, so after the n-th failure the event waits Delay(n) in tier
// Tier(n) unless Exhausted(n), in which case it is parked with
// billing-attempt = n (= MaxAttempts).
//
// Jitter and the tiers: each delay tier is a queue with one fixed
// x-message-ttl (a per-message TTL only expires at the head of a queue), so
// the wait in a tier cannot be jittered per message; spreading a thundering
// herd there would need more tiers, not randomness. Jitter applies only to
// waits the process performs itself (broker reconnects, the outage pause):
// see Backoff and Policy.Pause.
type Policy struct {
	// Delays are the tiers in order; the last one repeats.
	Delays []time.Duration
	// MaxAttempts is the number of failed attempts after which an event
	// is parked in the DLQ.
	MaxAttempts int
	// Jitter in [0, 1] is the largest fraction by which an in-process
	// wait is shortened at random.
	Jitter float64
}

// Validate reports a policy that cannot route a failure.
func (p Policy) Validate() error {
	var errs []error
	if len(p.Delays) == 0 {
		errs = append(errs, errors.New("retry: policy: no delay tiers"))
	}
	for i, d := range p.Delays {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("retry: policy: delay tier %d is %s, not positive", i, d))
		}
	}
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("retry: policy: max attempts %d, want at least 1", p.MaxAttempts))
	}
	if p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter) {
		errs = append(errs, fmt.Errorf("retry: policy: jitter %v, want within [0, 1]", p.Jitter))
	}
	return errors.Join(errs...)
}

// Tier is the index of the delay tier after the attempt-th failure
// (1-based); attempts past the last tier stay in the last one.
func (p Policy) Tier(attempt int) int {
	if attempt < 1 {
		attempt = 1
	}
	return min(attempt, len(p.Delays)) - 1
}

// Delay is the wait after the attempt-th failure: the TTL of Tier(attempt).
func (p Policy) Delay(attempt int) time.Duration {
	if len(p.Delays) == 0 {
		return 0
	}
	return p.Delays[p.Tier(attempt)]
}

// Exhausted reports whether the attempt-th failure is the last one allowed.
func (p Policy) Exhausted(attempt int) bool { return attempt >= p.MaxAttempts }

// Pause is the in-process wait before probe n (0-based) of a dependency
// that is down: exponential from base, capped at max, shortened by up to
// the policy's Jitter. rnd returns a number in [0, 1).
func (p Policy) Pause(n int, base, max time.Duration, rnd func() float64) time.Duration {
	return Backoff(n, base, max, p.Jitter, rnd)
}

// Backoff is the wait before try n (0-based) of an in-process retry loop:
// base·2ⁿ capped at max, then shortened by a random fraction of at most
// jitter (so the result lies in [(1-jitter)·d, d] and never exceeds max).
// rnd returns a number in [0, 1) and is injected so that the function is
// pure; a nil rnd means no jitter.
func Backoff(n int, base, max time.Duration, jitter float64, rnd func() float64) time.Duration {
	if base <= 0 {
		return 0
	}
	if max < base {
		max = base
	}
	d := max
	if n < 0 {
		n = 0
	}
	if n < 62 { // beyond, the shift overflows: the cap applies anyway
		if f := base << n; f > 0 && f>>n == base && f < max {
			d = f
		}
	}
	jitter = math.Min(math.Max(jitter, 0), 1)
	if jitter == 0 || rnd == nil {
		return d
	}
	r := math.Min(math.Max(rnd(), 0), 1)
	return d - time.Duration(float64(d)*jitter*r)
}
