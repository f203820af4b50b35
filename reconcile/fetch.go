package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/failure"
)

// objectPaths are the API paths of the objects the worker stores, by
// Stripe's "object" name.
var objectPaths = map[string]string{
	"customer":       "/v1/customers/",
	"subscription":   "/v1/subscriptions/",
	"invoice":        "/v1/invoices/",
	"payment_intent": "/v1/payment_intents/",
	"charge":         "/v1/charges/",
	"refund":         "/v1/refunds/",
	"dispute":        "/v1/disputes/",
}

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// APIKey is the Stripe secret key (required).
	APIKey string
	// APIBase is the Stripe API base URL; default https://api.stripe.com.
	APIBase string
	// HTTPClient calls Stripe; default a client with DefaultFetchTimeout.
	HTTPClient *http.Client
}

// DefaultFetchTimeout bounds one call to Stripe: the worker waits for it
// with a transaction open, and its own retries (a delay tier) take over.
const DefaultFetchTimeout = 10 * time.Second

// Fetcher fetches one event or object from Stripe as Stripe serializes it:
// the verify.EventFetcher the worker applies Stripe's copy of an unverified
// message with, and the billing.ObjectFetcher it settles same-second ties
// with.
type Fetcher struct {
	key     string
	backend stripe.Backend
}

// NewFetcher returns a Fetcher calling Stripe's API at cfg.APIBase.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("reconcile: fetcher: no Stripe API key")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultFetchTimeout}
	}
	return &Fetcher{key: cfg.APIKey, backend: newBackend(cfg.APIBase, cfg.HTTPClient)}, nil
}

// rawObject keeps the response as Stripe sent it: a re-encoding of
// stripe-go's structs would drop fields it does not know.
type rawObject struct{ stripe.APIResource }

// FetchObject GETs the object in the event's API version and on its
// Connect account. Stripe's 404 is a nil object; any other failure (the
// network, 5xx, 429, a key Stripe refuses) is an error worth retrying.
func (f *Fetcher) FetchObject(ctx context.Context, ref billing.ObjectRef) (json.RawMessage, error) {
	path, ok := objectPaths[ref.Type]
	if !ok || ref.ID == "" {
		return nil, fmt.Errorf("reconcile: fetch %s %q: not an object this service fetches", ref.Type, ref.ID)
	}
	params := &stripe.Params{Context: ctx}
	if ref.APIVersion != "" {
		params.Headers = http.Header{"Stripe-Version": {ref.APIVersion}}
	}
	if ref.Account != "" {
		params.SetStripeAccount(ref.Account)
	}
	var obj rawObject
	err := f.backend.Call(http.MethodGet, path+url.PathEscape(ref.ID), f.key, params, &obj)
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: fetch %s %s: %w", ref.Type, ref.ID, err)
	}
	if obj.LastResponse == nil || len(obj.LastResponse.RawJSON) == 0 {
		return nil, fmt.Errorf("reconcile: fetch %s %s: empty response", ref.Type, ref.ID)
	}
	return json.RawMessage(obj.LastResponse.RawJSON), nil
}

// FetchEvent returns event id as Stripe serves it, its JSON unchanged;
// account, when set, is the Connect account to look in. When Stripe does
// not know the id (404) the error is marked failure.Unverified; any other
// error (Stripe unreachable, 5xx, 429, a key Stripe refuses) is left
// transient: the event is tried again later.
func (f *Fetcher) FetchEvent(ctx context.Context, id, account string) ([]byte, error) {
	params := &stripe.Params{Context: ctx}
	if account != "" {
		params.SetStripeAccount(account)
	}
	var ev rawObject
	err := f.backend.Call(http.MethodGet, "/v1/events/"+url.PathEscape(id), f.key, params, &ev)
	if se, ok := errors.AsType[*stripe.Error](err); ok && se.HTTPStatusCode == http.StatusNotFound {
		return nil, failure.MarkUnverified(fmt.Errorf("reconcile: fetch event %s: Stripe does not know it: %s", id, se.Msg))
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: fetch event %s: %w", id, err)
	}
	if ev.LastResponse == nil || len(ev.LastResponse.RawJSON) == 0 {
		return nil, fmt.Errorf("reconcile: fetch event %s: empty response", id)
	}
	return ev.LastResponse.RawJSON, nil
}

var _ billing.ObjectFetcher = (*Fetcher)(nil)
