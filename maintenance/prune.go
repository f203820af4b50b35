package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/models"
)

// Defaults of the pruning (config.Vars refers to DefaultPayloadRetention).
const (
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

// PruneCheckpoint is the sweep_checkpoints row where the pruning keeps,
// for each ledger status it prunes, the last row it looked at: a pass goes
// on from there, so its cost does not grow with the rows already pruned.
const PruneCheckpoint = "ledger-payload-pruned"

// PruneConfig configures a Prune.
type PruneConfig struct {
	// Retention is how long the payload of a processed or ignored event
	// is kept; 0 keeps every payload (a pass does nothing).
	Retention time.Duration
	// Batch, Limit and Pause bound the pruning: rows per statement, rows
	// per pass, wait between statements (defaults: DefaultPruneBatch,
	// DefaultPruneLimit, DefaultPrunePause).
	Batch int
	Limit int
	Pause time.Duration
	Now   func() time.Time
}

// PruneStore is what the pruning needs of the database (*models.Store).
type PruneStore interface {
	Checkpoint(ctx context.Context, name string) (string, error)
	SetCheckpoint(ctx context.Context, name, value string) error
	PrunePayloads(ctx context.Context, status string, after models.PruneCursor, cutoff time.Time, limit int) (models.PruneBatch, error)
}

// Prune empties the stored payloads of events done longer than the
// retention ago; their ledger rows stay, so redeliveries are still
// duplicates.
type Prune struct {
	cfg    PruneConfig
	logger *slog.Logger
	store  PruneStore
}

// NewPrune returns the pruning of store's ledger. A nil logger discards.
func NewPrune(cfg PruneConfig, logger *slog.Logger, store PruneStore) (*Prune, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case store == nil:
		return nil, errors.New("maintenance: prune: a store is required")
	case cfg.Retention < 0 || cfg.Batch < 0 || cfg.Limit < 0 || cfg.Pause < 0:
		return nil, fmt.Errorf("maintenance: prune: payload retention %s, batch %d, limit %d, pause %s: want >= 0", cfg.Retention, cfg.Batch, cfg.Limit, cfg.Pause)
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultPruneBatch
	}
	if cfg.Limit == 0 {
		cfg.Limit = DefaultPruneLimit
	}
	if cfg.Pause == 0 {
		cfg.Pause = DefaultPrunePause
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Prune{cfg: cfg, logger: logger, store: store}, nil
}

// prunedStatuses are the final ledger statuses whose payloads expire.
var prunedStatuses = []string{models.EventProcessed, models.EventIgnored}

// Pass empties the payloads of events done longer than Retention ago,
// Batch rows per statement and at most Limit rows a pass, saving its place
// after each batch, and returns how many it emptied. Dead events keep
// theirs: a replay needs it. An event processed after the pruning had
// passed its receipt time (parked, replayed later) keeps its payload.
func (p *Prune) Pass(ctx context.Context) (pruned int, err error) {
	if p.cfg.Retention == 0 {
		return 0, nil
	}
	cutoff := p.cfg.Now().Add(-p.cfg.Retention)
	saved, err := p.store.Checkpoint(ctx, PruneCheckpoint)
	if err != nil {
		return 0, fmt.Errorf("maintenance: prune: %w", err)
	}
	cursors := map[string]models.PruneCursor{}
	if saved != "" {
		if err := json.Unmarshal([]byte(saved), &cursors); err != nil {
			return 0, fmt.Errorf("maintenance: prune: checkpoint %s: %w", PruneCheckpoint, err)
		}
	}
	looked, batches := 0, 0
	defer func() {
		p.logger.Info("ledger payloads pruned", "pruned", pruned, "looked_at", looked, "batches", batches,
			"done_before", cutoff.UTC().Format(time.RFC3339), "limit_reached", looked >= p.cfg.Limit)
	}()
	for _, status := range prunedStatuses {
		for looked < p.cfg.Limit {
			if batches > 0 {
				if err := pause.For(ctx, p.cfg.Pause); err != nil {
					return pruned, fmt.Errorf("maintenance: prune: %w", err)
				}
			}
			limit := min(p.cfg.Batch, p.cfg.Limit-looked)
			b, err := p.store.PrunePayloads(ctx, status, cursors[status], cutoff, limit)
			if err != nil {
				return pruned, fmt.Errorf("maintenance: prune: %w", err)
			}
			batches++
			looked += b.Looked
			pruned += b.Pruned
			if b.Looked > 0 {
				cursors[status] = b.Next
				v, err := json.Marshal(cursors)
				if err == nil {
					err = p.store.SetCheckpoint(ctx, PruneCheckpoint, string(v))
				}
				if err != nil {
					return pruned, fmt.Errorf("maintenance: prune: save checkpoint: %w", err)
				}
			}
			if b.Looked < limit {
				break // none left before the cutoff
			}
		}
	}
	return pruned, nil
}
