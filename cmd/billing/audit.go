package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models/lookup"
)

const auditUsage = `Compares our rows with Stripe's objects: for each kind, a random sample of
rows (or all of them, or one customer's), each object fetched from Stripe at STRIPE_API_RATE,
STRIPE_API_CONCURRENCY at once,
and every stored field whose value differs from what the worker would make
of Stripe's object is printed with the object's id. An object that changed
a moment ago may show until its event is applied: run it again to confirm.
Writes nothing, unless --fix: then each differing object goes through the
worker's fold as Stripe serves it, recorded in the history as a correction
(the order rules still hold: a row ranked above Stripe's object stays).
Needs STRIPE_API_KEY and MYSQL_DSN.

  billing audit [--kind K,...] [--sample N] [--customer cus_...] [--fix]

Prints one line per differing object and a summary by kind and field,
and saves the counts for the sweep's billing_audit_drift_objects;
exits 1 when any object differs (with --fix: was not fixed) or could not
be compared.`

func runAudit(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "audit", auditUsage)
	kinds := fs.String("kind", "", "only these `kinds` (comma-separated, as backfill's)")
	sample := fs.Int("sample", 0, "compare `N` rows of each kind, picked at random (default all)")
	customer := fs.String("customer", "", "only this `customer` and everything of theirs")
	fix := fs.Bool("fix", false, "apply each differing object as Stripe serves it, as a correction")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sample < 0 {
		return fmt.Errorf("%w: --sample %d: want a positive count", errUsage, *sample)
	}
	cfg, logger, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	if cfg.StripeAPIKey == "" {
		return errors.New("audit: STRIPE_API_KEY is required: the objects are fetched from Stripe's API")
	}
	for _, k := range commaList(*kinds) {
		if !slices.Contains(backfill.KindNames(), k) {
			return fmt.Errorf("%w: --kind %q: want one of %v", errUsage, k, backfill.KindNames())
		}
	}
	fetcher, err := stripeFetcher(cfg, nil)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "audit", 2)
	if err != nil {
		return err
	}
	defer store.Close()
	reports, err := audit.Run(ctx, audit.Config{Kinds: commaList(*kinds), Sample: *sample, Customer: *customer, Fix: *fix,
		Concurrency: cfg.StripeAPIConcurrency},
		lookup.New(store), fetcher, ledger.NewProcessor(store, logger, processorOptions(cfg, nil)...), time.Now)
	audit.WriteText(e.stdout, reports, *fix)
	if err != nil {
		return err
	}
	// Saved for the sweep, which exports it (billing_audit_drift_objects).
	sum, _ := json.Marshal(audit.SummaryOf(reports, time.Now()))
	if err := store.SetCheckpoint(ctx, audit.LastCheckpoint, string(sum)); err != nil {
		return fmt.Errorf("audit: save the summary: %w", err)
	}
	return audit.Problem(reports)
}
