package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// EndpointCheck is what one of the account's webhook endpoints sends
// against what the worker needs.
type EndpointCheck struct {
	ID, URL, Status string
	// APIVersion is the endpoint's; empty when it follows the account's
	// default, which the API does not say.
	APIVersion string `json:",omitempty"`
	// All is true when the endpoint sends every event type ("*").
	All bool
	// Missing are the needed types the endpoint does not send: the rows
	// they write stay stale or absent, with no error anywhere.
	Missing []string
	// Ignored are the types it sends that the worker does not apply: each
	// costs a delivery and a ledger row, recorded as ignored.
	Ignored []string
}

// Enabled reports whether Stripe sends the endpoint events.
func (c EndpointCheck) Enabled() bool { return c.Status == "enabled" }

// Lacking reports whether the endpoint is enabled and misses a needed
// type: a disabled one is sent nothing, so what it lacks loses nothing.
func (c EndpointCheck) Lacking() bool { return c.Enabled() && len(c.Missing) > 0 }

// EndpointsConfig configures CheckEndpoints.
type EndpointsConfig struct {
	APIKey, APIBase string
	HTTPClient      *http.Client
	// Needed lists the event types an endpoint of an API version must send
	// (billing.NeededTypes); Handled, those the worker applies
	// (billing.HandledTypes).
	Needed  func(apiVersion string) []string
	Handled []string
}

// CheckEndpoints lists the account's webhook endpoints (every page) and
// compares what each sends with what the worker needs and handles.
func CheckEndpoints(ctx context.Context, cfg EndpointsConfig) ([]EndpointCheck, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("reconcile: endpoints: no Stripe API key")
	}
	if err := checkBase(cfg.APIBase); err != nil {
		return nil, fmt.Errorf("reconcile: endpoints: %w", err)
	}
	backend := newBackend(cfg.APIBase, cfg.HTTPClient)
	api := client.New(cfg.APIKey, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	params := &stripe.WebhookEndpointListParams{}
	params.Context = ctx
	params.Limit = stripe.Int64(100)
	var out []EndpointCheck
	it := api.WebhookEndpoints.List(params)
	for it.Next() {
		out = append(out, checkEndpoint(it.WebhookEndpoint(), cfg.Needed, cfg.Handled))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reconcile: list webhook endpoints: %w", err)
	}
	return out, nil
}

func checkEndpoint(we *stripe.WebhookEndpoint, needed func(string) []string, handled []string) EndpointCheck {
	c := EndpointCheck{ID: we.ID, URL: we.URL, Status: we.Status, APIVersion: we.APIVersion, All: slices.Contains(we.EnabledEvents, "*")}
	if c.All {
		return c
	}
	for _, t := range needed(we.APIVersion) {
		if !slices.Contains(we.EnabledEvents, t) {
			c.Missing = append(c.Missing, t)
		}
	}
	for _, t := range we.EnabledEvents {
		if !slices.Contains(handled, t) {
			c.Ignored = append(c.Ignored, t)
		}
	}
	slices.Sort(c.Ignored)
	return c
}
