// Package maintenance owns the sweep's chores, each a service with one
// job and a pass of its own: Redrive sends parked transient failures back
// to work, Reconcile enqueues what Stripe sent and never arrived, Prune
// empties expired ledger payloads, PruneChanges deletes published changes
// past their retention. A Maintainer runs them together, one
// pass for cron or one every interval, under a database lock so that two
// sweeps never overlap, and saves what each pass did for `billing status`;
// each pass also reads what the last `billing audit` found, for its
// metric.
package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/reconcile"
)

// LockName is the database lock that keeps sweeps from running at once.
const LockName = "billing-sweep"

// Store is what the maintainer needs of the database (*models.Store).
type Store interface {
	WithLock(ctx context.Context, name string, timeout time.Duration, fn func(ctx context.Context) error) (bool, error)
	SetCheckpoint(ctx context.Context, name, value string) error
	Checkpoint(ctx context.Context, name string) (string, error)
}

// LastPassCheckpoint is the sweep_checkpoints row where each pass that ran
// saves its Summary, for `billing status`.
const LastPassCheckpoint = "sweep-last-pass"

// Config configures a Maintainer.
type Config struct {
	// Every is the period of `sweep --every`, saved with each pass so that
	// `billing status` can tell a sweep that stopped; 0 for cron.
	Every time.Duration
	Now   func() time.Time
}

// Maintainer runs the chores: a pass runs each in turn under the lock.
type Maintainer struct {
	cfg       Config
	logger    *slog.Logger
	store     Store
	redrive   *Redrive
	reconcile *Reconcile
	prune     *Prune
	changes   *PruneChanges
}

// Report is what one pass did.
type Report struct {
	// At is when the pass ended.
	At time.Time
	// Skipped is true when another sweep held the lock: nothing was done.
	Skipped bool
	// RedriveResult is the re-drive's.
	RedriveResult
	// Reconciled is the Stripe reconciliation, when it ran.
	Reconciled *reconcile.Result
	// Pruned counts the payloads emptied by the payload retention.
	Pruned int
	// ChangesPruned counts the published changes deleted from the outbox.
	ChangesPruned int
	// Audit is what the last `billing audit` found, nil when none ran:
	// each pass reads it, for billing_audit_drift_objects.
	Audit *audit.Summary
	// Errors are the failures of the pass; the pass did what it could.
	Errors []error
}

// Summary is what a pass did, as saved under LastPassCheckpoint.
type Summary struct {
	At            time.Time `json:"at"`
	Redriven      int       `json:"redriven"`
	Permanent     int       `json:"permanent"`
	OutOfRedrives int       `json:"out_of_redrives"`
	Waiting       int       `json:"waiting"`
	// Reconciled is the number of missing events enqueued from Stripe;
	// nil when the pass did not reconcile (no STRIPE_API_KEY).
	Reconciled *int     `json:"reconciled,omitempty"`
	Pruned     int      `json:"pruned"`
	Errors     []string `json:"errors,omitempty"`
	// EverySeconds is the period of the sweep that ran the pass (`sweep
	// --every`); 0 for a pass run by cron.
	EverySeconds float64 `json:"every_seconds,omitempty"`
	// LastSuccess is when the latest pass without an error ended: this
	// pass's At, or an earlier pass's when this one failed.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Summary is r as saved, for a pass that ended at.
func (r Report) Summary(at time.Time) Summary {
	sum := Summary{At: at.UTC(), Redriven: len(r.Redriven), Permanent: r.Permanent, OutOfRedrives: r.OutOfRedrives, Waiting: r.Waiting, Pruned: r.Pruned}
	if len(r.Errors) == 0 {
		sum.LastSuccess = sum.At
	}
	if r.Reconciled != nil {
		n := r.Reconciled.Enqueued
		sum.Reconciled = &n
	}
	for _, err := range r.Errors {
		sum.Errors = append(sum.Errors, err.Error())
	}
	return sum
}

// ParseSummary reads a value saved under LastPassCheckpoint.
func ParseSummary(value string) (Summary, error) {
	var sum Summary
	if err := json.Unmarshal([]byte(value), &sum); err != nil {
		return sum, fmt.Errorf("maintenance: parse sweep summary: %w", err)
	}
	return sum, nil
}

// New returns the maintainer of the chores given; rec may be nil (no
// Stripe key: no reconciliation), and changes (no pruning of the change
// outbox). A nil logger discards.
func New(cfg Config, logger *slog.Logger, store Store, redrive *Redrive, rec *Reconcile, prune *Prune, changes *PruneChanges) (*Maintainer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case store == nil || redrive == nil || prune == nil:
		return nil, errors.New("maintenance: store, re-drive and prune are required")
	case cfg.Every < 0:
		return nil, fmt.Errorf("maintenance: every %s, want zero (cron) or positive", cfg.Every)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Maintainer{cfg: cfg, logger: logger, store: store, redrive: redrive, reconcile: rec, prune: prune, changes: changes}, nil
}

// Pass runs every chore once. It returns an error when the pass failed in
// part or in full (the report says what was done); when another sweep
// holds the lock it returns at once with Skipped set and no error.
func (m *Maintainer) Pass(ctx context.Context) (Report, error) {
	var rep Report
	acquired, err := m.store.WithLock(ctx, LockName, 0, func(ctx context.Context) error {
		var err error
		if rep.RedriveResult, err = m.redrive.Pass(ctx); err != nil {
			rep.Errors = append(rep.Errors, err)
		}
		if m.reconcile != nil {
			res, err := m.reconcile.Pass(ctx)
			rep.Reconciled = &res
			if err != nil {
				rep.Errors = append(rep.Errors, err)
			}
		}
		if rep.Pruned, err = m.prune.Pass(ctx); err != nil {
			rep.Errors = append(rep.Errors, err)
		}
		if m.changes != nil {
			if rep.ChangesPruned, err = m.changes.Pass(ctx); err != nil {
				rep.Errors = append(rep.Errors, err)
			}
		}
		if rep.Audit, err = m.lastAudit(ctx); err != nil {
			rep.Errors = append(rep.Errors, err)
		}
		// Saved under the lock, so the row always holds the latest pass.
		rep.At = m.cfg.Now()
		sum := rep.Summary(rep.At)
		sum.EverySeconds = m.cfg.Every.Seconds()
		if sum.LastSuccess.IsZero() {
			sum.LastSuccess = m.lastSuccess(ctx)
		}
		b, err := json.Marshal(sum)
		if err == nil {
			err = m.store.SetCheckpoint(ctx, LastPassCheckpoint, string(b))
		}
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("maintenance: save summary: %w", err))
		}
		return nil
	})
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Errorf("maintenance: %w", err))
	}
	rep.Skipped = !acquired && err == nil
	return rep, errors.Join(rep.Errors...)
}

// lastSuccess is the last successful pass's end that the saved summary
// holds; zero when none (or it cannot be read: the pass has failed anyway).
func (m *Maintainer) lastSuccess(ctx context.Context) time.Time {
	saved, err := m.store.Checkpoint(ctx, LastPassCheckpoint)
	if err != nil || saved == "" {
		return time.Time{}
	}
	prev, err := ParseSummary(saved)
	if err != nil {
		return time.Time{}
	}
	return prev.LastSuccess
}

// Run runs a pass at once and then every cfg.Every until ctx is done, and
// returns nil then. Each pass's report goes to done (which records and
// prints it); a failed pass is logged and the next one runs on time.
func (m *Maintainer) Run(ctx context.Context, done func(Report)) error {
	if m.cfg.Every <= 0 {
		return fmt.Errorf("maintenance: every %s, want positive", m.cfg.Every)
	}
	for {
		rep, err := m.Pass(ctx)
		done(rep)
		if err != nil && ctx.Err() == nil {
			m.logger.Error("sweep pass failed; the next one runs on schedule", "error", err, "every", m.cfg.Every.String())
		}
		if pause.For(ctx, m.cfg.Every) != nil {
			return nil
		}
	}
}

// lastAudit reads what the last `billing audit` saved; nil when none ran.
func (m *Maintainer) lastAudit(ctx context.Context) (*audit.Summary, error) {
	v, err := m.store.Checkpoint(ctx, audit.LastCheckpoint)
	if err != nil || v == "" {
		return nil, err
	}
	s, err := audit.ParseSummary(v)
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	return &s, nil
}
