package feed

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// PrunePublished deletes up to limit rows published before cutoff, oldest
// first on the index idx_change_outbox_published (an unpublished row is
// never deleted), and returns how many it deleted: one short statement,
// which the sweep repeats while it deletes a whole batch.
func PrunePublished(ctx context.Context, db *gorm.DB, cutoff time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("feed: prune published: limit %d, want positive", limit)
	}
	res := db.WithContext(ctx).Exec(
		"DELETE FROM change_outbox WHERE published_at < ? ORDER BY published_at, seq LIMIT ?", cutoff, limit)
	if res.Error != nil {
		return 0, fmt.Errorf("feed: prune published changes: %w", res.Error)
	}
	return res.RowsAffected, nil
}
