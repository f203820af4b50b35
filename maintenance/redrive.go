package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
)

// Defaults of the re-drive (config.Vars refers to them).
const (
	DefaultRedriveMinAge = 15 * time.Minute
	DefaultRedriveLimit  = 100
	DefaultMaxRedrives   = 3
)

// RedriveConfig configures a Redrive.
type RedriveConfig struct {
	// MinAge is how long a transient failure stays parked before it is
	// re-driven.
	MinAge time.Duration
	// Limit is the most events re-driven in one pass.
	Limit int
	// MaxRedrives is the most automatic re-drives of one event.
	MaxRedrives int
	Now         func() time.Time
}

// RedriveStore is what the re-drive needs of the database (*models.Store).
type RedriveStore interface {
	IncrementRedrives(ctx context.Context, id string) (int, error)
}

// Redrive sends parked transient failures that have waited long enough
// back to the work queue, each at most MaxRedrives times; the rest wait
// for a person.
type Redrive struct {
	cfg    RedriveConfig
	logger *slog.Logger
	store  RedriveStore
	dlq    *dlq.Queue
}

// RedriveResult is what one re-drive pass did.
type RedriveResult struct {
	// Redriven lists the events sent back to the work queue.
	Redriven []dlq.Parked
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
}

// LeftForPerson counts the parked events the re-drive will never send back.
func (r RedriveResult) LeftForPerson() int { return r.Permanent + r.OutOfRedrives }

// NewRedrive returns the re-drive of queue's parked events. A nil logger
// discards.
func NewRedrive(cfg RedriveConfig, logger *slog.Logger, store RedriveStore, queue *dlq.Queue) (*Redrive, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case store == nil || queue == nil:
		return nil, errors.New("maintenance: re-drive: store and dlq are required")
	case cfg.MinAge < 0 || cfg.Limit <= 0 || cfg.MaxRedrives < 0:
		return nil, fmt.Errorf("maintenance: re-drive: min age %s, limit %d, max redrives %d: want >= 0, > 0, >= 0", cfg.MinAge, cfg.Limit, cfg.MaxRedrives)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Redrive{cfg: cfg, logger: logger, store: store, dlq: queue}, nil
}

// Pass re-drives the parked transient failures old enough to retry, at
// most Limit. The result holds what was done when it fails part way.
func (r *Redrive) Pass(ctx context.Context) (RedriveResult, error) {
	var out RedriveResult
	now := r.cfg.Now()
	res, err := r.dlq.Move(ctx, dlq.MoveOptions{
		Redrive: true,
		Limit:   r.cfg.Limit,
		Match: func(_ context.Context, p dlq.Parked) (bool, error) {
			switch {
			case !failure.Redrivable(p.Class):
				out.Permanent++
				return false, nil
			case p.Redrives >= r.cfg.MaxRedrives:
				out.OutOfRedrives++
				return false, nil
			case p.ParkedAt.IsZero() || p.Age(now) < r.cfg.MinAge:
				out.Waiting++
				return false, nil
			}
			return true, nil
		},
		Moved: func(ctx context.Context, p dlq.Parked) {
			// The header travels with the message and is what limits
			// re-drives; the ledger's count is for people reading it.
			if _, err := r.store.IncrementRedrives(ctx, p.EventID); err != nil {
				r.logger.Warn("re-drive not counted in the ledger", "event_id", p.EventID, "error", err)
			}
		},
	})
	out.Redriven = res.Moved
	if err != nil {
		return out, fmt.Errorf("maintenance: re-drive: %w", err)
	}
	return out, nil
}
