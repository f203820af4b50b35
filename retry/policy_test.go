package retry_test

import (
	"testing"
	"time"

	"github.com/stripe-billing/billing/retry"
)

func TestPolicyTiers(t *testing.T) {
	t.Parallel()
	p := retry.Policy{
		Delays:      []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute},
		MaxAttempts: 6,
	}
	tests := []struct {
		name      string
		attempt   int
		tier      int
		delay     time.Duration
		exhausted bool
	}{
		{"first failure waits in the first tier", 1, 0, 10 * time.Second, false},
		{"second failure", 2, 1, time.Minute, false},
		{"last tier", 3, 2, 5 * time.Minute, false},
		{"last tier repeats", 4, 2, 5 * time.Minute, false},
		{"and repeats", 5, 2, 5 * time.Minute, false},
		{"max attempts is exhausted", 6, 2, 5 * time.Minute, true},
		{"beyond max attempts", 9, 2, 5 * time.Minute, true},
		{"attempt 0 is treated as the first", 0, 0, 10 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := p.Tier(tt.attempt); got != tt.tier {
				t.Errorf("Tier(%d) = %d, want %d", tt.attempt, got, tt.tier)
			}
			if got := p.Delay(tt.attempt); got != tt.delay {
				t.Errorf("Delay(%d) = %s, want %s", tt.attempt, got, tt.delay)
			}
			if got := p.Exhausted(tt.attempt); got != tt.exhausted {
				t.Errorf("Exhausted(%d) = %v, want %v", tt.attempt, got, tt.exhausted)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    retry.Policy
		ok   bool
	}{
		{"defaults", retry.Policy{Delays: []time.Duration{10 * time.Second, time.Minute}, MaxAttempts: 8, Jitter: 0.2}, true},
		{"one tier, one attempt", retry.Policy{Delays: []time.Duration{time.Millisecond}, MaxAttempts: 1}, true},
		{"no tiers", retry.Policy{MaxAttempts: 8}, false},
		{"zero delay", retry.Policy{Delays: []time.Duration{0}, MaxAttempts: 8}, false},
		{"no attempts", retry.Policy{Delays: []time.Duration{time.Second}}, false},
		{"jitter above one", retry.Policy{Delays: []time.Duration{time.Second}, MaxAttempts: 2, Jitter: 1.5}, false},
		{"negative jitter", retry.Policy{Delays: []time.Duration{time.Second}, MaxAttempts: 2, Jitter: -0.1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.p.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	const base, max = 100 * time.Millisecond, 5 * time.Second
	fixed := func(v float64) func() float64 { return func() float64 { return v } }
	tests := []struct {
		name   string
		n      int
		jitter float64
		rnd    func() float64
		want   time.Duration
	}{
		{"first try waits base", 0, 0, nil, base},
		{"doubles", 1, 0, nil, 200 * time.Millisecond},
		{"doubles again", 3, 0, nil, 800 * time.Millisecond},
		{"capped", 6, 0, nil, max},
		{"huge n stays capped", 200, 0, nil, max},
		{"negative n is the first", -3, 0, nil, base},
		{"no jitter when rnd is nil", 2, 0.5, nil, 400 * time.Millisecond},
		{"jitter with rnd 0 keeps the full wait", 2, 0.5, fixed(0), 400 * time.Millisecond},
		{"jitter shortens by at most the fraction", 2, 0.5, fixed(0.999999), 200*time.Millisecond + 200*time.Nanosecond},
		{"half way", 2, 0.5, fixed(0.5), 300 * time.Millisecond},
		{"jitter on the cap never exceeds it", 10, 0.2, fixed(0.5), max - max/10},
		{"jitter is clamped to one", 1, 7, fixed(0.5), 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := retry.Backoff(tt.n, base, max, tt.jitter, tt.rnd)
			if diff := got - tt.want; diff < -time.Microsecond || diff > time.Microsecond {
				t.Errorf("Backoff(%d) = %s, want %s", tt.n, got, tt.want)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	const base, max, jitter = 50 * time.Millisecond, 2 * time.Second, 0.3
	r := 0.0
	rnd := func() float64 { r += 0.137; _, f := splitFrac(r); return f }
	for n := range 40 {
		full := retry.Backoff(n, base, max, 0, nil)
		got := retry.Backoff(n, base, max, jitter, rnd)
		if got > full || float64(got) < (1-jitter)*float64(full)-1 {
			t.Fatalf("Backoff(%d) = %s outside [%s, %s]", n, got, time.Duration((1-jitter)*float64(full)), full)
		}
		if got > max {
			t.Fatalf("Backoff(%d) = %s above the cap %s", n, got, max)
		}
	}
}

func splitFrac(v float64) (int, float64) { i := int(v); return i, v - float64(i) }

func TestPolicyPauseUsesJitter(t *testing.T) {
	t.Parallel()
	p := retry.Policy{Delays: []time.Duration{time.Second}, MaxAttempts: 3, Jitter: 0.5}
	if got, want := p.Pause(1, time.Second, time.Minute, func() float64 { return 0.5 }), 1500*time.Millisecond; got != want {
		t.Errorf("Pause = %s, want %s", got, want)
	}
}
