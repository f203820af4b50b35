package main

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/reconcile"
)

const sweepUsage = `One pass for cron; safe to run from several hosts at once (a database lock
lets one pass run, the others exit 0 saying so).

  - Re-drives parked events whose class is transient and that have been in
    the DLQ longer than SWEEP_MIN_AGE, at most SWEEP_LIMIT a run and at most
    SWEEP_MAX_REDRIVES times per event. Permanent failures and events parked
    by the delivery limit wait for a person (billing dlq replay).
  - When STRIPE_API_KEY is set, lists Stripe's events since the last run
    (at most 30 days back) and enqueues each one missing from the ledger.
  - Empties the stored payload of events processed or ignored longer than
    LEDGER_PAYLOAD_RETENTION ago (default 90 days; off keeps them), 1,000
    rows a statement, at most 100,000 a run; their rows stay, so Stripe's
    redeliveries are still duplicates. Dead events keep their payloads.
    Deletes published changes older than CHANGE_FEED_RETENTION likewise.

Prints a summary; exits non-zero when any part failed.

With --every, it runs a pass every DURATION until stopped (docker-compose
runs it so) and serves /metrics, /healthz and /readyz on METRICS_ADDR; a
failed pass is logged and the next one runs on time.`

func runSweep(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "sweep", sweepUsage)
	every := fs.Duration("every", 0, "run a pass every `DURATION` until stopped, serving metrics on METRICS_ADDR (0: one pass, for cron)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *every < 0 {
		return fmt.Errorf("%w: --every must not be negative", errUsage)
	}
	cfg, logger, err := loadConfig(e, jsonLogs)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "sweep", 4)
	if err != nil {
		return err
	}
	defer store.Close()
	s, err := openDLQ(ctx, cfg, logger, "billing-sweep", fullTopology(cfg))
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	defer s.close()
	reg := metrics.NewRegistry()
	m := metrics.New(reg) // served with --every
	redrive, err := maintenance.NewRedrive(maintenance.RedriveConfig{
		MinAge: cfg.SweepMinAge, Limit: cfg.SweepLimit, MaxRedrives: cfg.SweepMaxRedrives,
	}, logger, store, s.dlq)
	if err != nil {
		return err
	}
	var rec *maintenance.Reconcile // nil without a key: no reconciliation
	if cfg.StripeAPIKey != "" {
		rec, err = maintenance.NewReconcile(reconcile.Config{
			APIKey: cfg.StripeAPIKey, APIBase: cfg.StripeAPIBase, Topology: s.topo, Observe: m.StripeCall,
		}, logger, store, s.pub)
		if err != nil {
			return err
		}
	}
	prune, err := maintenance.NewPrune(maintenance.PruneConfig{Retention: cfg.PayloadRetention}, logger, store)
	if err != nil {
		return err
	}
	changes, cerr := maintenance.NewPruneChanges(maintenance.PruneChangesConfig{Retention: cfg.ChangeRetention}, logger, store)
	sweep, err := maintenance.New(maintenance.Config{Every: *every}, logger, store, redrive, rec, prune, changes)
	if err = errors.Join(cerr, err); err != nil {
		return err
	}
	if *every == 0 {
		rep, err := sweep.Pass(ctx)
		rep.WriteText(e.stdout)
		return err
	}

	m.SweepInterval.Set(every.Seconds())
	srv, err := metrics.NewServer(metrics.ServerConfig{Addr: cfg.MetricsAddr, Registry: reg, Checks: []metrics.Check{{Name: "database", Probe: store.Ping}}}, logger)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error {
		return sweep.Run(gctx, func(rep maintenance.Report) {
			m.RecordSweep(rep)
			rep.WriteText(e.stdout)
		})
	})
	return g.Wait()
}
