package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/reconcile"
)

// SweepLockName is the database lock that keeps sweeps from running at once.
const SweepLockName = "billing-sweep"

// SweepStore is what the sweep needs of the database (*models.Store).
type SweepStore interface {
	WithLock(ctx context.Context, name string, timeout time.Duration, fn func(ctx context.Context) error) (bool, error)
	IncrementRedrives(ctx context.Context, id string) (int, error)
	SetCheckpoint(ctx context.Context, name, value string) error
	Checkpoint(ctx context.Context, name string) (string, error)
	PrunePayloads(ctx context.Context, status string, after models.PruneCursor, cutoff time.Time, limit int) (models.PruneBatch, error)
}

// LastSweepCheckpoint is the sweep_checkpoints row where each pass that ran
// saves its SweepSummary, for `billing status`.
const LastSweepCheckpoint = "sweep-last-pass"

// Reconciler enqueues the events Stripe sent that never arrived:
// *reconcile.Reconciler.
type Reconciler interface {
	Reconcile(ctx context.Context) (reconcile.Result, error)
}

// Defaults of a sweep (config.Vars refers to them).
const (
	DefaultSweepMinAge      = 15 * time.Minute
	DefaultSweepLimit       = 100
	DefaultSweepMaxRedrives = 3
	// DefaultPayloadRetention is three times the 30 days of events that
	// Stripe's Events API lists: a payload is kept well past the time
	// reconciliation or a replay could ask for it.
	DefaultPayloadRetention = 90 * 24 * time.Hour
	// DefaultPruneBatch is the most ledger rows one prune statement
	// touches: a short statement holding few row locks.
	DefaultPruneBatch = 1000
	// DefaultPruneLimit is the most ledger rows a pass looks at for
	// pruning; the next pass goes on from there.
	DefaultPruneLimit = 100_000
	// DefaultPrunePause is the wait between two prune batches, leaving
	// the database to the worker.
	DefaultPrunePause = 20 * time.Millisecond
)

// SweepConfig configures a Sweep.
type SweepConfig struct {
	// MinAge is how long a transient failure stays parked before the
	// sweep re-drives it.
	MinAge time.Duration
	// Limit is the most events re-driven in one pass.
	Limit int
	// MaxRedrives is the most automatic re-drives of one event.
	MaxRedrives int
	// PayloadRetention is how long the payload of a processed or ignored
	// event is kept; 0 keeps every payload.
	PayloadRetention time.Duration
	// PruneBatch, PruneLimit and PrunePause bound the pruning: rows per
	// statement, rows per pass, wait between statements (defaults:
	// DefaultPruneBatch, DefaultPruneLimit, DefaultPrunePause).
	PruneBatch int
	PruneLimit int
	PrunePause time.Duration
	// Every is the period of `sweep --every`, saved with each pass so that
	// `billing status` can tell a sweep that stopped; 0 for cron.
	Every time.Duration
	Now   func() time.Time
}

// Sweep is one pass for cron: it re-drives parked transient failures that
// have waited long enough, and reconciles with Stripe's Events API when a
// Reconciler is given. A database lock keeps two passes from overlapping.
type Sweep struct {
	cfg    SweepConfig
	logger *slog.Logger
	store  SweepStore
	dlq    *Queue
	rec    Reconciler
}

// SweepReport is what one pass did.
type SweepReport struct {
	// At is when the pass ended.
	At time.Time
	// Skipped is true when another sweep held the lock: nothing was done.
	Skipped bool
	// Redriven lists the events sent back to the work queue.
	Redriven []Parked
	// Permanent counts parked events that wait for a person: permanent
	// failures, delivery-limit parkings and unknown classes.
	Permanent int
	// OutOfRedrives counts transient failures that used up their
	// automatic re-drives; they wait for a person too.
	OutOfRedrives int
	// Waiting counts transient failures parked less than MinAge ago. A
	// pass stops looking once it has re-driven Limit events, so the counts
	// cover the part of the DLQ it looked at.
	Waiting int
	// Reconciled is the Stripe reconciliation, when it ran.
	Reconciled *reconcile.Result
	// Pruned counts the payloads emptied by the payload retention.
	Pruned int
	// Errors are the failures of the pass; the pass did what it could.
	Errors []error
}

// SweepSummary is what a pass did, as saved under LastSweepCheckpoint.
type SweepSummary struct {
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
func (r SweepReport) Summary(at time.Time) SweepSummary {
	sum := SweepSummary{At: at.UTC(), Redriven: len(r.Redriven), Permanent: r.Permanent, OutOfRedrives: r.OutOfRedrives, Waiting: r.Waiting, Pruned: r.Pruned}
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

// ParseSweepSummary reads a value saved under LastSweepCheckpoint.
func ParseSweepSummary(value string) (SweepSummary, error) {
	var sum SweepSummary
	if err := json.Unmarshal([]byte(value), &sum); err != nil {
		return sum, fmt.Errorf("dlq: parse sweep summary: %w", err)
	}
	return sum, nil
}

// LeftForPerson counts the parked events the sweep will never re-drive.
func (r SweepReport) LeftForPerson() int { return r.Permanent + r.OutOfRedrives }

// NewSweep returns a sweep. rec may be nil: no reconciliation.
// A nil logger discards.
func NewSweep(cfg SweepConfig, logger *slog.Logger, store SweepStore, dlq *Queue, rec Reconciler) (*Sweep, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case store == nil || dlq == nil:
		return nil, errors.New("dlq: sweep: store and dlq are required")
	case cfg.MinAge < 0 || cfg.Limit <= 0 || cfg.MaxRedrives < 0:
		return nil, fmt.Errorf("dlq: sweep: min age %s, limit %d, max redrives %d: want >= 0, > 0, >= 0", cfg.MinAge, cfg.Limit, cfg.MaxRedrives)
	case cfg.PayloadRetention < 0 || cfg.PruneBatch < 0 || cfg.PruneLimit < 0 || cfg.PrunePause < 0:
		return nil, fmt.Errorf("dlq: sweep: payload retention %s, prune batch %d, limit %d, pause %s: want >= 0", cfg.PayloadRetention, cfg.PruneBatch, cfg.PruneLimit, cfg.PrunePause)
	}
	if cfg.PruneBatch == 0 {
		cfg.PruneBatch = DefaultPruneBatch
	}
	if cfg.PruneLimit == 0 {
		cfg.PruneLimit = DefaultPruneLimit
	}
	if cfg.PrunePause == 0 {
		cfg.PrunePause = DefaultPrunePause
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if r, ok := rec.(*reconcile.Reconciler); ok && r == nil {
		rec = nil // a typed nil would be called
	}
	return &Sweep{cfg: cfg, logger: logger, store: store, dlq: dlq, rec: rec}, nil
}

// Pass runs one sweep. It returns an error when the pass failed in part or
// in full (the report says what was done); when another sweep holds the
// lock it returns at once with Skipped set and no error.
func (s *Sweep) Pass(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	acquired, err := s.store.WithLock(ctx, SweepLockName, 0, func(ctx context.Context) error {
		if err := s.redrive(ctx, &rep); err != nil {
			rep.Errors = append(rep.Errors, err)
		}
		if s.rec != nil {
			res, err := s.rec.Reconcile(ctx)
			rep.Reconciled = &res
			if err != nil {
				rep.Errors = append(rep.Errors, err)
			}
		}
		if s.cfg.PayloadRetention > 0 {
			if err := s.prune(ctx, &rep); err != nil {
				rep.Errors = append(rep.Errors, err)
			}
		}
		// Saved under the lock, so the row always holds the latest pass.
		rep.At = s.cfg.Now()
		sum := rep.Summary(rep.At)
		sum.EverySeconds = s.cfg.Every.Seconds()
		if sum.LastSuccess.IsZero() {
			sum.LastSuccess = s.lastSuccess(ctx)
		}
		b, err := json.Marshal(sum)
		if err == nil {
			err = s.store.SetCheckpoint(ctx, LastSweepCheckpoint, string(b))
		}
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("dlq: sweep: save summary: %w", err))
		}
		return nil
	})
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Errorf("dlq: sweep: %w", err))
	}
	rep.Skipped = !acquired && err == nil
	return rep, errors.Join(rep.Errors...)
}

// lastSuccess is the last successful pass's end that the saved summary
// holds; zero when none (or it cannot be read: the pass has failed anyway).
func (s *Sweep) lastSuccess(ctx context.Context) time.Time {
	saved, err := s.store.Checkpoint(ctx, LastSweepCheckpoint)
	if err != nil || saved == "" {
		return time.Time{}
	}
	prev, err := ParseSweepSummary(saved)
	if err != nil {
		return time.Time{}
	}
	return prev.LastSuccess
}

// redrive sends back parked transient failures old enough to retry.
func (s *Sweep) redrive(ctx context.Context, rep *SweepReport) error {
	now := s.cfg.Now()
	res, err := s.dlq.Move(ctx, MoveOptions{
		Redrive: true,
		Limit:   s.cfg.Limit,
		Match: func(_ context.Context, p Parked) (bool, error) {
			switch {
			case !failure.Redrivable(p.Class):
				rep.Permanent++
				return false, nil
			case p.Redrives >= s.cfg.MaxRedrives:
				rep.OutOfRedrives++
				return false, nil
			case p.ParkedAt.IsZero() || p.Age(now) < s.cfg.MinAge:
				rep.Waiting++
				return false, nil
			}
			return true, nil
		},
		Moved: func(ctx context.Context, p Parked) {
			// The header travels with the message and is what limits
			// re-drives; the ledger's count is for people reading it.
			if _, err := s.store.IncrementRedrives(ctx, p.EventID); err != nil {
				s.logger.Warn("re-drive not counted in the ledger", "event_id", p.EventID, "error", err)
			}
		},
	})
	rep.Redriven = res.Moved
	if err != nil {
		return fmt.Errorf("dlq: sweep: re-drive: %w", err)
	}
	return nil
}

// PruneCheckpoint is the sweep_checkpoints row where the pruning keeps,
// for each ledger status it prunes, the last row it looked at: a pass goes
// on from there, so its cost does not grow with the rows already pruned.
const PruneCheckpoint = "ledger-payload-pruned"

// prunedStatuses are the final ledger statuses whose payloads expire.
var prunedStatuses = []string{models.EventProcessed, models.EventIgnored}

// prune empties the payloads of events done longer than PayloadRetention
// ago, PruneBatch rows per statement and at most PruneLimit rows a pass,
// saving its place after each batch. Dead events keep theirs: a replay
// needs it. An event processed after the pruning had passed its receipt
// time (parked, replayed later) keeps its payload.
func (s *Sweep) prune(ctx context.Context, rep *SweepReport) error {
	cutoff := s.cfg.Now().Add(-s.cfg.PayloadRetention)
	saved, err := s.store.Checkpoint(ctx, PruneCheckpoint)
	if err != nil {
		return fmt.Errorf("dlq: sweep: prune: %w", err)
	}
	cursors := map[string]models.PruneCursor{}
	if saved != "" {
		if err := json.Unmarshal([]byte(saved), &cursors); err != nil {
			return fmt.Errorf("dlq: sweep: prune: checkpoint %s: %w", PruneCheckpoint, err)
		}
	}
	looked, batches := 0, 0
	defer func() {
		s.logger.Info("ledger payloads pruned", "pruned", rep.Pruned, "looked_at", looked, "batches", batches,
			"done_before", cutoff.UTC().Format(time.RFC3339), "limit_reached", looked >= s.cfg.PruneLimit)
	}()
	for _, status := range prunedStatuses {
		for looked < s.cfg.PruneLimit {
			if batches > 0 {
				t := time.NewTimer(s.cfg.PrunePause)
				select {
				case <-ctx.Done():
					t.Stop()
					return fmt.Errorf("dlq: sweep: prune: %w", ctx.Err())
				case <-t.C:
				}
			}
			limit := min(s.cfg.PruneBatch, s.cfg.PruneLimit-looked)
			b, err := s.store.PrunePayloads(ctx, status, cursors[status], cutoff, limit)
			if err != nil {
				return fmt.Errorf("dlq: sweep: prune: %w", err)
			}
			batches++
			looked += b.Looked
			rep.Pruned += b.Pruned
			if b.Looked > 0 {
				cursors[status] = b.Next
				v, err := json.Marshal(cursors)
				if err == nil {
					err = s.store.SetCheckpoint(ctx, PruneCheckpoint, string(v))
				}
				if err != nil {
					return fmt.Errorf("dlq: sweep: prune: save checkpoint: %w", err)
				}
			}
			if b.Looked < limit {
				break // none left before the cutoff
			}
		}
	}
	return nil
}

// Every runs a pass at once and then every interval until ctx is done,
// and returns nil then. Each pass's report goes to done (which records and
// prints it); a failed pass is logged and the next one runs on time.
func (s *Sweep) Every(ctx context.Context, interval time.Duration, done func(SweepReport)) error {
	if interval <= 0 {
		return fmt.Errorf("dlq: sweep: interval %s, want positive", interval)
	}
	for {
		rep, err := s.Pass(ctx)
		done(rep)
		if err != nil && ctx.Err() == nil {
			s.logger.Error("sweep pass failed; the next one runs on schedule", "error", err, "every", interval.String())
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
