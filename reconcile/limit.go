package reconcile

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/stripe-billing/billing/internal/pause"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// Stripe allows an account 100 read requests a second in live mode and 25
// in test mode (https://docs.stripe.com/rate-limits), and 25 a second to
// any one endpoint, such as GET /v1/events/{id}. A worker's fetches stay
// well under all three: they are the calls an attacker with broker
// access could otherwise make us spend, and the company's other
// integrations share the account's limit.
const (
	// DefaultRate is the most calls to Stripe a second one worker starts
	// (STRIPE_API_RATE).
	DefaultRate = 10
	// DefaultConcurrency is the most calls to Stripe one worker has in
	// flight at once (STRIPE_API_CONCURRENCY); also the rate's burst.
	DefaultConcurrency = 4
	// DefaultLimitWait is the longest a tie's fetch waits for its turn
	// before it gives up as limited (a transient failure: the event's
	// delay tier tries it again). A fetch for an unverified message waits
	// for none: a flood of unsigned messages moves through the worker at
	// its own pace, not Stripe's, and the genuine events queued behind it
	// do not wait for its turns.
	DefaultLimitWait = 2 * time.Second
	// DefaultNegativeTTL is how long a failed or refused lookup is
	// answered from memory instead of asking Stripe again: copies of one
	// forged id cost one call, not one each.
	DefaultNegativeTTL = 5 * time.Second
	// maxNegative bounds the negative cache; past it, failures are not
	// remembered until older ones expire.
	maxNegative = 100_000
)

// Limits bound the calls a process makes to Stripe's API.
type Limits struct {
	// Rate is the most calls started a second; default DefaultRate.
	Rate float64
	// Concurrency is the most calls in flight, and the rate's burst;
	// default DefaultConcurrency.
	Concurrency int
	// Wait is the longest a tie's fetch waits for its turn; default
	// DefaultLimitWait.
	Wait time.Duration
	// NegativeTTL is how long a failed or refused lookup is remembered;
	// default DefaultNegativeTTL.
	NegativeTTL time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.Rate <= 0 {
		l.Rate = DefaultRate
	}
	if l.Concurrency <= 0 {
		l.Concurrency = DefaultConcurrency
	}
	if l.Wait <= 0 {
		l.Wait = DefaultLimitWait
	}
	if l.NegativeTTL <= 0 {
		l.NegativeTTL = DefaultNegativeTTL
	}
	return l
}

// errLimited: the call was not made, this process is at its limit.
var errLimited = errors.New("this worker is at its limit of calls to Stripe (STRIPE_API_RATE, STRIPE_API_CONCURRENCY)")

// limiter is one process's turn-taking for Stripe's API: a slot among
// Concurrency, then a token of Rate.
type limiter struct {
	slots *semaphore.Weighted
	rate  *rate.Limiter
}

func newLimiter(l Limits) *limiter {
	return &limiter{slots: semaphore.NewWeighted(int64(l.Concurrency)), rate: rate.NewLimiter(rate.Limit(l.Rate), l.Concurrency)}
}

// take waits at most wait (0: not at all) for a turn and returns the
// function that ends it; errLimited when none came in time, ctx's error
// when ctx ended first.
func (l *limiter) take(ctx context.Context, wait time.Duration) (done func(), err error) {
	deadline := time.Now().Add(wait)
	if wait <= 0 {
		if !l.slots.TryAcquire(1) {
			return nil, errLimited
		}
	} else {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		err := l.slots.Acquire(wctx, 1)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, errLimited
		}
	}
	release := func() { l.slots.Release(1) }
	// A reservation made ahead of others keeps its place: a tie waiting
	// for a token goes before later fetches that would not wait.
	r := l.rate.Reserve()
	if !r.OK() || r.Delay() > max(0, time.Until(deadline)) {
		r.Cancel()
		release()
		return nil, errLimited
	}
	if d := r.Delay(); d > 0 {
		if err := pause.For(ctx, d); err != nil {
			r.Cancel()
			release()
			return nil, err
		}
	}
	return release, nil
}

// negativeCache remembers failed and refused lookups for a while, by key.
type negativeCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]negative
}

// negative is a remembered answer that was not a success.
type negative struct {
	ans   answer
	until time.Time
}

func newNegativeCache(ttl time.Duration) *negativeCache {
	return &negativeCache{ttl: ttl, m: map[string]negative{}}
}

// get returns the remembered answer for key, if still fresh.
func (c *negativeCache) get(key string, now time.Time) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[key]
	if ok && !now.Before(n.until) {
		delete(c.m, key)
		return answer{}, false
	}
	return n.ans, ok
}

// put remembers ans for key.
func (c *negativeCache) put(key string, ans answer, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxNegative {
		for k, n := range c.m {
			if !now.Before(n.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxNegative {
			return
		}
	}
	c.m[key] = negative{ans: ans, until: now.Add(c.ttl)}
}
