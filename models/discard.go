package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// MaxDiscardReason bounds a discard's reason (the column's length, in
// characters).
const MaxDiscardReason = 1024

// RecordDiscard records d (its DiscardedAt set to now when zero) and marks
// the event's ledger row discarded when it is dead, in one transaction. A
// processed or ignored row stays as it is (another copy applied); an event
// without a row (never verified) has its discard recorded all the same.
func (s *Store) RecordDiscard(ctx context.Context, d EventDiscard) error {
	switch {
	case d.EventID == "":
		return errors.New("models: record discard: event id is empty")
	case d.DiscardedBy == "" || d.Reason == "":
		return errors.New("models: record discard: who and why are required")
	}
	if d.DiscardedAt.IsZero() {
		d.DiscardedAt = s.now()
	}
	d.ID = 0
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&d).Error; err != nil {
			return err
		}
		return tx.Model(&StripeEvent{}).Where("id = ? AND status = ?", d.EventID, EventDead).Update("status", EventDiscarded).Error
	})
	return translate("record discard of "+d.EventID, err)
}

// Discards returns the discards of the events ids, oldest first.
func (s *Store) Discards(ctx context.Context, ids []string) ([]EventDiscard, error) {
	var out []EventDiscard
	if len(ids) == 0 {
		return out, nil
	}
	err := s.db.WithContext(ctx).Where("event_id IN ?", ids).Order("discarded_at, id").Find(&out).Error
	return out, translate("discards", err)
}

// Event reads the ledger row id without its payload; ErrNotFound when
// there is none.
func (s *Store) Event(ctx context.Context, id string) (StripeEvent, error) {
	var ev StripeEvent
	err := s.db.WithContext(ctx).Omit("payload").Where("id = ?", id).Take(&ev).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ev, fmt.Errorf("models: event %s: %w", id, ErrNotFound)
	}
	return ev, translate("event "+id, err)
}
