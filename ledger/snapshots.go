package ledger

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/models"
)

// Cursor is a position saved (models.SaveCheckpoint) in the transaction
// that writes what it counts: a backfill's page and its place commit
// together. A zero Cursor saves nothing.
type Cursor struct {
	Name, Value string
}

// SnapshotResult is what ApplySnapshots did with a page of objects.
type SnapshotResult struct {
	// Written counts the objects whose own row the page created or
	// changed; the others were as their rows already said, or older.
	Written int
	// Failed are the objects that cannot be read (a failure.Schema
	// error naming the field), by id: nothing of theirs was written.
	Failed map[string]error
}

// ApplySnapshots folds snaps (billing.Snapshot: objects as Stripe served
// them) into their rows by the rules events are folded by, and saves
// cursor, in one transaction. A snapshot claims no ledger row: it is no
// event of Stripe's; its trace is the row's last event id and, when it
// moved an object's status, a history row of source backfill. Applying
// the same objects again writes nothing. err is non-nil only when
// nothing was committed.
func (p *Processor) ApplySnapshots(ctx context.Context, snaps []billing.Event, cursor Cursor) (SnapshotResult, error) {
	res := SnapshotResult{Failed: map[string]error{}}
	planned := make([]billing.Planned, 0, len(snaps))
	for _, ev := range snaps {
		if !billing.IsSnapshot(ev) {
			return SnapshotResult{}, fmt.Errorf("ledger: apply snapshots: %s is an event, not a snapshot", ev.ID)
		}
		pl, err := billing.PlanOf(ev)
		if err != nil {
			res.Failed[ev.ObjectID] = err
			continue
		}
		planned = append(planned, pl)
	}
	err := p.inTx(ctx, func(tx *gorm.DB) error {
		// No tie with a snapshot asks Stripe: an event wins the second of
		// the fetch (billing's order).
		applied, err := p.writeSets(ctx, tx, planned, billing.Ties{})
		if err != nil {
			return err
		}
		res.Written = len(applied)
		if cursor.Name == "" {
			return nil
		}
		return models.SaveCheckpoint(tx, cursor.Name, cursor.Value, p.now())
	})
	if err != nil {
		return SnapshotResult{}, fmt.Errorf("ledger: apply %d snapshots: %w", len(planned), err)
	}
	return res, nil
}
