package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/stripe/stripe-go/v76"

	"github.com/stripe-billing/billing/billing"
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
	// HTTPClient calls Stripe; default a client with a 30s timeout.
	HTTPClient *http.Client
}

// Fetcher fetches one object from Stripe as Stripe serializes it: the
// billing.ObjectFetcher the worker settles same-second ties with.
type Fetcher struct {
	key     string
	backend stripe.Backend
}

// NewFetcher returns a Fetcher calling Stripe's API at cfg.APIBase.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("reconcile: fetcher: no Stripe API key")
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

var _ billing.ObjectFetcher = (*Fetcher)(nil)
