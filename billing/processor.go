package billing

import (
	"context"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// Result is what Process did with an event.
type Result string

const (
	// Processed: the event was applied (or was stale and only recorded).
	Processed Result = "processed"
	// Ignored: no handler for the type; recorded in the ledger only.
	Ignored Result = "ignored"
	// Duplicate: the event id was already done; nothing changed.
	Duplicate Result = "duplicate"
)

// Processor applies Stripe events to the database, each exactly once.
type Processor struct {
	store  *models.Store
	logger *slog.Logger
	mux    *Mux
	now    func() time.Time
}

// NewProcessor returns a Processor with every handler registered.
func NewProcessor(store *models.Store, logger *slog.Logger) *Processor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := func() time.Time { return time.Now().UTC() }
	mux := NewMux()
	handlers{now: now}.register(mux)
	return &Processor{store: store, logger: logger, mux: mux, now: now}
}

// Handled lists the event types the Processor applies; others are ignored.
func (p *Processor) Handled() []string { return p.mux.Types() }

// Process parses raw and, in one transaction, records it in the ledger and
// applies it. Errors from Parse and malformed objects are marked permanent
// (retry.Classify); database outages wrap models.ErrUnavailable; anything
// else is worth retrying.
func (p *Processor) Process(ctx context.Context, raw []byte) (Result, error) {
	ev, err := Parse(raw)
	if err != nil {
		return "", err
	}
	h, known := p.mux.Handler(ev.Type)
	var result Result
	err = p.store.InTx(ctx, func(tx *gorm.DB) error {
		row := &models.StripeEvent{
			ID:         ev.ID,
			Type:       ev.Type,
			APIVersion: ev.APIVersion,
			Livemode:   ev.Livemode,
			Account:    ev.Account,
			Created:    &ev.Created,
			Payload:    ev.Raw,
			ReceivedAt: p.now(),
		}
		claim, err := models.ClaimEvent(tx, row)
		if err != nil {
			return err
		}
		if claim == models.ClaimDuplicate {
			result = Duplicate
			return nil
		}
		result = Processed
		status := models.EventProcessed
		if known {
			if err := h.Handle(ctx, tx, ev); err != nil {
				return err
			}
		} else {
			result, status = Ignored, models.EventIgnored
		}
		return models.FinishEvent(tx, ev.ID, status, p.now())
	})
	if err != nil {
		return "", err
	}
	p.logger.DebugContext(ctx, "billing: event done", "event_id", ev.ID, "event_type", ev.Type, "result", result)
	return result, nil
}
