package maintenance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/models/feed"
)

// DefaultChangeRetention is how long a published change stays in the
// outbox (config.Vars refers to it): a week to look up what the feed
// carried, far past any consumer's redelivery.
const DefaultChangeRetention = 7 * 24 * time.Hour

// PruneChangesConfig configures a PruneChanges.
type PruneChangesConfig struct {
	// Retention is how long a published change is kept; 0 keeps every
	// one (a pass does nothing).
	Retention time.Duration
	// Batch, Limit and Pause bound the pruning as PruneConfig's do
	// (defaults: DefaultPruneBatch, DefaultPruneLimit, DefaultPrunePause).
	Batch int
	Limit int
	Pause time.Duration
	Now   func() time.Time
}

// ChangeStore is what the pruning of changes needs of the database
// (*models.Store).
type ChangeStore interface{ DB() *gorm.DB }

// PruneChanges deletes the outbox rows of changes published longer than
// the retention ago; an unpublished change is never deleted.
type PruneChanges struct {
	cfg    PruneChangesConfig
	logger *slog.Logger
	store  ChangeStore
}

// NewPruneChanges returns the pruning of store's change outbox. A nil
// logger discards.
func NewPruneChanges(cfg PruneChangesConfig, logger *slog.Logger, store ChangeStore) (*PruneChanges, error) {
	switch {
	case store == nil:
		return nil, errors.New("maintenance: prune changes: a store is required")
	case cfg.Retention < 0 || cfg.Batch < 0 || cfg.Limit < 0 || cfg.Pause < 0:
		return nil, fmt.Errorf("maintenance: prune changes: retention %s, batch %d, limit %d, pause %s: want >= 0", cfg.Retention, cfg.Batch, cfg.Limit, cfg.Pause)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Batch = cmp.Or(cfg.Batch, DefaultPruneBatch)
	cfg.Limit = cmp.Or(cfg.Limit, DefaultPruneLimit)
	if cfg.Pause == 0 {
		cfg.Pause = DefaultPrunePause
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &PruneChanges{cfg: cfg, logger: logger, store: store}, nil
}

// Pass deletes the changes published before now - Retention, oldest
// first, Batch rows a statement and at most Limit a pass, and returns how
// many it deleted. Deleted rows are gone, so the next pass needs no
// bookmark to go on.
func (p *PruneChanges) Pass(ctx context.Context) (pruned int, err error) {
	if p.cfg.Retention == 0 {
		return 0, nil
	}
	cutoff := p.cfg.Now().Add(-p.cfg.Retention)
	defer func() {
		p.logger.Info("published changes pruned", "pruned", pruned, "published_before", cutoff.UTC().Format(time.RFC3339),
			"limit_reached", pruned >= p.cfg.Limit)
	}()
	for batches := 0; pruned < p.cfg.Limit; batches++ {
		if batches > 0 {
			if err := pause.For(ctx, p.cfg.Pause); err != nil {
				return pruned, fmt.Errorf("maintenance: prune changes: %w", err)
			}
		}
		limit := min(p.cfg.Batch, p.cfg.Limit-pruned)
		n, err := feed.PrunePublished(ctx, p.store.DB(), cutoff, limit)
		if err != nil {
			return pruned, fmt.Errorf("maintenance: prune changes: %w", err)
		}
		pruned += int(n)
		if int(n) < limit {
			break // none left before the cutoff
		}
	}
	return pruned, nil
}
