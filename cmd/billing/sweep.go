package main

import (
	"context"
	"fmt"
	"time"

	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
)

const sweepUsage = `One pass for cron; safe to run from several hosts at once (a database lock
lets one pass run, the others exit 0 saying so).

  - Re-drives parked events whose class is transient and that have been in
    the DLQ longer than SWEEP_MIN_AGE, at most SWEEP_LIMIT a run and at most
    SWEEP_MAX_REDRIVES times per event. Permanent failures and events parked
    by the delivery limit wait for a person (billing dlq replay).
  - When STRIPE_API_KEY is set, lists Stripe's events since the last run
    (at most 30 days back) and enqueues each one missing from the ledger.

Prints a summary; exits non-zero when any part failed.`

func runSweep(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "sweep", sweepUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, logger, err := loadConfig(e)
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	store, err := models.Open(octx, cfg.MySQLDSN, models.PoolConfig{MaxOpenConns: 4, MaxIdleConns: 2, ConnMaxLifetime: cfg.DBConnMaxLifetime}, logger)
	cancel()
	if err != nil {
		return fmt.Errorf("sweep: open MySQL (MYSQL_DSN): %w", err)
	}
	defer store.Close()
	s, err := openDLQ(ctx, cfg, logger, "billing-sweep")
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	defer s.close()
	var rec *retry.Reconciler
	if cfg.StripeAPIKey != "" {
		rec, err = retry.NewReconciler(retry.ReconcileConfig{APIKey: cfg.StripeAPIKey, APIBase: cfg.StripeAPIBase, Topology: s.topo}, logger, store, s.pub)
		if err != nil {
			return err
		}
	}
	sweep, err := retry.NewSweep(retry.SweepConfig{MinAge: cfg.SweepMinAge, Limit: cfg.SweepLimit, MaxRedrives: cfg.SweepMaxRedrives}, logger, store, s.dlq, rec)
	if err != nil {
		return err
	}
	rep, err := sweep.Pass(ctx)
	if rep.Skipped {
		fmt.Fprintln(e.stdout, "sweep: another sweep holds the lock; nothing done")
		return nil
	}
	for _, p := range rep.Redriven {
		fmt.Fprintf(e.stdout, "re-driven %s %s (re-drive %d)\n", orDash(p.EventID), orDash(p.Type), p.Redrives)
	}
	reconciled := "reconciliation off (STRIPE_API_KEY not set)"
	if r := rep.Reconciled; r != nil {
		reconciled = fmt.Sprintf("reconciled %d missing of %d listed since %s", r.Enqueued, r.Listed, r.Since.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(e.stdout, "sweep: re-driven %d, left for a person %d (permanent %d, out of re-drives %d), waiting %d, %s, errors %d\n",
		len(rep.Redriven), rep.LeftForPerson(), rep.Permanent, rep.OutOfRedrives, rep.Waiting, reconciled, len(rep.Errors))
	return err
}
