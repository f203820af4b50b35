package feed

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Unpublished returns up to limit rows not yet published, in seq order,
// on the index idx_change_outbox_published: the relay's next batch. A row
// committed after a later seq (another object's change, in another
// transaction) is found by a later call, which is why the relay reads what
// is unpublished rather than what follows a cursor.
func Unpublished(ctx context.Context, db *gorm.DB, limit int) ([]Outbox, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("feed: unpublished: limit %d, want positive", limit)
	}
	var rows []Outbox
	err := db.WithContext(ctx).Where("published_at IS NULL").Order("seq").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("feed: read unpublished changes: %w", err)
	}
	return rows, nil
}

// MarkPublished stamps published_at = at on the rows seqs that are still
// unpublished (the broker confirmed them) and returns how many it stamped.
func MarkPublished(ctx context.Context, db *gorm.DB, seqs []uint64, at time.Time) (int64, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	res := db.WithContext(ctx).Model(&Outbox{}).Where("seq IN ? AND published_at IS NULL", seqs).Update("published_at", at)
	if res.Error != nil {
		return 0, fmt.Errorf("feed: mark %d changes published: %w", len(seqs), res.Error)
	}
	return res.RowsAffected, nil
}

// Backlog is what waits in the outbox.
type Backlog struct {
	// Depth counts the unpublished rows.
	Depth int64
	// Oldest is the creation time of the first unpublished row in seq
	// order; zero when none waits.
	Oldest time.Time
}

// Pending returns the outbox's backlog, both on the index
// idx_change_outbox_published.
func Pending(ctx context.Context, db *gorm.DB) (Backlog, error) {
	var b Backlog
	db = db.WithContext(ctx)
	if err := db.Model(&Outbox{}).Where("published_at IS NULL").Count(&b.Depth).Error; err != nil {
		return b, fmt.Errorf("feed: count unpublished changes: %w", err)
	}
	if b.Depth == 0 {
		return b, nil
	}
	var first []Outbox
	err := db.Select("seq", "created_at").Where("published_at IS NULL").Order("seq").Limit(1).Find(&first).Error
	if err != nil {
		return b, fmt.Errorf("feed: oldest unpublished change: %w", err)
	}
	if len(first) > 0 {
		b.Oldest = first[0].CreatedAt
	}
	return b, nil
}
