package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/reconcile"
)

const endpointUsage = `Checks the account's webhook endpoints against the event types the worker
needs (docs/webhook-events.md): per endpoint, the needed types it does not
send (their rows stay stale or absent, with no error anywhere) and the types
it sends that the worker ignores. Needs STRIPE_API_KEY (a restricted key
with read access to webhook endpoints is enough).

  billing endpoint check [--json]

Exits 1 when an enabled endpoint lacks a needed type, or none is enabled.`

func runEndpoint(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return &flagError{newFlagSet(e, "endpoint", endpointUsage), flag.ErrHelp}
		}
		return &flagError{newFlagSet(e, "endpoint", endpointUsage), fmt.Errorf("%w: endpoint needs check", errUsage)}
	}
	fs := newFlagSet(e, "endpoint check", endpointUsage)
	asJSON := fs.Bool("json", false, "print the checks as one JSON array")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, _, err := loadConfig(e, logFormat(*asJSON))
	if err != nil {
		return err
	}
	if cfg.StripeAPIKey == "" {
		return errors.New("endpoint check: STRIPE_API_KEY is required: the endpoints are read from Stripe's API")
	}
	checks, err := reconcile.CheckEndpoints(ctx, reconcile.EndpointsConfig{
		APIKey: cfg.StripeAPIKey, APIBase: cfg.StripeAPIBase,
		Needed: billing.NeededTypes, Handled: billing.HandledTypes(),
	})
	if err != nil {
		return err
	}
	if *asJSON {
		if checks == nil {
			checks = []reconcile.EndpointCheck{}
		}
		if err := json.NewEncoder(e.stdout).Encode(checks); err != nil {
			return err
		}
	} else {
		reconcile.WriteEndpointChecks(e.stdout, checks)
	}
	return reconcile.EndpointsProblem(checks)
}
