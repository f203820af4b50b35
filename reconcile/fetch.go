package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/verify"
)

// objectPaths are the API paths of the objects the worker stores
// (billing.ObjectTypes), by Stripe's "object" name.
var objectPaths = map[string]string{
	"customer":              "/v1/customers/",
	"subscription":          "/v1/subscriptions/",
	"invoice":               "/v1/invoices/",
	"invoice_payment":       "/v1/invoice_payments/", // from 2025-03-31.basil; before it Stripe answers 404
	"payment_intent":        "/v1/payment_intents/",
	"charge":                "/v1/charges/",
	"refund":                "/v1/refunds/",
	"dispute":               "/v1/disputes/",
	"checkout.session":      "/v1/checkout/sessions/",
	"credit_note":           "/v1/credit_notes/",
	"payment_method":        "/v1/payment_methods/",
	"product":               "/v1/products/",
	"price":                 "/v1/prices/",
	"subscription_schedule": "/v1/subscription_schedules/",
}

// Purposes of a call to Stripe: the purpose label of
// billing_stripe_calls_total.
const (
	// PurposeVerify: an event the worker cannot verify, fetched by id.
	PurposeVerify = "verify"
	// PurposeTie: an object whose same-second tie nothing in the payloads
	// settles.
	PurposeTie = "tie"
	// PurposeReconcile: a page of the Events API listed by reconciliation.
	PurposeReconcile = "reconcile"
	// PurposeBackfill: a page of a list of objects (`billing backfill`).
	PurposeBackfill = "backfill"
	// PurposeLinks: an unpaid invoice's payments, which no event of
	// 2025-03-31.basil and later names (FetchInvoicePayments).
	PurposeLinks = "links"
)

// Outcomes of a call to Stripe: the outcome label of
// billing_stripe_calls_total.
const (
	OutcomeOK = "ok"
	// OutcomeNotFound: Stripe answered 404.
	OutcomeNotFound = "not_found"
	// OutcomeRefused: Stripe answered 400 or 403 (the id or the claimed
	// account is not ours to read).
	OutcomeRefused = "refused"
	// OutcomeRateLimited: Stripe answered 429.
	OutcomeRateLimited = "rate_limited"
	// OutcomeError: anything else (5xx, 401, the network, an empty body).
	OutcomeError = "error"
	// OutcomeCacheHit: a failed or refused lookup of the same id a moment
	// ago answered from memory; no call.
	OutcomeCacheHit = "cache_hit"
	// OutcomeLimited: over this worker's limits (Limits); no call.
	OutcomeLimited = "limited"
)

// maxResponseBytes bounds what one answer of Stripe's is read into memory.
const maxResponseBytes = 16 << 20

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// APIKey is the Stripe secret key (required).
	APIKey string
	// APIBase is the Stripe API base URL; default https://api.stripe.com.
	APIBase string
	// HTTPClient calls Stripe; default a client with DefaultFetchTimeout.
	HTTPClient *http.Client
	// Limits bound the Fetcher's calls, whatever their purpose.
	Limits Limits
	// Observe, when set, is told the purpose and outcome of every fetch
	// (metrics.Metrics.StripeCall).
	Observe func(purpose, outcome string)
}

// DefaultFetchTimeout bounds one call to Stripe; the event's delay tier
// takes over after it.
const DefaultFetchTimeout = 10 * time.Second

// Fetcher fetches one event or object from Stripe as Stripe serializes it:
// the verify.Fetcher the worker applies Stripe's copy of an unverified
// message with, and the ledger.ObjectFetcher it settles same-second ties
// with. Every fetch, of either kind, goes through one limiter (Limits)
// and one negative cache, and is made once: no retries of its own, the
// event's delay tiers are the retries.
type Fetcher struct {
	key      string
	base     string
	client   *http.Client
	limit    *limiter
	tieWait  time.Duration
	negative *negativeCache
	observe  func(purpose, outcome string)
	now      func() time.Time
}

// NewFetcher returns a Fetcher calling Stripe's API at cfg.APIBase.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("reconcile: fetcher: no Stripe API key")
	}
	if err := checkBase(cfg.APIBase); err != nil {
		return nil, fmt.Errorf("reconcile: fetcher: %w", err)
	}
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultFetchTimeout}
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, string) {}
	}
	limits := cfg.Limits.withDefaults()
	return &Fetcher{
		key: cfg.APIKey, base: strings.TrimRight(cfg.APIBase, "/"), client: cfg.HTTPClient,
		limit: newLimiter(limits), tieWait: limits.Wait, negative: newNegativeCache(limits.NegativeTTL),
		observe: cfg.Observe, now: time.Now,
	}, nil
}

// FetchObject GETs the object in the event's API version and on its
// Connect account. Stripe's 400, 403 or 404 is a nil object (the tie is
// then settled by event id); any other failure (the network, 5xx, 429, a
// key Stripe refuses, this worker's limits) is an error worth retrying.
func (f *Fetcher) FetchObject(ctx context.Context, ref billing.ObjectRef) (json.RawMessage, error) {
	return f.object(ctx, ref, false)
}

// Lookup GETs the object as FetchObject does, for a reader that must
// tell an object Stripe does not know from one it will not show (the
// audit): only a 404 is a nil object; a 400 or 403 is an error marked
// permanent, with Stripe's words.
func (f *Fetcher) Lookup(ctx context.Context, ref billing.ObjectRef) (json.RawMessage, error) {
	return f.object(ctx, ref, true)
}

func (f *Fetcher) object(ctx context.Context, ref billing.ObjectRef, refusals bool) (json.RawMessage, error) {
	path, ok := objectPaths[ref.Type]
	if !ok || ref.ID == "" {
		return nil, fmt.Errorf("reconcile: fetch %s %q: not an object this service fetches", ref.Type, ref.ID)
	}
	if ref.Account != "" && !verify.ValidAccount(ref.Account) {
		return nil, nil // not an account Stripe names: nothing to ask for
	}
	ans := f.get(ctx, PurposeTie, f.tieWait, path+url.PathEscape(ref.ID), ref.APIVersion, ref.Account)
	switch {
	case ans.outcome == OutcomeOK:
		return json.RawMessage(ans.body), nil
	case ans.outcome == OutcomeRefused && refusals:
		return nil, failure.MarkPermanent(fmt.Errorf("reconcile: fetch %s %s: Stripe refused: %w", ref.Type, ref.ID, ans.err))
	case ans.outcome == OutcomeNotFound, ans.outcome == OutcomeRefused:
		return nil, nil
	}
	return nil, fmt.Errorf("reconcile: fetch %s %s: %w", ref.Type, ref.ID, ans.err)
}

// maxPaymentPages bounds the pages of one invoice's payments listed.
const maxPaymentPages = 10

// FetchInvoicePayments lists the InvoicePayments of the invoice ref.ID
// (GET /v1/invoice_payments?invoice=, from 2025-03-31.basil) in the
// event's API version and on its Connect account, 100 a page and at most
// maxPaymentPages pages: what ties an unpaid invoice to its failed
// attempts, which no event of those versions carries. Stripe's 400, 403
// or 404 is no payments and no error; any other failure is an error
// worth retrying.
func (f *Fetcher) FetchInvoicePayments(ctx context.Context, ref billing.ObjectRef) ([]json.RawMessage, error) {
	if ref.ID == "" {
		return nil, errors.New("reconcile: invoice payments of no invoice")
	}
	if ref.Account != "" && !verify.ValidAccount(ref.Account) {
		return nil, nil
	}
	var payments []json.RawMessage
	q := url.Values{"invoice": {ref.ID}, "limit": {"100"}}
	for range maxPaymentPages {
		ans := f.get(ctx, PurposeLinks, f.tieWait, "/v1/invoice_payments?"+q.Encode(), ref.APIVersion, ref.Account)
		switch ans.outcome {
		case OutcomeOK:
		case OutcomeNotFound, OutcomeRefused:
			return nil, nil
		default:
			return nil, fmt.Errorf("reconcile: payments of invoice %s: %w", ref.ID, ans.err)
		}
		var page struct {
			Object  string            `json:"object"`
			Data    []json.RawMessage `json:"data"`
			HasMore *bool             `json:"has_more"`
		}
		if err := json.Unmarshal(ans.body, &page); err != nil || page.Object != "list" || page.HasMore == nil {
			return nil, fmt.Errorf("reconcile: payments of invoice %s: not a whole list page (%d bytes): %v", ref.ID, len(ans.body), err)
		}
		payments = append(payments, page.Data...)
		if !*page.HasMore || len(page.Data) == 0 {
			return payments, nil
		}
		var last struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(page.Data[len(page.Data)-1], &last); err != nil || last.ID == "" {
			return nil, fmt.Errorf("reconcile: payments of invoice %s: a payment without an id", ref.ID)
		}
		q.Set("starting_after", last.ID)
	}
	return payments, nil
}

// FetchEvent returns event id as Stripe serves it, its JSON unchanged;
// account, when set, is the Connect account to look in. When Stripe
// answers 400, 403 or 404 (it does not know the id, or the account is
// not ours to read), or account is not of Stripe's form, the error is
// marked failure.Unverified; any other error (Stripe unreachable, 5xx,
// 429, a key Stripe refuses, this worker's limits) is left transient: the
// event is tried again later.
func (f *Fetcher) FetchEvent(ctx context.Context, id, account string) ([]byte, error) {
	if account != "" && !verify.ValidAccount(account) {
		return nil, failure.MarkUnverified(fmt.Errorf("reconcile: fetch event %s: %w", id, verify.ErrBadAccount))
	}
	// No wait for a turn: see DefaultLimitWait.
	ans := f.get(ctx, PurposeVerify, 0, "/v1/events/"+url.PathEscape(id), "", account)
	switch ans.outcome {
	case OutcomeOK:
		return ans.body, nil
	case OutcomeNotFound, OutcomeRefused:
		return nil, failure.MarkUnverified(fmt.Errorf("reconcile: fetch event %s: Stripe does not know it: %w", id, ans.err))
	}
	return nil, fmt.Errorf("reconcile: fetch event %s: %w", id, ans.err)
}

// answer is what one lookup came to: the body when its outcome is
// OutcomeOK, else err says what happened.
type answer struct {
	outcome string
	body    []byte
	err     error
	// status is Stripe's HTTP status (0: no answer) and noRetry its
	// Stripe-Should-Retry: false.
	status  int
	noRetry bool
}

// get GETs path from Stripe, in API version (stripe-go's pinned one when
// empty) and on account, unless the negative cache remembers it failed a
// moment ago or this worker is at its limits for longer than wait.
func (f *Fetcher) get(ctx context.Context, purpose string, wait time.Duration, path, version, account string) (ans answer) {
	key := path + "\x00" + version + "\x00" + account
	if cached, ok := f.negative.get(key, f.now()); ok {
		f.observe(purpose, OutcomeCacheHit)
		cached.err = fmt.Errorf("%w (the same lookup a moment ago; not asked again for %s)", cached.err, f.negative.ttl)
		return cached
	}
	done, err := f.limit.take(ctx, wait)
	if err != nil {
		f.observe(purpose, OutcomeLimited)
		return answer{outcome: OutcomeLimited, err: err}
	}
	ans = f.call(ctx, path, version, account)
	done()
	f.observe(purpose, ans.outcome)
	if ans.outcome != OutcomeOK {
		f.negative.put(key, ans, f.now())
	}
	return ans
}

// call makes the one request of a lookup and classifies Stripe's answer.
func (f *Fetcher) call(ctx context.Context, path, version, account string) answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+path, nil)
	if err != nil {
		return answer{outcome: OutcomeError, err: err}
	}
	if version == "" {
		version = stripe.APIVersion
	}
	req.Header.Set("Authorization", "Bearer "+f.key)
	req.Header.Set("Stripe-Version", version)
	if account != "" {
		req.Header.Set("Stripe-Account", account)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{outcome: OutcomeError, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	switch {
	case err != nil:
		return answer{outcome: OutcomeError, err: fmt.Errorf("read Stripe's answer: %w", err)}
	case len(body) > maxResponseBytes:
		return answer{outcome: OutcomeError, err: fmt.Errorf("Stripe's answer is over %d bytes", maxResponseBytes)}
	}
	ans := answer{status: resp.StatusCode, noRetry: resp.Header.Get("Stripe-Should-Retry") == "false"}
	switch ans.outcome = outcomeOf(resp); {
	case ans.outcome == OutcomeOK && len(body) == 0:
		ans.outcome, ans.err = OutcomeError, errors.New("empty response")
	case ans.outcome == OutcomeOK:
		ans.body = body
	default:
		ans.err = fmt.Errorf("Stripe answered %d: %s", resp.StatusCode, stripeMessage(body))
	}
	return ans
}

// outcomeOf classifies one answer of Stripe's.
func outcomeOf(resp *http.Response) string {
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		return OutcomeOK
	case resp.Header.Get("Stripe-Should-Retry") == "true":
		// Stripe says the same request may succeed later, whatever the
		// status: never take it for a refusal. (A "false" changes nothing:
		// the fetcher makes no retries of its own.)
		return OutcomeError
	case code == http.StatusNotFound:
		return OutcomeNotFound
	case code == http.StatusBadRequest || code == http.StatusForbidden:
		return OutcomeRefused
	case code == http.StatusTooManyRequests:
		return OutcomeRateLimited
	default:
		return OutcomeError
	}
}

// observedTransport tells observe the outcome of every request it makes
// for purpose: each of stripe-go's own retries counts as a call.
type observedTransport struct {
	base    http.RoundTripper
	purpose string
	observe func(purpose, outcome string)
}

func (o observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.base.RoundTrip(req)
	if err != nil {
		o.observe(o.purpose, OutcomeError)
		return nil, err
	}
	o.observe(o.purpose, outcomeOf(resp))
	return resp, nil
}

// stripeMessage is the message of Stripe's error body, cut short; the
// body's start when it has none.
func stripeMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := string(body)
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return fmt.Sprintf("%q", msg)
}
