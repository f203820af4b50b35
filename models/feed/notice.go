package feed

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// Notice is one change `billing notify` was to notify: the dedupe record
// (table change_notices, migration 00012).
type Notice struct {
	ID        string    `gorm:"column:id;primaryKey"` // changes.Change.ID
	Notice    string    `gorm:"column:notice"`        // payment_failed, dispute_opened
	ObjectID  string    `gorm:"column:object_id"`
	Recipient *string   `gorm:"column:recipient"`
	Outcome   string    `gorm:"column:outcome"` // Notice* outcomes
	Detail    *string   `gorm:"column:detail"`
	CreatedAt time.Time `gorm:"column:created_at"`
}

// TableName implements gorm's tabler.
func (Notice) TableName() string { return "change_notices" }

// Outcomes of a notice.
const (
	NoticeSending     = "sending" // claimed, never seen committed
	NoticeSent        = "sent"
	NoticeRefused     = "refused"      // the SMTP server refused the recipient or the message (5xx)
	NoticeNoRecipient = "no_recipient" // no address to send to
)

// ClaimNotice inserts n as being sent, in tx, and says whether it is new.
// When another transaction holds n's id, it waits for that one's end; an
// id already recorded returns its outcome and new false. The caller sends,
// then FinishNotice, then commits: the row's lock keeps a second delivery
// of the change from sending too.
func ClaimNotice(tx *gorm.DB, n Notice) (outcome string, isNew bool, err error) {
	n.Outcome = NoticeSending
	res := tx.Exec("INSERT INTO change_notices (id, notice, object_id, outcome, created_at) VALUES (?, ?, ?, ?, ?) "+
		"ON DUPLICATE KEY UPDATE id = id", n.ID, n.Notice, n.ObjectID, n.Outcome, n.CreatedAt)
	if res.Error != nil {
		return "", false, fmt.Errorf("feed: claim notice %s: %w", n.ID, res.Error)
	}
	if res.RowsAffected == 1 {
		return NoticeSending, true, nil
	}
	var got Notice
	if err := tx.Select("outcome").Where("id = ?", n.ID).Take(&got).Error; err != nil {
		return "", false, fmt.Errorf("feed: read notice %s: %w", n.ID, err)
	}
	return got.Outcome, false, nil
}

// FinishNotice records the outcome of a notice ClaimNotice claimed in tx.
func FinishNotice(tx *gorm.DB, id, outcome string, recipient, detail *string) error {
	err := tx.Model(&Notice{}).Where("id = ?", id).
		Updates(map[string]any{"outcome": outcome, "recipient": recipient, "detail": detail}).Error
	if err != nil {
		return fmt.Errorf("feed: finish notice %s: %w", id, err)
	}
	return nil
}

// CustomerByID is the stored customer stripeID, or nil.
func CustomerByID(tx *gorm.DB, stripeID string) (*models.Customer, error) {
	return first[models.Customer](tx, "customer", "stripe_id = ?", stripeID)
}

// PaymentByID is the stored charge or payment intent stripeID, or nil.
func PaymentByID(tx *gorm.DB, stripeID string) (*models.Payment, error) {
	return first[models.Payment](tx, "payment", "stripe_id = ?", stripeID)
}

// DisputeByID is the stored dispute stripeID, or nil.
func DisputeByID(tx *gorm.DB, stripeID string) (*models.Dispute, error) {
	return first[models.Dispute](tx, "dispute", "stripe_id = ?", stripeID)
}

// InvoiceOfPayment is the stored invoice a charge (and its payment
// intent, if any) paid or tried to pay, the latest created if several:
// named by the charge or intent row (before 2025-03-31.basil), naming
// them itself (before basil), or linked by an invoice payment (from
// basil). Nil when none is stored (yet).
func InvoiceOfPayment(tx *gorm.DB, chargeID, paymentIntentID string) (*models.Invoice, error) {
	ids := []string{chargeID}
	if paymentIntentID != "" {
		ids = append(ids, paymentIntentID)
	}
	return first[models.Invoice](tx, "invoice",
		"stripe_id IN (SELECT invoice_id FROM payments WHERE stripe_id IN ? AND invoice_id IS NOT NULL"+
			" UNION SELECT invoice_id FROM invoice_payments WHERE (charge_id IN ? OR payment_intent_id IN ?) AND invoice_id IS NOT NULL)"+
			" OR charge_id IN ? OR payment_intent_id IN ?", ids, ids, ids, ids, ids)
}

// first is the latest created row of T matching where, or nil.
func first[T any](tx *gorm.DB, what, where string, args ...any) (*T, error) {
	var row T
	err := tx.Where(where, args...).Order("stripe_created DESC, id DESC").Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("feed: read %s: %w", what, err)
	}
	return &row, nil
}
