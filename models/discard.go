package models

import (
	"context"
	"errors"

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
