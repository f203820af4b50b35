// Package simulate is the load generator of the billing system: it builds
// realistic Stripe event streams (customer lifecycles from stripeevent, in
// the 2023-10-16 shapes), makes a fraction of them late, duplicated or
// poison, signs each delivery with the webhook secret and posts it to the
// api at a rate and concurrency, and summarises what the api answered.
// `billing simulate`, the README demo, the benchmarks and the end-to-end
// tests use it.
package simulate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/internal/netaddr"
)

// Config describes one run. Ratios are fractions in [0, 1).
type Config struct {
	// URL is the webhook endpoint, such as http://127.0.0.1:8080/webhooks/stripe.
	// Its host must be loopback unless AllowRemote.
	URL string
	// AllowRemote lets URL name another machine: a mistyped URL must not
	// post thousands of events to a real endpoint that trusts the secret.
	AllowRemote bool
	// Secret is the webhook signing secret (whsec_...).
	Secret string
	// Count is the number of requests to send, duplicates included.
	Count int
	// Rate is the most requests started per second; 0 means unlimited.
	Rate float64
	// Concurrency is the number of requests in flight at most (default 1).
	Concurrency int
	// DuplicateRatio is the fraction of the Count requests that redeliver
	// an event sent earlier (same id and bytes, fresh signature).
	DuplicateRatio float64
	// OutOfOrderRatio is the fraction of events delivered after an event
	// that Stripe sends after them (for the same customer).
	OutOfOrderRatio float64
	// PoisonRatio is the fraction of distinct events that are poison:
	// signed and well-formed, but with a data.object no handler can decode,
	// so the worker parks them in the DLQ.
	PoisonRatio float64
	// Seed makes the stream and its shuffles reproducible (event ids
	// aside: they are random, as Stripe's are).
	Seed int64
	// Customers is the number of customer lifecycles interleaved at once
	// (default 50); a run longer than their 19 events each uses new batches.
	Customers int
	// Start is the time the generated events claim to begin (default: far
	// enough before now, to the second, that the last one is not in the
	// future, which the api refuses). Object ids derive from it, so two runs
	// with the same Start and Seed send the same objects in the same order,
	// under new event ids.
	Start time.Time
	// RequestTimeout bounds one request (default 10s). In-flight requests
	// finish even after ctx is done, so that every sent request has an answer.
	RequestTimeout time.Duration
	// Now is the clock of the signatures' timestamps (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Customers == 0 {
		c.Customers = 50
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Start.IsZero() {
		c.Start = c.Now().Add(-span(c)).Truncate(time.Second)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("simulate: "+format, args...)) }
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url %q is not an http(s) URL", c.URL)
	} else if !c.AllowRemote && !netaddr.IsLoopback(u.Hostname()) {
		bad("url %q is not on this machine (127.0.0.0/8, ::1, localhost); --allow-remote posts to another host", c.URL)
	}
	if c.Secret == "" {
		bad("no webhook secret")
	}
	if c.Count <= 0 {
		bad("count %d is not positive", c.Count)
	}
	if c.Rate < 0 {
		bad("rate %v is negative", c.Rate)
	}
	if c.Concurrency < 0 {
		bad("concurrency %d is negative", c.Concurrency)
	}
	if c.Customers < 0 {
		bad("customers %d is negative", c.Customers)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"duplicate", c.DuplicateRatio}, {"out-of-order", c.OutOfOrderRatio}, {"poison", c.PoisonRatio}} {
		if r.v < 0 || r.v >= 1 {
			bad("%s ratio %v is not in [0, 1)", r.name, r.v)
		}
	}
	return c, errors.Join(errs...)
}

// Run sends cfg.Count signed events to cfg.URL through client and returns
// what the api answered. It stops early when ctx is done, waits for the
// requests in flight, and then returns the summary so far with ctx's error.
// A non-2xx answer is not an error of Run: it is in the summary.
func Run(ctx context.Context, cfg Config, client *http.Client) (Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	deliveries, err := plan(cfg)
	if err != nil {
		return Summary{}, err
	}

	rec := newRecorder()
	jobs := make(chan delivery)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for d := range jobs {
				rec.add(d, send(ctx, cfg, client, d))
			}
		})
	}

	started := time.Now()
	pace := newPacer(cfg.Rate)
	var stopErr error
dispatch:
	for _, d := range deliveries {
		if err := pace.wait(ctx); err != nil {
			stopErr = err
			break
		}
		select {
		case jobs <- d:
		case <-ctx.Done():
			stopErr = ctx.Err()
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	return rec.summary(time.Since(started)), stopErr
}

// result is the answer to one request.
type result struct {
	status  int // 0 on a transport error
	err     error
	latency time.Duration
}

// send signs d now and posts it. The request outlives ctx (bounded by the
// request timeout) so that its answer is known.
func send(ctx context.Context, cfg Config, client *http.Client, d delivery) result {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload:   d.body,
		Secret:    cfg.Secret,
		Timestamp: cfg.Now(),
	})
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, cfg.URL, bytes.NewReader(d.body))
	if err != nil {
		return result{err: fmt.Errorf("simulate: build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	req.Header.Set("User-Agent", "billing-simulate")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err, latency: time.Since(start)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	_ = resp.Body.Close()
	return result{status: resp.StatusCode, latency: time.Since(start)}
}

// pacer starts at most rate requests per second, one at a time: a late
// caller does not earn a burst.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

func (p *pacer) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.interval == 0 {
		return nil
	}
	now := time.Now()
	if p.next.After(now) {
		t := time.NewTimer(p.next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		now = p.next
	}
	p.next = now.Add(p.interval)
	return nil
}

// recorder collects results from the senders.
type recorder struct {
	mu         sync.Mutex
	s          Summary
	latencies  []time.Duration
	seen       map[string]bool
	accepted   map[string]bool
	poisonIDs  map[string]bool
	firstError error
}

func newRecorder() *recorder {
	return &recorder{
		s:         Summary{NotOK: map[int]int{}},
		seen:      map[string]bool{},
		accepted:  map[string]bool{},
		poisonIDs: map[string]bool{},
	}
}

func (r *recorder) add(d delivery, res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.Sent++
	if r.seen[d.id] {
		r.s.Duplicates++
	} else {
		r.seen[d.id] = true
		r.s.Events++
		if d.poison {
			r.s.PoisonSent++
		}
		if d.outOfOrder {
			r.s.OutOfOrder++
		}
	}
	switch {
	case res.err != nil:
		r.s.TransportErrors++
		if r.firstError == nil {
			r.firstError = res.err
		}
		return
	case res.status >= 200 && res.status < 300:
		r.s.OK++
		r.accepted[d.id] = true
		if d.poison {
			r.poisonIDs[d.id] = true
		}
	default:
		r.s.NotOK[res.status]++
	}
	r.latencies = append(r.latencies, res.latency)
}

func (r *recorder) summary(elapsed time.Duration) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	s.Duration = elapsed
	s.Latency = percentiles(r.latencies)
	s.Accepted = sortedKeys(r.accepted)
	s.AcceptedPoison = sortedKeys(r.poisonIDs)
	if r.firstError != nil {
		s.FirstTransportError = r.firstError.Error()
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// percentiles uses the nearest-rank method.
func percentiles(ls []time.Duration) Latency {
	if len(ls) == 0 {
		return Latency{}
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(float64(len(s))*p)) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Latency{P50: rank(.50), P90: rank(.90), P99: rank(.99), Max: s[len(s)-1]}
}
